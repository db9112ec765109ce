"""Sphinx configuration of lensnb's documentation site (``make docs`` -> docs/_build/html/).

Why Sphinx + myst-nb (and not MkDocs + mkdocstrings + mkdocs-jupyter): lensnb's docstrings are
reStructuredText (``code``, ``:param``-free prose), which autodoc renders as written; myst-nb
turns a notebook into document nodes (its text is searched with the rest of the site, its
headings are in the navigation) and picks one output per display by a mime priority we set, so a
lensnb widget shows its static copy; and ``sphinx-build -W`` fails on any warning, autodoc's and
the notebooks' included. mkdocs-jupyter renders notebooks through nbconvert's templates, whose
require.js/MathJax links would have to be patched out, and MkDocs' ``strict`` misses warnings of
the plugins. The theme is Furo: it ships its fonts and scripts, so no page asks the network.

Everything is local: no intersphinx inventories, no remote images, no CDN script (plotly.js
comes from the installed plotly package). ``tests/browser/test_docs_site.py`` opens every page
in chromium with the network refused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))  # this checkout's lensnb, whatever the venv's install points at
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import lensnb  # noqa: E402

project = "lensnb"
author = "the lensnb authors"
copyright = "lensnb authors"  # noqa: A001  (Sphinx's name)
release = version = lensnb.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # the docstrings' Google-style "Args:" / "Attributes:" sections
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "lensnb_docs",  # _ext/: the API pages from lensnb.__all__, the tutorials with outputs
]
exclude_patterns = ["_build", "_ext", "README.md", "**/.ipynb_checkpoints"]
suppress_warnings: list[str] = []

# --- MyST and notebooks -------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # lensnb_docs hands myst-nb executed copies (see _ext/tutorial_pages.py)
nb_merge_streams = True
# One output per display: a lensnb widget's text/html (its static copy, drawn and interactive
# offline) instead of its widget view, which would need the Jupyter widgets HTML manager from a
# CDN; any other widget (a progress bar) falls back to its text.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js: dict = {}  # never link the widget manager (there is no widget state left)

# --- autodoc ------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields: no second description of a dataclass field
autosummary_generate = False  # the API pages are written by lensnb_docs, one per group

# --- HTML ---------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"lensnb {release}"
html_static_path = ["_static"]
html_css_files = ["lensnb-docs.css"]
html_copy_source = False  # the executed notebooks are large; the page is what is read
html_show_sourcelink = False
html_show_search_summary = False  # summaries fetch() each page: refused on file://, so off
