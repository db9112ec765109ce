"""AttentionExplorer on a Llama 3.2 Vision lens in JupyterLab + chromium: the layer menu holds
the text decoder's self-attention layers only, and the widget says where the cross-attention
layers are (ImageAttention)."""

from __future__ import annotations

import pytest
from jupyterlab_harness import open_widget

import lensnb.loading as loading

pytestmark = pytest.mark.skipif(
    not (loading.DEMOS["demo-vision"] / "config.json").is_file(),
    reason="the embedded demo-vision model is missing (scripts/train_demo_vision.py makes it)")

CELLS = [
    "import torch\ntorch.set_num_threads(1)\nimport lensnb\nlens = lensnb.load('demo-vision')",
    "explorer = lensnb.AttentionExplorer(lens, 'a red circle at the top left')\nexplorer",
]


def test_vision_explorer_lists_self_attention_layers_and_points_to_image_attention(
        jupyter_page, lab_kernel):
    page, root = open_widget(jupyter_page, CELLS, "attention_vision", "lensnb-attn",
                             ".lensnb-attn[data-shown-head='0']")
    kernel = lab_kernel(page)
    want = kernel.eval("print(*lens.self_attention_layers)").split()
    cross = kernel.eval("print(list(lens.facts.cross_attention_layers))")
    options = root.locator("select.lensnb-attn-layer option")
    assert [options.nth(i).get_attribute("value") for i in range(options.count())] == want
    notice = root.locator(".lensnb-attn-notice")
    assert notice.is_visible()
    assert "ImageAttention" in notice.text_content() and cross in notice.text_content()
    root.locator("select.lensnb-attn-layer").select_option(want[-1])  # browser -> Python
    page.wait_for_function(f"document.querySelector('.lensnb-attn-headview')?.dataset.layer"
                           f" === '{want[-1]}'")
    assert kernel.eval_when("print(explorer.layer)", want[-1]) == want[-1]
