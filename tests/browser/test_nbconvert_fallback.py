"""A notebook with every lensnb widget, executed as `jupyter nbconvert --execute` does (nbclient,
widget state stored), converted to HTML by nbconvert and opened from disk in chromium with
every request that is not file:/data:/blob: refused: each widget's static fallback draws its
view (canvas pixels, SVG paths, token rows), token text stays text (no script in it runs), the
page logs no console error and asks the network for nothing."""

from __future__ import annotations

import html as html_lib
import json
import os
import re
from pathlib import Path

import pytest
from jupyterlab_harness import LOAD_DEMO, REPO, write_notebook
from offline_page import DRAWN, OfflinePage, shown_errors, wait_for_hosts

import lensnb.loading as loading

nbformat = pytest.importorskip("nbformat", reason="nbformat (test extra) writes the notebook")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (loading.DEMOS["demo-vision"] / "config.json").is_file(),
                       reason="the embedded demo-vision model is missing "
                              "(scripts/train_demo_vision.py makes it)"),
]

DEAD_PROXY = "http://127.0.0.1:9"  # any HTTP(S) the kernel attempts fails at once
# token-like text that would run or render as markup if it were ever parsed as HTML
XSS = "<script>window.__lensnbXSS = 1</script><b>bold</b><img src=x onerror=window.__lensnbXSS=2>"
CELLS = [
    LOAD_DEMO,
    f"XSS = {XSS!r}\n"
    "text = 'def add(a, b):\\n    return a + b\\n# ' + XSS\n"
    "explorer = lensnb.AttentionExplorer(lens, text, layers=[0, 1], layer=1)\nexplorer",
    "display(explorer)  # the same view twice in one page",
    "lensnb.RopeSpectrum(lens)",
    "stepper = lensnb.GenerationStepper(lens, 'def f(x):\\n    # ' + XSS + '\\n    return',\n"
    "                                   max_new_tokens=4, top_k_probs=5)\nstepper.run(2)\nstepper",
    "from PIL import Image, ImageDraw\n"
    "img = Image.new('RGB', (56, 56), (235, 235, 235))\n"
    "ImageDraw.Draw(img).ellipse((4, 4, 17, 17), fill=(220, 30, 30))\n"
    "vision = lensnb.load('demo-vision')\n"
    "import json\n"
    "picture = lensnb.ImageAttention(vision, '<|image|>a red circle at the top left', img, "
    "token=3)\nprint('tokens:', json.dumps(picture.tokens))\npicture",
]
EXPECTED = {"AttentionExplorer": 2, "RopeSpectrum": 1, "GenerationStepper": 1,
            "ImageAttention": 1}

def _kernel_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", HTTP_PROXY=DEAD_PROXY,
               HTTPS_PROXY=DEAD_PROXY, http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY,
               NO_PROXY="", no_proxy="", PYDEVD_DISABLE_FILE_VALIDATION="1")
    # progress bars on, as for a user: lensnb's (a model's first conversion among them) and
    # transformers' inside lensnb calls are text outputs, no widget state for nbconvert to hand
    # to the CDN widget manager (lensnb/core/progress.py)
    for switch in ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
        env.pop(switch, None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.pop("LENSNB_STATIC_FALLBACK", None)  # the built-in default unless a test sets it
    return env


def execute_and_convert(path: Path, out: Path, *, template: str = "lab",
                        env: dict[str, str] | None = None) -> Path:
    """``path`` executed like `jupyter nbconvert --execute` (nbclient, widget state stored) and
    converted to ``out`` (nbconvert's ``template``, as `--template`) with lensnb's preprocessor;
    nbconvert's own CDN scripts (require.js, MathJax, jQuery) pointed at empty data: URLs so that
    anything the page fetches is lensnb's. The executed notebook is kept beside ``out``."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(out.parent)}}).execute(
                       env={**_kernel_env(), **(env or {})})
    assert nb.metadata["widgets"], "nbclient stored the widget state (what --execute does)"
    nbformat.write(nb, out.with_suffix(".executed.ipynb"))
    return convert(nb, out, template=template)


def convert(nb, out: Path, *, template: str = "lab") -> Path:
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.Exporter.preprocessors = ["lensnb.export.notebook.StaticFallbacks"]
    empty = "data:text/javascript,"
    exporter = HTMLExporter(config=config, template_name=template, require_js_url=empty,
                            mathjax_url=empty, jquery_url=empty)
    body, _ = exporter.from_notebook_node(nbformat.from_dict(json.loads(json.dumps(nb))),
                                          resources={"metadata": {"name": out.stem}})
    assert "unpkg.com" not in body and "html-manager" not in body  # no widget manager needed
    out.write_text(body, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("nbconvert")
    return execute_and_convert(write_notebook(tmp / "widgets.ipynb", CELLS), tmp / "widgets.html")


def test_every_widget_renders_offline_from_the_converted_html(converted, chromium):
    offline = OfflinePage(chromium)
    page = offline.page
    try:
        page.goto(converted.as_uri())
        wait_for_hosts(page, EXPECTED)
        ids = page.eval_on_selector_all(".lensnb-static", "els => els.map(e => e.id)")
        assert len(ids) == len(set(ids)) == sum(EXPECTED.values())
        # each widget's CSS is added to the page once, however many copies show it
        assert page.evaluate("document.head.querySelectorAll('style[data-lensnb-css]').length"
                             ) == len(EXPECTED)

        hosts = page.locator(".lensnb-static")
        for i in range(hosts.count()):
            host = hosts.nth(i)
            name = host.get_attribute("data-lensnb-widget")
            assert shown_errors(host) == [], name
            drawn = host.evaluate(DRAWN)
            canvases = {c["cls"]: c for c in drawn["canvases"]}
            if name == "AttentionExplorer":
                heat = canvases["lensnb-attn-heatmap"]
                assert heat["opaque"] > 10_000 and heat["colours"] > 20, heat
            elif name == "ImageAttention":
                heat = canvases["lensnb-imgattn-heat"]
                assert heat["opaque"] > 100 and heat["colours"] > 5, heat
                assert host.locator("img").evaluate("i => i.complete && i.naturalWidth") > 0
            elif name == "RopeSpectrum":
                assert drawn["shapes"] > 10, drawn
            elif name == "GenerationStepper":
                assert host.locator(".lensnb-gen-token").count() == 2  # stepper.run(2)
                assert host.locator(".lensnb-gen-toprow").count() == 5  # top_k_probs=5

        # token text is text: literal in the views, no markup made from it, no script run
        stepper = page.locator(".lensnb-static[data-lensnb-widget='GenerationStepper']")
        assert XSS in stepper.locator(".lensnb-gen-prompt").text_content()
        image = page.locator(".lensnb-static[data-lensnb-widget='ImageAttention']")
        printed = re.search(r"tokens: (\[.*\])", converted.read_text(encoding="utf-8"))
        tokens = json.loads(html_lib.unescape(printed.group(1)))  # what Python tokenised
        assert image.locator(".lensnb-imgattn-token").all_text_contents() == [
            t.replace("\n", "↵") for t in tokens]
        explorer = page.locator(".lensnb-static[data-lensnb-widget='AttentionExplorer']").first
        explorer.locator("button.lensnb-attn-view[data-view='text']").click()
        tokens = explorer.locator(".lensnb-attn-tokens")
        tokens.locator(".lensnb-attn-token[data-weight]").first.wait_for(timeout=30_000)
        assert XSS in tokens.text_content()
        assert page.locator(".lensnb-static-root b, .lensnb-static-root script").count() == 0
        assert page.locator(".lensnb-static-root img").count() == 1  # ImageAttention's picture
        assert page.evaluate("window.__lensnbXSS") is None
    finally:
        offline.context.close()
    offline.check_clean()


def test_classic_template_shows_every_widget_too(converted, chromium):
    """nbconvert's classic template (nbviewer's look) renders the same outputs."""
    nb = nbformat.read(converted.with_suffix(".executed.ipynb"), as_version=4)
    from nbconvert import HTMLExporter

    out = convert(nb, converted.with_name("classic.html"), template="classic")
    # the classic template always imports mermaid.js from cdnjs (no setting turns it off)
    offline = OfflinePage(chromium, template_urls=(HTMLExporter().mermaid_js_url,))
    try:
        offline.page.goto(out.as_uri())
        wait_for_hosts(offline.page, EXPECTED)
        hosts = offline.page.locator(".lensnb-static")
        assert [shown_errors(hosts.nth(i)) for i in range(hosts.count())] == [
            [] for _ in range(hosts.count())]
    finally:
        offline.context.close()
    offline.check_clean()


PICTURE_CELLS = [
    "import lensnb\n"
    "llama3 = dict(model_type='llama', hidden_size=512, num_attention_heads=4, head_dim=128,\n"
    "              max_position_embeddings=8192, rope_theta=500000.0)\n"
    "lensnb.RopeSpectrum(llama3)",
]


def test_html_png_shows_the_picture_where_scripts_do_not_run(tmp_path, chromium):
    """GitHub runs no scripts: there the HTML copy shows its PNG; where scripts run, the live
    copy replaces it. The mode comes from the environment, as for `nbconvert --execute`."""
    out = execute_and_convert(write_notebook(tmp_path / "picture.ipynb", PICTURE_CELLS),
                              tmp_path / "picture.html",
                              env={"LENSNB_STATIC_FALLBACK": "html+png"})
    context = chromium.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(out.as_uri())
        picture = page.locator(".lensnb-static img.lensnb-static-picture")
        assert picture.count() == 1 and picture.is_visible()
        assert picture.evaluate("i => i.complete && i.naturalWidth") > 0
        box = picture.bounding_box()
        assert (round(box["width"]), round(box["height"])) == (
            int(picture.get_attribute("width")), int(picture.get_attribute("height")))
        assert page.locator(".lensnb-static-root").inner_html() == ""  # nothing ran
    finally:
        context.close()
    offline = OfflinePage(chromium)
    try:
        offline.page.goto(out.as_uri())
        wait_for_hosts(offline.page, {"RopeSpectrum": 1})
        assert offline.page.locator("img.lensnb-static-picture").count() == 0
        assert offline.page.locator(".lensnb-static").first.evaluate(DRAWN)["shapes"] > 10
    finally:
        offline.context.close()
    offline.check_clean()


# the tutorial's plotly figures are plotly-mimetype only, which nbconvert cannot show (not lensnb's)
@pytest.mark.filterwarnings("ignore:Your element with mimetype:UserWarning")
def test_quickstart_shows_its_explorer_offline_after_nbconvert(tmp_path, chromium):
    """The first tutorial as a user shares it: executed, converted, opened with no network.
    Every explorer it displays (the demo's, SmolLM2's) is there and drawn."""
    out = execute_and_convert(REPO / "notebooks" / "01_quickstart.ipynb",
                              tmp_path / "01_quickstart.html")
    executed = nbformat.read(out.with_suffix(".executed.ipynb"), as_version=4)
    shown = sum(1 for c in executed.cells if c.cell_type == "code" for o in c.outputs
                if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                and "AttentionExplorer" in o["data"].get("text/plain", ""))
    assert shown >= 1
    offline = OfflinePage(chromium)
    try:
        offline.page.goto(out.as_uri())
        wait_for_hosts(offline.page, {"AttentionExplorer": shown})
        hosts = offline.page.locator(".lensnb-static")
        for i in range(shown):
            host = hosts.nth(i)
            assert shown_errors(host) == []
            heat = {c["cls"]: c for c in host.evaluate(DRAWN)["canvases"]}["lensnb-attn-heatmap"]
            assert heat["opaque"] > 10_000 and heat["colours"] > 20, heat
    finally:
        offline.context.close()
    offline.check_clean()


def test_jupyterlab_shows_the_live_widget_and_not_the_fallback(jupyter_page, lab_kernel):
    """With a widget manager (JupyterLab) the live view wins: the text/html beside it is never
    rendered, so nothing of the static copy (its scripts, its host) reaches the page."""
    page = jupyter_page([LOAD_DEMO, "explorer = lensnb.AttentionExplorer(lens, 'def f(x):')\n"
                         "explorer", "display(explorer)"], name="static_fallback_lab")
    live = page.locator(".jp-OutputArea-output .lensnb-attn")
    live.first.wait_for(timeout=120_000)
    page.wait_for_function("document.querySelectorAll('.jp-OutputArea-output .lensnb-attn')"
                           ".length === 2", timeout=60_000)
    assert page.locator(".lensnb-static, .lensnb-static-note").count() == 0
    # ... though the outputs do hold it (what a saved copy of this notebook shows elsewhere)
    assert lab_kernel(page).eval("print(sorted(explorer._repr_mimebundle_()[0]))") == (
        "['application/vnd.jupyter.widget-view+json', 'text/html', 'text/plain']")
