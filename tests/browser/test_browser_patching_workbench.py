"""PatchingWorkbench in JupyterLab + chromium: renders, computes a sweep on request, a click
shows the kernel's exact score, a head click shows its attention (the explorer's view) and
direct logit attribution, a KV group its query heads, an ablation switch shows the kernel's
value, the logit lens tab draws, and token text stays literal."""

from __future__ import annotations

import pytest
from jupyterlab_harness import LOAD_DEMO, open_widget, screenshot

# the demo model (trained on Python code) tells `os.` from `re.`: clean +8.0, corrupted -6.8;
# the string literal's tokens (' "<', 'b', '>', 'x', '</', 'b', '>"') must show as text
CLEAN = 's = "<b>x</b>"\nimport os\nos.'
CORRUPTED = 's = "<b>x</b>"\nimport re\nre.'
CELLS = [
    LOAD_DEMO,
    f"wb = lensnb.PatchingWorkbench(lens, {CLEAN!r}, {CORRUPTED!r}, answer='path', "
    "wrong='match')\nwb",
]


def _click_cell(root, canvas_selector: str, row: int, col: int) -> None:
    grid = root.locator(canvas_selector).first
    g = {k: float(grid.get_attribute(f"data-{k}")) for k in ("left", "top", "cw", "ch")}
    grid.click(position={"x": g["left"] + (col + 0.5) * g["cw"],
                         "y": g["top"] + (row + 0.5) * g["ch"]})


def _wait_complete(root, site: str) -> None:
    """Until the patching tab shows ``site``'s exact sweep, complete (the attributes change
    together when a switch is handled, so a stale 'complete' cannot match)."""
    root.locator(f".lensnb-pw-patching[data-shown='{site}/exact'][data-complete='true']"
                 ).wait_for(timeout=120_000)


def _kernel_float(kernel, expr: str) -> float:
    return float(kernel.eval(f"print(repr(float({expr})))"))


@pytest.fixture(scope="module")
def opened(jupyter_page):
    return open_widget(jupyter_page, CELLS, "patching_workbench", "lensnb-pw",
                       ".lensnb-pw canvas.lensnb-pw-grid")


def test_sweep_click_shows_the_kernels_exact_score(opened, lab_kernel):
    page, root = opened
    kernel = lab_kernel(page)
    root.locator("button.lensnb-pw-compute").click()
    _wait_complete(root, "resid_pre")
    position = int(kernel.eval("print(wb.clean_tokens.index(' os'))"))  # where the pair differs
    _click_cell(root, "canvas.lensnb-pw-grid", 1, position)
    cell = root.locator(".lensnb-pw-cell[data-layer='1']")
    cell.wait_for()
    shown = float(cell.get_attribute("data-score"))
    # the kernel's own cached sweep (float32 on both sides: equal, not close)
    assert shown == _kernel_float(kernel, f"wb.sweep('resid_pre', 'exact').scores[1, {position}]")
    assert kernel.eval("print(wb.sweeps['resid_pre/exact'])") == "{'done': 4, 'total': 4}"
    # hover: the exact score and the token, as text
    tip = root.locator(".lensnb-pw-tooltip")
    grid = root.locator("canvas.lensnb-pw-grid").first
    g = {k: float(grid.get_attribute(f"data-{k}")) for k in ("left", "top", "cw", "ch")}
    grid.hover(position={"x": g["left"] + 7.5 * g["cw"], "y": g["top"] + 0.5 * g["ch"]})
    page.wait_for_function("() => { const t = document.querySelector('.lensnb-pw-tooltip');"
                           " return t && !t.hidden && t.dataset.col === '7'; }")
    assert "position 7 «</»" in tip.text_content()
    assert float(tip.get_attribute("data-score")) == _kernel_float(
        kernel, "wb.sweep('resid_pre', 'exact').scores[0, 7]")


def test_head_and_kv_group_clicks_show_attention_and_dla(opened, lab_kernel):
    page, root = opened
    kernel = lab_kernel(page)
    root.locator("button.lensnb-pw-site[data-site='head']").click()  # computes on switch
    _wait_complete(root, "head")
    _click_cell(root, "canvas.lensnb-pw-grid", 0, 7)  # the head that carries most here
    assert kernel.eval_when("print(wb.selected)", "{'kind': 'head', 'layer': 0, 'head': 7}") == \
        "{'kind': 'head', 'layer': 0, 'head': 7}"
    root.locator(".lensnb-pw-detail-attn .lensnb-attn-headview[data-layer='0'][data-head='7']"
                 ).wait_for(timeout=60_000)
    dla = root.locator(".lensnb-pw-dla-line[data-value]")
    dla.wait_for()
    assert float(dla.get_attribute("data-value")) == pytest.approx(
        _kernel_float(kernel, "lens.logit_attribution(wb._data.clean_ids, 'path', 'match')"
                              ".heads[0, 7]"), rel=1e-6)
    page.mouse.move(0, 0)  # no tooltip in the picture
    root.locator(".lensnb-pw-tooltip").wait_for(state="hidden")
    screenshot(root, "patching_workbench")

    root.locator("button.lensnb-pw-site[data-site='kv_group']").click()
    _wait_complete(root, "kv_group")
    _click_cell(root, "canvas.lensnb-pw-grid", 2, 1)
    for h in (4, 5, 6, 7):  # KV group 1's query heads on the demo model (8 heads, 2 groups)
        root.locator(f".lensnb-pw-detail-attn .lensnb-attn-panel[data-name='H{h}']").wait_for()


def test_ablation_switch_shows_the_kernels_value(opened, lab_kernel):
    page, root = opened
    kernel = lab_kernel(page)
    root.locator("button.lensnb-pw-tab[data-tab='ablation']").click()
    value = root.locator(".lensnb-pw-ablation-value[data-value]")
    value.wait_for()
    before = value.get_attribute("data-value")
    root.locator("button.lensnb-pw-toggle[data-layer='2'][data-head='3']").click()
    page.wait_for_function(
        "([b]) => { const v = document.querySelector('.lensnb-pw-ablation-value');"
        " return v && v.dataset.value !== b && !v.dataset.pending; }", arg=[before])
    assert kernel.eval("print(wb.ablated_heads)") == "[[2, 3]]"
    # head 3 of layer 2 zeroed by hand: its hook_z at every position
    by_hand = ("(lambda lg: lg[0, -1, wb._data.answer] - lg[0, -1, wb._data.wrong])("
               "lens.run_with_hooks(wb._data.clean_ids, fwd_hooks=[lensnb.patch("
               "2, 'attn.hook_z', value=0.0, every_position=True, head=3)]))")
    assert float(value.get_attribute("data-value")) == pytest.approx(
        _kernel_float(kernel, by_hand), rel=1e-6)
    assert root.locator("button.lensnb-pw-toggle[data-layer='2'][data-head='3'].off").count() == 1


def test_logit_lens_tab_and_literal_token_text(opened):
    page, root = opened
    root.locator("button.lensnb-pw-tab[data-tab='logit_lens']").click()
    root.locator(".lensnb-pw-lens[data-prompt='clean'] canvas.lensnb-pw-grid").wait_for(
        timeout=60_000)
    # token text is untrusted: shown literally, never parsed as HTML
    assert '"<b>x</b>"' in root.locator(".lensnb-pw-prompt-clean").text_content()
    assert root.locator("b").count() == 0 and not page.lensnb_dialogs
