"""Every tutorial opens in JupyterLab offline with no console error and no failed or
off-machine request (the notebooks themselves run in tests/notebooks/; here: what opening one
in a browser asks for, e.g. a remote badge image)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from jupyterlab_harness import assert_clean, open_notebook, watch_page

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((REPO / "notebooks").glob("*.ipynb"))


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
