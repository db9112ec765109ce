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


LONG = 8192  # tokens of standard-library source, one layer: the long-text paths stay fast
LONG_CELLS = [
    LOAD_DEMO,
    "from lensnb.analysis.longcontext import stdlib_tokens\n"
    f"long_tokens = stdlib_tokens(lens, {LONG})\n"
    "long_explorer = lensnb.AttentionExplorer(lens, long_tokens, layers=[0], progress=False)\n"
    "long_explorer",
]


@pytest.fixture(scope="module")
def long_page(jupyter_page):
    return open_widget(jupyter_page, LONG_CELLS, "attention_explorer_long", "lensnb-attn",
                       ".lensnb-attn[data-shown-head='0']")


def test_long_text_first_view_switch_zoom_and_virtual_text(long_page, lab_kernel):
    page, root = long_page
    kernel = lab_kernel(page)
    assert float(root.get_attribute("data-first-view-ms")) < 2000  # overview made at build
    assert str(LONG) in root.locator(".lensnb-attn-title").text_content()
    # head switch: the new head's overview arrives and is shown
    root.locator(".lensnb-attn-thumb[data-head='5']").click()
    page.wait_for_selector(".lensnb-attn[data-shown-head='5']", timeout=60_000)
    assert kernel.eval("print(long_explorer.head)") == "5"
    # zoom in on the last 64 x 64 cells with the wheel: the exact weight under the cursor is
    # the kernel's row, and the axis labels switch from positions to tokens
    canvas = root.locator("canvas.lensnb-attn-heatmap")
    spot = {"x": MARGIN + PLOT - 2, "y": MARGIN + PLOT - 2}
    canvas.hover(position=spot)
    for _ in range(40):
        page.mouse.wheel(0, -100)
    page.wait_for_timeout(400)
    canvas.hover(position={"x": spot["x"] - 1, "y": spot["y"] - 1})
    hover = root.locator(".lensnb-attn-hover[data-weight]")
    hover.wait_for()
    q, k = int(hover.get_attribute("data-q")), int(hover.get_attribute("data-k"))
    assert q > LONG - 64 and k > LONG - 64
    truth = float(kernel.eval(f"print(repr(long_explorer.kept.row(0, 5, {q})[{k}].item()))"))
    assert float(hover.get_attribute("data-weight")) == pytest.approx(truth, rel=1e-5, abs=1e-8)
    # the text view keeps at most one page of tokens in the DOM and pages through the rest
    root.locator("button.lensnb-attn-view[data-view='text']").click()
    box = root.locator(".lensnb-attn-tokens")
    box.locator(".lensnb-attn-token.chosen[data-weight]").wait_for()
    n_spans = box.locator(".lensnb-attn-token").count()
    assert 0 < n_spans <= 1024
    assert int(box.get_attribute("data-first")) == (LONG - 1) // 1024 * 1024  # the last token
    root.locator(".lensnb-attn-strip").click(position={"x": 2, "y": 8})
    page.wait_for_selector(".lensnb-attn-tokens[data-first='0']")
    assert box.locator(".lensnb-attn-token[data-weight]").count() == n_spans
    assert page.evaluate("document.querySelectorAll('.lensnb-attn *').length") < 4000
    assert page.lensnb_dialogs == []
