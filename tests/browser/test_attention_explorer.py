"""AttentionExplorer in JupyterLab + chromium: renders, head grid drives the synced trait,
hover shows the exact weight of hook_pattern, token text is never interpreted as HTML."""

from __future__ import annotations

import pytest
from jupyterlab_harness import LOAD_DEMO, open_widget, screenshot

XSS = "<img src=x onerror=alert(1)>"
LAYER = 1
PLOT, MARGIN = 480, 84  # attention.js heatmap geometry (CSS px)

CELLS = [
    LOAD_DEMO,
    f"text = 'def add(a, b):\\n    return a + b\\n# {XSS}'\n"
    f"explorer = lensnb.AttentionExplorer(lens, text, layers=[0, {LAYER}], layer={LAYER})\n"
    "explorer",
]


@pytest.fixture(scope="module")
def explorer_page(jupyter_page):
    return open_widget(jupyter_page, CELLS, "attention_explorer", "lensnb-attn",
                       ".lensnb-attn[data-shown-head='0']")


def test_renders_grid_by_kv_group_and_click_sets_head(explorer_page, lab_kernel):
    page, root = explorer_page
    kernel = lab_kernel(page)
    n_heads, n_kv = map(int, kernel.eval("print(lens.n_heads, lens.n_key_value_heads)").split())
    groups = root.locator(".lensnb-attn-kv")
    assert groups.count() == n_kv
    for kv in range(n_kv):  # thumbnails grouped by the KV head they read (lens.heads_of_kv)
        heads = groups.nth(kv).locator(".lensnb-attn-thumb")
        want = kernel.eval(f"print(*lens.heads_of_kv({kv}))").split()
        assert [heads.nth(i).get_attribute("data-head") for i in range(heads.count())] == want
    page.wait_for_function("document.querySelectorAll('.lensnb-attn-thumb[data-loaded]').length"
                           f" === {n_heads}")
    screenshot(root, "attention_explorer")

    target = n_heads - 3
    root.locator(f".lensnb-attn-thumb[data-head='{target}']").click()
    page.wait_for_selector(f".lensnb-attn[data-shown-head='{target}']")
    assert root.locator(".lensnb-attn-headview").get_attribute("data-head") == str(target)
    assert kernel.eval("print(explorer.head, explorer.kv_group)") == (
        f"{target} {kernel.eval(f'print(lens.kv_head_of({target}))')}")

    kernel.eval("explorer.head = 2")  # Python -> browser
    page.wait_for_selector(".lensnb-attn[data-shown-head='2']")


def test_hover_shows_exact_weight(explorer_page, lab_kernel):
    page, root = explorer_page
    kernel = lab_kernel(page)
    n = int(kernel.eval("print(len(explorer.tokens))"))
    q, k = n - 2, 3
    canvas = root.locator("canvas.lensnb-attn-heatmap")
    canvas.hover(position={"x": MARGIN + (k + 0.5) * PLOT / n, "y": MARGIN + (q + 0.5) * PLOT / n})
    hover = root.locator(".lensnb-attn-hover[data-weight]")
    hover.wait_for()
    assert (hover.get_attribute("data-q"), hover.get_attribute("data-k")) == (str(q), str(k))
    shown = float(hover.get_attribute("data-weight"))
    head = int(hover.get_attribute("data-head"))
    assert kernel.eval("print(explorer.head)") == str(head)
    truth = float(kernel.eval(
        f"_, c = lens.run_with_cache(text, names='blocks.{LAYER}.attn.hook_pattern')\n"
        f"print(repr(c['blocks.{LAYER}.attn.hook_pattern'][0, {head}, {q}, {k}].item()))"))
    assert shown == pytest.approx(truth, rel=1e-5, abs=1e-7)
    assert f"{truth:.4f}"[:5] in hover.text_content()


def test_token_text_is_shown_literally(explorer_page):
    page, root = explorer_page
    page.evaluate("window.__lensnbImgErrors = 0; document.addEventListener('error', "
                  "(e) => { if (e.target.tagName === 'IMG') window.__lensnbImgErrors++ }, true)")
    root.locator("button.lensnb-attn-view[data-view='text']").click()
    box = root.locator(".lensnb-attn-tokens")
    box.locator(".lensnb-attn-token[data-weight]").first.wait_for()
    assert XSS in box.text_content()
    assert root.locator("img").count() == 0
    # hovering the heatmap labels tokens in the hover line too
    root.locator("button.lensnb-attn-view[data-view='head']").click()
    page.wait_for_timeout(300)
    assert page.lensnb_dialogs == []
    assert page.evaluate("window.__lensnbImgErrors") == 0
