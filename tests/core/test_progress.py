"""lensnb's progress bars (lensnb/core/progress.py). In a real Jupyter kernel, executed as
`nbconvert --execute` does (nbclient, widget state stored): a bar that stays ends in its final
state, one that goes leaves nothing but an empty output, no bar is an ipywidget (no widget state
is saved), and transformers' and the GGUF loader's bars inside ``library_bars`` are lensnb's.
The control beside them, a transformers bar outside ``library_bars``, is an ipywidget with
saved state: what nbconvert hands to a CDN widget manager. Outside a kernel: tqdm's terminal
bar; every switch users know turns lensnb's bars off."""

from __future__ import annotations

import os

import pytest

from lensnb.core import progress
from lensnb.core.settings import options

nbformat = pytest.importorskip("nbformat", reason="nbformat (test extra) writes the notebook")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIEW = "application/vnd.jupyter.widget-view+json"
CELLS = {
    "kept": "import time\nfrom lensnb.core import progress\n"
            "with progress.bar(4, 'kept', unit='layer') as bar:\n"
            "    for _ in range(4):\n"
            "        time.sleep(0.05)\n"
            "        bar.update()",
    "gone": "with progress.bar(3, 'gone', leave=False) as bar:\n"
            "    for _ in range(3):\n"
            "        time.sleep(0.3)\n"
            "        bar.update()",
    "quick": "with progress.bar(3, 'quick', leave=False) as bar:\n    bar.update(3)",
    "library": "from transformers.utils import logging as hf_logging\n"
               "import transformers.modeling_gguf_pytorch_utils as gguf_loader\n"
               "with progress.library_bars(gguf=True):\n"
               "    for _ in hf_logging.tqdm(range(3), desc='Loading weights'):\n"
               "        time.sleep(0.3)\n"
               "    for _ in gguf_loader.tqdm(range(3), desc='de-quantizing GGUF tensors'):\n"
               "        time.sleep(0.3)\n"
               "print(gguf_loader.tqdm.__module__)",
    "control": "for _ in hf_logging.tqdm(range(2), desc='control'):\n    pass",
}


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, list]:
    """CELLS run in a fresh kernel by nbclient with the widget state stored: outputs by cell,
    plus the notebook's saved widget state under ``"widgets"``."""
    from nbclient import NotebookClient

    pytest.importorskip("gguf", reason="the GGUF loader's bar needs the gguf package")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS.values()]
    env = {k: v for k, v in os.environ.items()
           if k not in (*progress.ENV_SWITCHES, "TQDM_DISABLE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH", "")]))
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path_factory.mktemp("bars"))}}
                   ).execute(env=env)
    out = {name: cell.outputs for name, cell in zip(CELLS, nb.cells, strict=True)}
    out["widgets"] = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return out


def _texts(outputs: list) -> list[str]:
    return [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"]


def test_a_bar_that_stays_ends_in_its_final_state(executed):
    (text,) = _texts(executed["kept"])
    assert text.startswith("kept: 100%|██████████| 4/4") and "layer/s" in text


def test_a_bar_that_goes_leaves_an_empty_output_and_a_quick_one_nothing(executed):
    assert _texts(executed["gone"]) == [""]  # drawn while it ran, emptied when it closed
    assert executed["quick"] == []  # done within TRANSIENT_DELAY_S: never drawn


def test_no_lensnb_bar_is_a_widget(executed):
    for name in ("kept", "gone", "library"):
        assert not any(VIEW in o.get("data", {}) for o in executed[name]), name


def test_library_bars_inside_are_lensnb_bars_and_restored_after(executed):
    assert _texts(executed["library"]) == ["", ""]  # both drawn, both gone when done
    assert executed["library"][-1]["text"].startswith("tqdm.")  # the loader's own tqdm again


def test_a_transformers_bar_outside_is_a_widget_with_saved_state(executed):
    """The control: what every bar above would be without lensnb's bars (this is what made
    nbconvert link the CDN widget manager for a freshly converted model)."""
    (view,) = [o["data"][VIEW]["model_id"] for o in executed["control"]
               if VIEW in o.get("data", {})]
    assert view in executed["widgets"]
    assert len(executed["widgets"]) > 1  # the bar's models; no lensnb bar added any


# ------------------------------------------------------------------ outside a kernel

@pytest.fixture
def switches_off(monkeypatch):
    for var in progress.ENV_SWITCHES:
        monkeypatch.delenv(var, raising=False)
    hub = pytest.importorskip("huggingface_hub.utils")
    monkeypatch.setattr(hub, "are_progress_bars_disabled", lambda *a, **k: False)


def test_outside_a_kernel_a_bar_is_tqdms_terminal_bar(switches_off, capsys):
    from tqdm.std import tqdm

    assert not progress.in_kernel() and progress.enabled()
    with progress.bar(2, "terminal") as bar:
        assert type(bar) is tqdm and not bar.disable
        bar.update(2)
    assert "terminal: 100%" in capsys.readouterr().err


@pytest.mark.parametrize("var", progress.ENV_SWITCHES)
def test_the_environment_switches_turn_every_bar_off(switches_off, monkeypatch, var):
    monkeypatch.setenv(var, "1")
    assert not progress.enabled()
    with progress.bar(2, "off") as bar:
        assert bar.disable


def test_hugging_faces_programmatic_switch_and_the_option_turn_bars_off(switches_off,
                                                                       monkeypatch):
    import huggingface_hub.utils as hub

    monkeypatch.setattr(hub, "are_progress_bars_disabled", lambda *a, **k: True)
    assert not progress.enabled()
    monkeypatch.setattr(hub, "are_progress_bars_disabled", lambda *a, **k: False)
    with options.context(progress=False):
        assert not progress.enabled()
    assert progress.enabled()
    assert progress.bar(1, "x", show=False).disable


def test_library_bars_restore_the_previous_hook_even_after_an_error():
    from transformers.utils import logging as hf_logging

    def mine(factory, args, kwargs):
        return factory(*args, **kwargs)

    hf_logging.set_tqdm_hook(mine)
    try:
        with pytest.raises(KeyError), progress.library_bars():
            raise KeyError("inside")
        assert hf_logging.set_tqdm_hook(None) is mine
    finally:
        hf_logging.set_tqdm_hook(None)
