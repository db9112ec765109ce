"""Static fallbacks in a widget's display bundle: the live view stays, the standalone HTML rides
beside it (one host with its own id per display), the PNG only when asked, the size limit
leaves a clear note, and a failing fallback never costs the live view."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from export_chromium import needs_chromium

import lensnb
from lensnb.export import StaticFallbackWarning
from lensnb.export.fallback import PNG_SCALE, static_fallback

VIEW = "application/vnd.jupyter.widget-view+json"
Image = pytest.importorskip("PIL.Image", reason="Pillow decodes the PNG fallback")



def _bundle(widget, **options):
    options.setdefault("static_fallback", "html")  # the built-in default, whatever $LENSNB_...
    with lensnb.options.context(**options):
        data, metadata = widget._repr_mimebundle_()
    return data, metadata


def _host_ids(fragment: str) -> list[str]:
    return re.findall(r'<div class="lensnb-static" id="([^"]+)"', fragment)


def _data(fragment: str) -> dict:
    match = re.search(r'<script type="application/json" class="lensnb-data">(.*?)</script>',
                      fragment, re.S)
    assert match, "the fragment holds no .lensnb-data script"
    return json.loads(match.group(1))


def test_default_bundle_keeps_the_live_view_and_adds_the_html(tiny_widget):
    tiny_widget.index = 2
    data, metadata = _bundle(tiny_widget)
    assert data[VIEW]["model_id"] == tiny_widget.model_id  # front ends with widgets: live view
    assert data["text/plain"] == repr(tiny_widget)
    assert "image/png" not in data and metadata == {}  # no PNG unless asked
    fragment = data["text/html"]
    assert not fragment.lstrip().lower().startswith(("<!doctype", "<html"))  # a fragment
    payload = _data(fragment)
    assert payload["state"]["index"] == 2 and payload["state"]["label"] == tiny_widget.label
    assert [r["request"] for r in payload["replies"]] == tiny_widget.export_requests()
    # the token-like label is data, never markup: nowhere outside the JSON (which has no "<")
    outside = fragment.replace(fragment.split('class="lensnb-data">', 1)[1].split("</script>")[0],
                               "")
    assert "<b>" not in outside and "<" not in _data_text(fragment)


def _data_text(fragment: str) -> str:
    return fragment.split('class="lensnb-data">', 1)[1].split("</script>", 1)[0]


def test_the_ipython_formatter_sees_both(tiny_widget):
    formatter = pytest.importorskip("IPython.core.formatters", reason="IPython displays")
    with lensnb.options.context(static_fallback="html"):
        data, _ = formatter.DisplayFormatter().format(tiny_widget)
    assert VIEW in data and "lensnb-static" in data["text/html"]


def test_two_displays_get_their_own_host_ids(tiny_widget):
    first, second = (_bundle(tiny_widget)[0]["text/html"] for _ in range(2))
    ids = _host_ids(first) + _host_ids(second)
    assert len(ids) == 2 and ids[0] != ids[1]
    for fragment, host in ((first, ids[0]), (second, ids[1])):
        assert fragment.count(f'id="{host}"') == 1
        assert f"start(document.getElementById({json.dumps(host)}))" in fragment


def test_none_is_the_live_view_only(tiny_widget):
    data, metadata = _bundle(tiny_widget, static_fallback=None)
    assert set(data) == {"text/plain", VIEW} and metadata == {}


def test_over_the_size_limit_leaves_a_note_instead(tiny_widget):
    full = _bundle(tiny_widget)[0]["text/html"]
    limit = len(full.encode()) - 1
    data, _ = _bundle(tiny_widget, static_fallback_max_bytes=limit)
    assert VIEW in data
    assert "lensnb-data" not in data["text/html"]
    for text in (data["text/plain"], data["text/html"]):
        assert "static_fallback_max_bytes" in text and "left out" in text
        assert f"{len(full.encode()) / 1024:,.0f} KiB" in text  # what it would have added
        assert f"{limit / 1024:,.0f} KiB" in text
    assert data["text/plain"].startswith(repr(tiny_widget))
    assert "lensnb-data" in _bundle(tiny_widget, static_fallback_max_bytes=limit + 1)[0][
        "text/html"]  # at the limit it fits


def test_a_failing_fallback_warns_and_keeps_the_live_view(tiny_widget, monkeypatch):
    def broken():
        return [{"name": "row", "params": {"index": 99}}]  # answer() refuses it

    monkeypatch.setattr(tiny_widget, "export_requests", broken)
    with pytest.warns(StaticFallbackWarning, match="no static copy"):
        data, _ = _bundle(tiny_widget)
    assert data[VIEW]["model_id"] == tiny_widget.model_id
    assert "row 99 out of range" in data["text/html"] and "lensnb-data" not in data["text/html"]
    assert "no static copy" in data["text/plain"]


def test_mode_is_checked(tiny_widget):
    with pytest.raises(ValueError, match="'html', 'png', 'html\\+png', None"):
        static_fallback(tiny_widget, ({}, {}), "svg")


@needs_chromium
def test_png_fallback_is_a_png_of_the_stated_size(tiny_widget):
    data, metadata = _bundle(tiny_widget, static_fallback="png")
    assert "text/html" not in data and VIEW in data
    stated = metadata["image/png"]
    assert stated == {"width": 700, "height": 500}  # plotly's default size: figure() sets none
    with Image.open(io.BytesIO(base64.b64decode(data["image/png"]))) as image:
        assert image.format == "PNG"
        assert image.size == (round(stated["width"] * PNG_SCALE),
                              round(stated["height"] * PNG_SCALE))
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 10  # drawn, not a blank canvas

    both, both_metadata = _bundle(tiny_widget, static_fallback="html+png")
    assert both_metadata == metadata
    picture = re.search(r'<img class="lensnb-static-picture"[^>]*'
                        r'width="(\d+)" height="(\d+)" src="data:image/png;base64,([^"]+)"',
                        both["text/html"])
    assert picture, "html+png puts the picture in the HTML too (for pages that run no scripts)"
    assert (int(picture.group(1)), int(picture.group(2))) == (700, 500)
    with Image.open(io.BytesIO(base64.b64decode(picture.group(3)))) as inner:
        assert inner.size == image.size


@needs_chromium
def test_png_fallback_opens_no_socket(tiny_widget, no_network):
    """Rendering the picture goes to the local chromium over a pipe, never the network."""
    data, _ = _bundle(tiny_widget, static_fallback="png")
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
