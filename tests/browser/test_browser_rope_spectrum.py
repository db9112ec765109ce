"""RopeSpectrum in JupyterLab + chromium: renders, a slider moves the synced trait and the drawn
curve follows lensnb.rope, Python moves the slider back, the usage tab draws the heatmap, and
labels are shown literally."""

from __future__ import annotations

import pytest
from jupyterlab_harness import LOAD_DEMO, record_dialogs, screenshot, widget_output

XSS = "<img src=x onerror=alert(1)>"
W, PAD_L, PAD_R = 640, 64, 16  # rope_spectrum.js chart geometry (SVG units)
PAIR = 40

CELLS = [
    LOAD_DEMO,
    "llama3 = dict(model_type='llama', hidden_size=512, num_attention_heads=4, head_dim=128,\n"
    "              max_position_embeddings=8192, rope_theta=500000.0)\n"
    f"w = lensnb.RopeSpectrum(compare={{{XSS!r}: llama3}})\nw",
    "u = lensnb.RopeSpectrum(lens, compare=None)\nu",
]




def _hover_pair(root, pair: int, n_pairs: int) -> float:
    svg = root.locator("svg.lensnb-rope-svg")
    box = svg.bounding_box()
    x = (PAD_L + pair / (n_pairs - 1) * (W - PAD_L - PAD_R)) * box["width"] / W
    svg.hover(position={"x": x, "y": box["height"] / 2})
    tip = root.locator(f".lensnb-rope-tooltip[data-pair='{pair}']")
    tip.wait_for()
    return float(tip.get_attribute("data-value"))


def test_renders_slider_recomputes_usage_tab_and_labels_are_text(jupyter_page, lab_kernel):
    """One notebook for the whole widget (opening JupyterLab is the expensive part)."""
    page = jupyter_page(CELLS, name="rope_spectrum")
    dialogs = record_dialogs(page)
    root = widget_output(page, "lensnb-rope")
    root.locator("svg.lensnb-rope-svg").wait_for(timeout=120_000)
    kernel = lab_kernel(page)
    truth = "print(repr(float(lensnb.rope.spectrum(w.edited_config())['wavelength'][{}])))"
    n_pairs = int(kernel.eval("print(len(lensnb.rope.inv_freq(w.edited_config())))"))
    shown = _hover_pair(root, PAIR, n_pairs)
    assert shown == pytest.approx(float(kernel.eval(truth.format(PAIR))), rel=1e-6)
    screenshot(root, "rope_spectrum")

    ready = root.get_attribute("data-ready")
    root.locator("input[data-param='factor']").fill("32")  # range input: sets value + input
    page.wait_for_function(
        "([r]) => { const e = document.querySelector('.jp-OutputArea-output .lensnb-rope');"
        " return e && e.dataset.ready !== r; }", arg=[ready])
    assert kernel.eval("print(w.factor)") == "32.0"
    page.mouse.move(0, 0)  # leave the chart, then hover the redrawn one
    moved = _hover_pair(root, PAIR, n_pairs)
    assert moved == pytest.approx(float(kernel.eval(truth.format(PAIR))), rel=1e-6)
    assert moved > shown * 3  # factor 8 -> 32 stretches this low-frequency pair's wavelength

    kernel.eval("w.factor = 8.0")  # Python -> browser: slider follows
    page.wait_for_function(
        "() => document.querySelector(\"input[data-param='factor']\").value === '8'")

    # labels are untrusted text: shown literally, never parsed as HTML
    assert XSS in root.locator(".lensnb-rope-legend").text_content()
    assert root.locator("img").count() == 0 and not dialogs

    # the usage tab of the demo model draws the per-head heatmap
    usage = widget_output(page, "lensnb-rope", index=1)
    usage.locator("button.lensnb-rope-tab[data-tab='usage']").click()
    usage.locator("canvas.lensnb-rope-heatmap").wait_for(timeout=60_000)
    assert kernel.eval("print(u.tab)") == "usage"
    screenshot(usage, "rope_spectrum_usage")
