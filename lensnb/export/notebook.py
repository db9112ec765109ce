"""Saved notebooks: let lensnb outputs show their static fallback in nbconvert and nbviewer.

nbconvert (and nbviewer, which runs it) renders a widget output through the Jupyter widgets
HTML manager, loaded from a CDN, whenever the notebook's metadata holds that widget's state,
and shows the output's ``text/html`` (lensnb's static fallback) only when it does not.
JupyterLab does not save widget state by default, but ``jupyter nbconvert --execute`` does
(nbclient's ``store_widget_state``), and a lensnb view rendered by the HTML manager has no
kernel to answer it and needs the network. ``drop_lensnb_state(nb)`` removes the saved state
of the lensnb widgets that carry a fallback (and of the layout models only they use), leaving
every other widget's state alone. ``StaticFallbacks`` is the same as an nbconvert
preprocessor::

    jupyter nbconvert --to html --execute \\
        --Exporter.preprocessors=lensnb.export.notebook.StaticFallbacks notebook.ipynb
"""

from __future__ import annotations

import re
from typing import Any

VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"
STATE_MIMETYPE = "application/vnd.jupyter.widget-state+json"
# what lensnb.export.fallback puts in text/html: a standalone host, or the note that replaces it
FALLBACK_MARKERS = ('class="lensnb-static"', 'class="lensnb-static-note"')
_MODEL_REF = re.compile(r"IPY_MODEL_(\w+)")


def lensnb_model_ids(nb: Any) -> set[str]:
    """Model ids of the widget outputs in ``nb`` that carry a lensnb static fallback."""
    found = set()
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = output.get("data") or {}
            html = data.get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            if VIEW_MIMETYPE in data and any(m in html for m in FALLBACK_MARKERS):
                found.add(data[VIEW_MIMETYPE].get("model_id"))
    return found - {None, ""}


def _refs(state: dict) -> set[str]:
    return set(_MODEL_REF.findall(repr(state.get("state", state))))


def drop_lensnb_state(nb: Any) -> Any:
    """``nb`` (an nbformat notebook, changed in place and returned) without the saved widget
    state of its lensnb outputs, so nbconvert shows their static fallback; the ``widgets``
    metadata goes entirely when nothing else is left in it."""
    widgets = nb.get("metadata", {}).get("widgets") or {}
    states = (widgets.get(STATE_MIMETYPE) or {}).get("state")
    if not states:
        return nb
    drop = lensnb_model_ids(nb) & set(states)
    # the models lensnb widgets reference (their layout), unless a kept widget uses them too
    referenced = set().union(*(_refs(states[m]) for m in drop)) if drop else set()
    kept_refs = set().union(*(_refs(s) for m, s in states.items() if m not in drop | referenced))
    drop |= (referenced & set(states)) - kept_refs
    for model_id in drop:
        del states[model_id]
    if not states:
        del nb["metadata"]["widgets"]
    return nb


def __getattr__(name: str) -> Any:
    if name == "StaticFallbacks":  # built on first use: nbconvert is only there when it runs
        from nbconvert.preprocessors import Preprocessor

        class StaticFallbacks(Preprocessor):
            """nbconvert preprocessor: ``drop_lensnb_state`` on the notebook (after
            ``--execute``, which runs first)."""

            def preprocess(self, nb: Any, resources: Any) -> tuple[Any, Any]:
                return drop_lensnb_state(nb), resources

        globals()[name] = StaticFallbacks
        return StaticFallbacks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
