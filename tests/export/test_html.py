"""Standalone HTML: self-contained (no URL to load anything from), and the widget keeps working
in headless chromium with every network request refused."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from lensnb.export import ChromiumNotFoundError, chromium_path, save

LOCAL_SCHEMES = ("file:", "blob:", "data:", "about:")


class _Refs(HTMLParser):
    """Every src/href attribute in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [(tag, value) for name, value in attrs if name in ("src", "href") and value]


def _external_refs(text: str) -> list[tuple[str, str]]:
    parser = _Refs()
    parser.feed(text)
    return [(tag, ref) for tag, ref in parser.refs if not ref.startswith(("data:", "#"))]


def _payload(text: str) -> dict:
    match = re.search(r'<script type="application/json" class="lensnb-data">(.*?)</script>',
                      text, re.S)
    assert match, "the page has no .lensnb-data script"
    return json.loads(match.group(1))


def test_plotly_figure_html_inlines_plotly_js(tmp_path, heatmap_figure):
    path = save(heatmap_figure, tmp_path / "fig.html")
    text = path.read_text(encoding="utf-8")
    assert _external_refs(text) == []
    assert "cdn.plot.ly" not in re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)
    assert len(text) > 1_000_000  # plotly.js itself is in the file
    assert "key position (src)" in text


def test_widget_html_embeds_module_state_and_exact_replies(tmp_path, tiny_widget):
    tiny_widget.index = 1
    text = save(tiny_widget, tmp_path / "w.html").read_text(encoding="utf-8")
    assert _external_refs(text) == []
    assert "</script" not in text.split('class="lensnb-data">', 1)[1].split("</script>", 1)[0]
    data = _payload(text)
    assert "export default" in data["esm"] and "function unpack" in data["esm"]
    assert data["state"]["index"] == 1 and data["state"]["label"] == "tiny <b>label</b>"
    assert not any(key.startswith("_") for key in data["state"])
    assert [r["request"] for r in data["replies"]] == [{"name": "row", "params": {"index": i}}
                                                       for i in range(len(tiny_widget.ROW_LENGTHS))]
    for reply in data["replies"]:  # the embedded bytes decode to the rows Python computes
        spec = reply["buffers"][reply["reply"]["buffers"]["row"]["index"]]
        raw = base64.b64decode(spec["b64"])
        raw = gzip.decompress(raw) if spec["gzip"] else raw
        np.testing.assert_array_equal(np.frombuffer(raw, np.float32),
                                      tiny_widget.row(reply["reply"]["index"]))
    assert data["replies"][1]["buffers"][0]["gzip"]  # the 6000-value row travels compressed


def test_html_size_limit_is_a_clear_error(tmp_path, tiny_widget):
    with pytest.raises(ValueError, match="max_bytes"):
        save(tiny_widget, tmp_path / "w.html", max_bytes=1000)
    assert not (tmp_path / "w.html").exists()


def _numbers(text: str, key: str) -> list[float]:
    match = re.search(rf"{key}=([-0-9.,e]+)", text)
    assert match, f"{key}= not in {text!r}"
    return [float(v) for v in match.group(1).split(",")]


@pytest.mark.browser
def test_widget_html_works_offline_in_chromium(tmp_path, tiny_widget, playwright):
    """Open the export with every non-file request aborted; the widget renders and responds to
    clicks with rows decoded from the embedded (partly gzip-compressed) replies."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright drives chromium")
    try:
        browser_path = chromium_path()
    except ChromiumNotFoundError:
        pytest.skip("no chromium: `make test` installs Debian's chromium")
    path = save(tiny_widget, tmp_path / "tiny.html")

    attempted: list[str] = []
    page_errors: list[str] = []

    def route(r):
        if r.request.url.startswith(LOCAL_SCHEMES):
            r.continue_()
        else:
            attempted.append(r.request.url)
            r.abort()

    with contextlib.nullcontext(playwright) as pw:  # the session's one Playwright
        browser = pw.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route("**/*", route)
            page.on("request", lambda req: None if req.url.startswith(LOCAL_SCHEMES)
                    else attempted.append(req.url))
            page.on("pageerror", lambda err: page_errors.append(str(err)))
            page.goto(path.as_uri())
            page.wait_for_selector(".lensnb-static-root[data-lensnb-ready=true]", timeout=15000)
            root = page.locator(".lensnb-static-root")
            assert page.locator(".tiny-title").text_content() == "tiny <b>label</b>"
            assert root.locator("b").count() == 0  # token-like text stays text

            for index in range(len(tiny_widget.ROW_LENGTHS)):
                values = page.locator(".tiny-values")
                sync_api.expect(values).to_contain_text(f"row {index}:", timeout=10000)
                text = values.text_content()
                row = tiny_widget.row(index)
                assert _numbers(text, "n") == [len(row)]
                np.testing.assert_allclose(_numbers(text, "first"), row[:4], rtol=1e-6)
                np.testing.assert_allclose(_numbers(text, "sum"),
                                           [row.astype(np.float64).sum()], rtol=1e-9)
                page.click(".tiny-next")

            # row 3 was never pre-computed: the widget shows an error instead of hanging
            sync_api.expect(page.locator(".lensnb-static-root .lensnb-error")).to_contain_text(
                "no answer for request", timeout=10000)
            assert attempted == [], f"the export tried to reach the network: {attempted}"
            # positive control: a request the page does make is seen (and refused)
            page.evaluate("fetch('http://example.invalid/probe').catch(() => 0)")
            page.wait_for_timeout(200)
            assert "http://example.invalid/probe" in attempted
        finally:
            browser.close()
    assert page_errors == []


def _real_widgets(lens):
    """Shipped widgets built on the demo model (imported lazily: each has its own owner)."""
    from lensnb.widgets.attention import AttentionExplorer
    from lensnb.widgets.rope_spectrum import RopeSpectrum

    return {"AttentionExplorer": AttentionExplorer(lens, "def add(a, b):\n    return a + b\n"),
            "RopeSpectrum": RopeSpectrum(lens)}


@pytest.mark.browser
def test_shipped_widgets_render_offline_from_their_html_export(tmp_path, demo_lens, playwright):
    """Each shipped widget's standalone file renders in chromium with the network refused:
    every request its frontend makes on load was pre-answered (no error shown)."""
    pytest.importorskip("playwright.sync_api", reason="playwright drives chromium")
    try:
        browser_path = chromium_path()
    except ChromiumNotFoundError:
        pytest.skip("no chromium: `make test` installs Debian's chromium")
    paths = {name: save(w, tmp_path / f"{name}.html")
             for name, w in _real_widgets(demo_lens).items()}
    attempted: list[str] = []
    with contextlib.nullcontext(playwright) as pw:  # the session's one Playwright
        browser = pw.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            for name, path in paths.items():
                page = browser.new_page()
                page_errors: list[str] = []
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(
                    LOCAL_SCHEMES) else (attempted.append(r.request.url), r.abort()))
                page.on("pageerror", lambda err, errs=page_errors: errs.append(str(err)))
                page.goto(path.as_uri())
                page.wait_for_selector(".lensnb-static-root[data-lensnb-ready=true]", timeout=20000)
                page.wait_for_timeout(1000)  # let the first requests settle
                assert page.locator(".lensnb-standalone-errors").text_content() == "", name
                assert page.locator(".lensnb-static-root .lensnb-error").all_text_contents() in (
                    [], [""]), name
                assert page.locator(".lensnb-static-root").inner_text().strip(), name
                assert page_errors == [], name
                page.close()
        finally:
            browser.close()
    assert attempted == []
