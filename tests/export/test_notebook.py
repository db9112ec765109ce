"""drop_lensnb_state: a saved notebook loses the widget state of its lensnb outputs (and of the
layout models only they use) so nbconvert shows their static fallback; every other widget's
state stays, and nbconvert then picks text/html for the lensnb output only."""

from __future__ import annotations

import copy

import pytest

from lensnb.export.notebook import STATE_MIMETYPE, VIEW_MIMETYPE, drop_lensnb_state

nbformat = pytest.importorskip("nbformat", reason="nbformat (test extra) builds the notebook")


def _model(name: str, **state) -> dict:
    return {"model_name": name, "model_module": "m", "model_module_version": "1",
            "state": {"_model_name": name, **state}}


def _notebook(lensnb_html: str) -> nbformat.NotebookNode:
    """Two widget outputs: a lensnb one (model aa, layout la, shared layout ls) and another
    widget (model bb, layout lb, shared layout ls)."""
    nb = nbformat.v4.new_notebook()
    lens_out = nbformat.v4.new_output("display_data", data={
        "text/plain": "<AttentionExplorer>", "text/html": lensnb_html,
        VIEW_MIMETYPE: {"version_major": 2, "version_minor": 0, "model_id": "aa"}})
    other_out = nbformat.v4.new_output("display_data", data={
        "text/plain": "IntSlider(value=3)",
        VIEW_MIMETYPE: {"version_major": 2, "version_minor": 0, "model_id": "bb"}})
    nb.cells = [nbformat.v4.new_code_cell("explorer", outputs=[lens_out]),
                nbformat.v4.new_code_cell("slider", outputs=[other_out])]
    nb.metadata["widgets"] = {STATE_MIMETYPE: {"version_major": 2, "version_minor": 0, "state": {
        "aa": _model("AnyModel", layout="IPY_MODEL_la", style="IPY_MODEL_ls"),
        "la": _model("LayoutModel"),
        "ls": _model("StyleModel"),
        "bb": _model("IntSliderModel", layout="IPY_MODEL_lb", style="IPY_MODEL_ls", value=3),
        "lb": _model("LayoutModel"),
    }}}
    return nb


FALLBACK = '<div class="lensnb-static" id="lensnb-1" data-lensnb-widget="AttentionExplorer">'


def test_drops_lensnb_state_and_only_its_own_layout():
    nb = drop_lensnb_state(_notebook(FALLBACK))
    assert set(nb.metadata["widgets"][STATE_MIMETYPE]["state"]) == {"bb", "lb", "ls"}


def test_size_note_counts_as_a_fallback_and_no_state_left_drops_the_metadata():
    nb = _notebook('<div class="lensnb-static-note">left out</div>')
    nb.cells = nb.cells[:1]  # the lensnb output only
    for model in ("bb", "lb"):
        del nb.metadata["widgets"][STATE_MIMETYPE]["state"][model]
    assert "widgets" not in drop_lensnb_state(nb).metadata


def test_outputs_without_a_fallback_keep_their_state():
    nb = _notebook("<p>some other html</p>")
    before = copy.deepcopy(nb.metadata)
    assert drop_lensnb_state(nb).metadata == before
    plain = nbformat.v4.new_notebook()
    assert drop_lensnb_state(plain) is plain


def test_nbconvert_then_shows_the_fallback_and_keeps_the_other_widget():
    exporters = pytest.importorskip("nbconvert", reason="nbconvert converts the notebook")
    nb = _notebook(FALLBACK + "static copy</div>")
    before, _ = exporters.HTMLExporter().from_notebook_node(copy.deepcopy(nb))
    assert 'class="lensnb-static"' not in before  # with the state, the live view is chosen
    after, _ = exporters.HTMLExporter().from_notebook_node(drop_lensnb_state(nb))
    assert 'class="lensnb-static"' in after
    assert after.count(f'<script type="{VIEW_MIMETYPE}">') == 1  # the slider keeps its state
