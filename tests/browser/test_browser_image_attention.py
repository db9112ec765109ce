"""ImageAttention in JupyterLab + chromium: the picture and heatmap render, clicking a token and
choosing a KV group reach the kernel, the hottest drawn cell is Python's grid argmax, gate bars
carry the gate values, and Python-side changes move the controls."""

from __future__ import annotations

import json

import pytest
from jupyterlab_harness import screenshot, widget_output

import lensnb.loading as loading

pytestmark = pytest.mark.skipif(
    not (loading.DEMOS["demo-vision"] / "config.json").is_file(),
    reason="the embedded demo-vision model is missing (scripts/train_demo_vision.py makes it)")

CELLS = [
    "import torch\ntorch.set_num_threads(1)\nimport lensnb\n"
    "from PIL import Image, ImageDraw\n"
    "img = Image.new('RGB', (56, 56), (235, 235, 235))\n"
    "ImageDraw.Draw(img).ellipse((4, 4, 17, 17), fill=(220, 30, 30))\n"
    "lens = lensnb.load('demo-vision')",
    "w = lensnb.ImageAttention(lens, '<|image|>a red circle at the top left', img, token=3)\nw",
]


def _ready(page, before: str | None) -> None:
    page.wait_for_function(
        "([r]) => { const e = document.querySelector('.jp-OutputArea-output .lensnb-imgattn');"
        " return e && e.dataset.ready && e.dataset.ready !== r; }", arg=[before])


def _argmax(kernel) -> tuple[int, int]:
    out = kernel.eval("import numpy as np\ng = w.grid()[0]\n"
                      "print(list(map(int, np.unravel_index(int(g.argmax()), g.shape))))")
    r, c = json.loads(out)
    return r, c


def test_token_head_and_layer_controls_follow_python(jupyter_page, lab_kernel):
    page = jupyter_page(CELLS, name="image_attention")
    root = widget_output(page, "lensnb-imgattn")
    _ready(page, None)
    kernel = lab_kernel(page)
    tokens = json.loads(kernel.eval("import json\nprint(json.dumps(w.tokens))"))
    shown = root.locator(".lensnb-imgattn-token").all_text_contents()
    assert shown == [t.replace("\n", "↵") for t in tokens]
    assert root.locator("canvas.lensnb-imgattn-heat").count() == 1
    r, c = _argmax(kernel)
    assert (root.get_attribute("data-argmax-row"), root.get_attribute("data-argmax-col")) == (
        str(r), str(c))
    screenshot(root, "image_attention")

    before = root.get_attribute("data-ready")
    root.locator(".lensnb-imgattn-token[data-pos='5']").click()
    _ready(page, before)
    assert kernel.eval("print(w.token)") == "5"
    r, c = _argmax(kernel)
    assert root.get_attribute("data-argmax-row") == str(r)
    assert root.get_attribute("data-argmax-col") == str(c)

    before = root.get_attribute("data-ready")
    root.locator("select.lensnb-imgattn-head").select_option("kv_group:1")
    _ready(page, before)
    assert kernel.eval("print(w.mode, w.kv_group)") == "kv_group 1"
    on_picture = float(kernel.eval("print(repr(w.grid()[1]['on_picture']))"))
    assert float(root.get_attribute("data-on-picture")) == pytest.approx(on_picture, rel=1e-5)

    gates = json.loads(kernel.eval("print(json.dumps(w.gates))"))
    bars = root.locator("rect.attn")
    assert bars.count() == len(gates)
    assert [float(bars.nth(i).get_attribute("data-value")) for i in range(len(gates))] == \
        pytest.approx([g[0] for g in gates])

    last = kernel.eval("print(w.cross_layers[-1])")
    before = root.get_attribute("data-ready")
    kernel.eval(f"w.layer = {last}")
    _ready(page, before)
    assert root.locator("select.lensnb-imgattn-layer").input_value() == last
