"""Every tutorial in the browser, offline. Opened in JupyterLab: no console error, no failed or
off-machine request (a remote badge image, say). Run top to bottom in Jupyter Notebook 7 (the
same server; each tutorial runs once here, its numbers are checked by tests/notebooks/): no
error output, no console error, and every output drawn: each widget output holds a lensnb view
that drew its data (no other widget: progress bars are text), each plotly output a figure."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from jupyterlab_harness import DONE_MARK, assert_clean, open_and_run, open_notebook, watch_page

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((REPO / "notebooks").glob("*.ipynb"))
VIEWS = ".jp-OutputArea-output .lensnb:not(.lensnb .lensnb)"  # each lensnb view's root
FIGURES = ".jp-OutputArea-output.js-plotly-plot"  # a plotly figure output
FOREIGN = ".jp-OutputArea-output .jupyter-widgets"  # any ipywidget (a tqdm bar was one)
# (lensnb views, plotly figures) each tutorial shows: the test fails if fewer are drawn
SHOWN = {"01_quickstart": (2, 3), "02_llama31_rope": (2, 2), "03_gqa_split_qkv": (0, 6),
         "04_generation_and_patchscopes": (1, 2), "05_llama32_vision": (1, 1),
         "06_figures_for_papers": (1, 1)}
# One view root: is its data drawn (canvas pixels, SVG shapes, generated tokens), and does it
# show an error?
DRAWN = """root => {
  const opaque = [...root.querySelectorAll('canvas')].filter(c => c.width && c.height)
    .map(c => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) n += d[i] > 0;
      return n;
    });
  const shapes = root.querySelectorAll(
    'svg path, svg polyline, svg rect, svg circle, svg line').length;
  const tokens = root.querySelectorAll('.lensnb-gen-token').length;
  const errors = [...root.querySelectorAll('.lensnb-error')].map(e => e.textContent)
    .filter(t => t.trim());
  return {drawn: Math.max(0, ...opaque) > 100 || shapes > 10 || tokens > 0, errors};
}"""


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_opens_offline_without_errors(path, jupyter_server, chromium):
    shutil.copy(path, Path(jupyter_server.notebooks) / path.name)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.lensnb_notebook = path.name
        watch_page(page)
        open_notebook(page, jupyter_server, path.name)
        # every markdown cell rendered (images included), then let late requests settle
        title = page.locator(".jp-MarkdownCell .jp-RenderedMarkdown h1").first
        title.wait_for()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1000)
        assert_clean(page)
        assert "Open in Colab" in page.locator(".jp-MarkdownCell").first.inner_text()
    finally:
        context.close()
        jupyter_server.shutdown_kernels(path.name)


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_notebook_7(path, jupyter_server, chromium):
    """Run All Cells in Notebook 7, as a user who opens the tutorial there."""
    name = f"notebook7-{path.name}"  # not the JupyterLab test's copy (nor its kernel)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"print({DONE_MARK!r})"))
    nbformat.write(nb, Path(jupyter_server.notebooks) / name)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.lensnb_notebook = name
        watch_page(page, ui="notebook")
        open_and_run(page, jupyter_server, name, ui="notebook", timeout_ms=600_000)
        views, figures = page.locator(VIEWS), page.locator(FIGURES)
        shown = SHOWN.get(path.stem, (0, 0))
        assert (views.count(), figures.count()) >= shown, (views.count(), figures.count())
        assert page.locator(FOREIGN).count() == 0  # only lensnb views among the widgets
        for i in range(views.count()):
            root = views.nth(i)
            page.wait_for_function(f"(r => ({DRAWN})(r).drawn)", arg=root.element_handle(),
                                   timeout=60_000)
            assert root.evaluate(DRAWN)["errors"] == [], f"view {i}"
        for i in range(figures.count()):
            figures.nth(i).locator(".main-svg").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # late requests and errors of the last views
        assert_clean(page)
    finally:
        context.close()
        jupyter_server.shutdown_kernels(name)
