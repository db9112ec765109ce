"""PatchingWorkbench's standalone HTML (``save("x.html")``, the notebook's static copy): it
carries the sweeps computed so far, stays interactive over them in chromium with every network
request refused (a click shows the kernel's score), and says what it does not carry."""

from __future__ import annotations

import pytest

from lensnb import PatchingWorkbench
from lensnb.export import ChromiumNotFoundError, chromium_path

LOCAL_SCHEMES = ("file:", "blob:", "data:", "about:")
CLEAN = 's = "<b>x</b>"\nimport os\nos.'
CORRUPTED = 's = "<b>x</b>"\nimport re\nre.'


@pytest.fixture(scope="module")
def saved(demo_lens, tmp_path_factory):
    wb = PatchingWorkbench(demo_lens, CLEAN, CORRUPTED, answer="path", wrong="match")
    wb.sweep("head")
    wb.sweep("resid_pre")  # the sweep shown when saved
    wb.select(1, head=2)
    wb.ablate([(2, 3)])
    wb.logit_lens("clean")
    return wb, wb.save(tmp_path_factory.mktemp("export") / "workbench.html")


def _cell(page, row: int, col: int) -> None:
    grid = page.locator("canvas.lensnb-pw-grid").first
    g = {k: float(grid.get_attribute(f"data-{k}")) for k in ("left", "top", "cw", "ch")}
    grid.click(position={"x": g["left"] + (col + 0.5) * g["cw"],
                         "y": g["top"] + (row + 0.5) * g["ch"]})


@pytest.mark.browser
def test_standalone_html_carries_the_computed_sweeps_offline(saved, playwright):
    wb, path = saved
    try:
        browser_path = chromium_path()
    except ChromiumNotFoundError:
        pytest.skip("no chromium: `make test` installs Debian's chromium")
    attempted: list[str] = []
    errors: list[str] = []
    browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(LOCAL_SCHEMES)
                   else (attempted.append(r.request.url), r.abort()))
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(path.as_uri())
        page.wait_for_selector(".lensnb-static-root[data-lensnb-ready=true]", timeout=30_000)
        root = page.locator(".lensnb-pw")
        assert root.get_attribute("data-live") == "false"
        page.wait_for_selector(".lensnb-pw-patching[data-shown='resid_pre/exact']"
                               "[data-complete='true']")

        # a click on the carried sweep shows the kernel's exact score
        position = wb.clean_tokens.index(" os")
        _cell(page, 2, position)
        cell = page.locator(".lensnb-pw-cell[data-layer='2']")
        cell.wait_for()
        assert float(cell.get_attribute("data-score")) == float(
            wb.sweep("resid_pre").scores[2, position])
        # the other carried sweep too; a sweep not computed says so on its disabled switch
        page.click("button.lensnb-pw-site[data-site='head']")
        page.wait_for_selector(".lensnb-pw-patching[data-shown='head/exact'][data-complete='true']")
        mlp = page.locator("button.lensnb-pw-site[data-site='mlp_out']")
        assert mlp.is_disabled() and "not computed in this static copy" in mlp.get_attribute(
            "title")
        assert page.locator("button.lensnb-pw-compute").is_hidden()

        # the selected head: its attention (the explorer's view) and its DLA
        page.wait_for_selector(".lensnb-pw-detail-attn .lensnb-attn-headview[data-layer='1']"
                               "[data-head='2']")
        dla = page.locator(".lensnb-pw-dla-line[data-value]")
        assert float(dla.get_attribute("data-value")) == pytest.approx(
            float(wb.logit_attribution.heads[1, 2]), rel=1e-6)

        # the ablation board's value as saved; its switches need the kernel
        page.click("button.lensnb-pw-tab[data-tab='ablation']")
        value = page.locator(".lensnb-pw-ablation-value[data-value]")
        value.wait_for()
        assert float(value.get_attribute("data-value")) == pytest.approx(wb.ablate([(2, 3)]))
        assert page.locator("button.lensnb-pw-toggle").first.is_disabled()

        page.click("button.lensnb-pw-tab[data-tab='logit_lens']")
        page.wait_for_selector(".lensnb-pw-lens[data-prompt='clean'] canvas.lensnb-pw-grid")

        # token text stays text
        assert '"<b>x</b>"' in page.locator(".lensnb-pw-prompt-clean").text_content()
        assert root.locator("b").count() == 0
        assert page.locator(".lensnb-standalone-errors").text_content() == ""
    finally:
        browser.close()
    assert attempted == [], f"the export tried to reach the network: {attempted}"
    assert errors == []
