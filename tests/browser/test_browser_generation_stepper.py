"""GenerationStepper in JupyterLab + chromium: Step adds a token (the same the kernel generated),
Run fills the progress bar to the end, a patch from the panel reruns from the prompt, and token
text is never interpreted as HTML."""

from __future__ import annotations

import json

import pytest
from jupyterlab_harness import LOAD_DEMO, open_widget, screenshot

XSS = "<img src=x onerror=alert(1)>"

CELLS = [
    LOAD_DEMO,
    f"stepper = lensnb.GenerationStepper(lens, 'def f(x):\\n    # {XSS}\\n    return', "
    "max_new_tokens=4, top_k_probs=5)\nstepper",
]


@pytest.fixture
def stepper_page(jupyter_page):
    return open_widget(jupyter_page, CELLS, "generation_stepper", "lensnb-gen",
                       ".lensnb-gen[data-n-steps='0']")


def test_step_run_and_patch(stepper_page, lab_kernel):
    page, root = stepper_page
    kernel = lab_kernel(page)
    assert root.locator(".lensnb-gen-prompt").text_content().endswith("return")
    assert XSS in root.locator(".lensnb-gen-prompt").text_content()  # shown as text
    assert root.locator("img").count() == 0
    root.locator(".lensnb-gen-step").click()
    page.wait_for_selector(".lensnb-gen[data-n-steps='1']")
    token = root.locator(".lensnb-gen-token")
    assert token.count() == 1
    assert kernel.eval("print(len(stepper.steps))") == "1"
    assert json.dumps(token.first.text_content()) == kernel.eval(
        "import json; print(json.dumps(stepper.steps[0].text))")
    assert kernel.eval("print(stepper.steps[0].token == lens.generate(stepper.prompt, 1)"
                       ".new_tokens[0, 0].item())") == "True"
    assert root.locator(".lensnb-gen-toprow").count() == 5
    assert root.locator(".lensnb-gen-cell").count() == int(kernel.eval("print(lens.n_layers)"))
    page.wait_for_function(
        "() => document.querySelector('.lensnb-gen-attn').width > 0")  # per-head attention
    screenshot(root, "generation_stepper")

    # Run to the end (one page for the whole story: JupyterLab start-up is the slow part)
    root.locator(".lensnb-gen-run").click()
    page.wait_for_selector(".lensnb-gen[data-n-steps='4']")
    assert root.locator(".lensnb-gen-progress").evaluate("p => p.value") == 4
    page.wait_for_function(
        "() => document.querySelector('.lensnb-gen-status').textContent.startsWith('done')")
    assert root.locator(".lensnb-gen-step").is_disabled()
    root.locator(".lensnb-gen-patches summary").click()
    root.locator(".lensnb-gen-add").click()  # default: zero layer 0's resid_post at -1
    page.wait_for_selector(".lensnb-gen[data-n-steps='0']")
    assert root.locator(".lensnb-gen-patch-list li").count() == 1
    assert kernel.eval("print(stepper.patches[0]['name'], len(stepper.steps))") == (
        "blocks.0.hook_resid_post 0")
    assert page.lensnb_dialogs == []


VISION_CELLS = [
    "import torch\ntorch.set_num_threads(1)\nimport lensnb\n"
    "from PIL import Image, ImageDraw\n"
    "img = Image.new('RGB', (56, 56), (235, 235, 235))\n"
    "ImageDraw.Draw(img).ellipse((4, 4, 17, 17), fill=(220, 30, 30))\n"
    "vlens = lensnb.load('demo-vision')",
    f"cap = lensnb.GenerationStepper(vlens, '<|image|>{XSS}', image=img, max_new_tokens=3)\ncap",
]


def _cross_ready(page, prefix: str) -> None:
    page.wait_for_function(
        "([p]) => { const e = document.querySelector('.jp-OutputArea-output .lensnb-gen');"
        " return e && (e.dataset.crossReady || '').startsWith(p); }", arg=[prefix])


def _python_argmax(kernel, step: int) -> list[int]:
    out = kernel.eval(f"import numpy as np\ng = cap.cross_grid({step})[0]\n"
                      "print(list(map(int, np.unravel_index(int(g.argmax()), g.shape))))")
    return json.loads(out)


def _drawn(root) -> list[int]:
    box = root.locator(".lensnb-gen-cross")
    return [int(box.get_attribute("data-argmax-row")), int(box.get_attribute("data-argmax-col"))]


def test_captioning_step_draws_cross_attention(jupyter_page, lab_kernel):
    import lensnb.loading as loading

    if not (loading.DEMOS["demo-vision"] / "config.json").is_file():
        pytest.skip("the embedded demo-vision model is missing (scripts/train_demo_vision.py)")
    page, root = open_widget(jupyter_page, VISION_CELLS, "generation_stepper_vision",
                             "lensnb-gen", ".lensnb-gen[data-n-steps='0']")
    kernel = lab_kernel(page)
    assert root.locator(".lensnb-gen-cross-picture").count() == 1
    assert root.locator("img").count() == 1  # the picture only: the prompt's <img> is text
    assert XSS in root.locator(".lensnb-gen-prompt").text_content()
    root.locator(".lensnb-gen-step").click()
    page.wait_for_selector(".lensnb-gen[data-n-steps='1']")
    _cross_ready(page, "0:")
    token = root.locator(".lensnb-gen-token")
    assert json.dumps(token.first.text_content()) == kernel.eval(
        "import json; print(json.dumps(cap.steps[0].text))")
    assert _drawn(root) == _python_argmax(kernel, 0)
    caption = root.locator(".lensnb-gen-cross-caption").text_content()
    assert caption.startswith("writing step 0") and "% of layer" in caption
    # the hottest cell is painted (not transparent) on the canvas
    r, c = _drawn(root)
    geo = json.loads(kernel.eval("print(json.dumps(cap.geometry))"))
    fx, fy = (c + 0.5) * geo["patch_w"] / geo["width"], (r + 0.5) * geo["patch_h"] / geo["height"]
    alpha = root.locator("canvas.lensnb-gen-cross-heat").evaluate(
        "(cv, [fx, fy]) => cv.getContext('2d')"
        ".getImageData(Math.floor(fx * cv.width), Math.floor(fy * cv.height), 1, 1).data[3]",
        [fx, fy])
    assert alpha > 0
    screenshot(root, "generation_stepper_captioning")

    # the next token redraws the overlay for step 1
    root.locator(".lensnb-gen-step").click()
    page.wait_for_selector(".lensnb-gen[data-n-steps='2']")
    _cross_ready(page, "1:")
    assert _drawn(root) == _python_argmax(kernel, 1)
    # a head from the picker reaches the kernel and redraws; clicking token 0 shows step 0
    root.locator(".lensnb-gen-cross-head").select_option("head:1")
    _cross_ready(page, "1:")
    page.wait_for_function(
        "() => (document.querySelector('.lensnb-gen').dataset.crossReady || '')"
        ".includes(':head:1:')")
    assert kernel.eval("print(cap.cross_mode, cap.cross_head)") == "head 1"
    assert _drawn(root) == _python_argmax(kernel, 1)
    token.first.click()
    _cross_ready(page, "0:")
    assert _drawn(root) == _python_argmax(kernel, 0)
    assert page.lensnb_dialogs == []
