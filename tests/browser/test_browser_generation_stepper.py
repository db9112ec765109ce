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
    "max_new_tokens=4, top_k=5)\nstepper",
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
