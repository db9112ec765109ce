"""Sphinx extension of lensnb's site: writes the generated sources before Sphinx reads them
(the API pages from ``lensnb.__all__``, the tutorials with their outputs) and serves plotly.js
from the installed plotly package to the pages that draw a plotly figure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from api_pages import write_api_pages
from sphinx.util import logging
from tutorial_pages import write_tutorial_pages

logger = logging.getLogger(__name__)
PLOTLY_JS = "plotly.min.js"


def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / PLOTLY_JS


def _add_static(app: Any, config: Any) -> None:
    config.html_static_path = [*config.html_static_path, str(_plotly_js())]


def _generate(app: Any) -> None:
    docs = Path(app.srcdir)
    start = time.perf_counter()
    groups = write_api_pages(docs / "api")
    logger.info(f"lensnb: API pages for {sum(len(g.names) for g in groups)} public names")
    how = write_tutorial_pages(docs.parent, docs / "tutorials", logger.info)
    logger.info(f"lensnb: tutorials {json.dumps(how)} ({time.perf_counter() - start:.0f} s)")
    # what the build did with each tutorial, for the report and the site test
    (Path(app.outdir) / "tutorials.json").parent.mkdir(parents=True, exist_ok=True)
    (Path(app.outdir) / "tutorials.json").write_text(json.dumps(how, indent=2) + "\n")


def _page_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any
                  ) -> None:
    if "data-lensnb-plotly=" in (context.get("body") or ""):
        app.add_js_file(PLOTLY_JS)  # in html-page-context: for this page only
        app.add_js_file("lensnb-plotly.js")


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _add_static)
    app.connect("builder-inited", _generate)
    app.connect("html-page-context", _page_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
