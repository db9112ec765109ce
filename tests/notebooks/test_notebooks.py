"""The tutorial notebooks: each runs top to bottom offline within its time budget, on the CPU and
on a pretend GPU (tests/fake_cuda.py: every model lensnb.load returns lives on "cuda:0", and
mixing its tensors with CPU ones, or handing them to numpy, raises as CUDA does), and each is
committed clean (outputs stripped, the python3 kernelspec, a Colab badge, the Colab-only
install cell first). Run times land in test-output/notebooks/times.json for the README/issue;
the CPU run's executed copies in test-output/notebooks/ (the documentation site renders them),
the pretend GPU's in test-output/notebooks/gpu/."""

from __future__ import annotations

import json
import os
import pkgutil
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat (test extra) reads notebooks")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
OUT = REPO / "test-output" / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
COLAB_URL = "https://colab.research.google.com/github/lensnb/lensnb/blob/main/notebooks/"
# Time budget. The tutorials aim at ~60 s on 2 idle CPU cores; the limits are hang guards
# with room for a machine shared with other jobs: no cell may take longer than CELL_TIMEOUT_S,
# no notebook longer than its BUDGET_S entry (per-notebook entries override the default).
CELL_TIMEOUT_S = 300
BUDGET_S = {"default": 600}
DEAD_PROXY = "http://127.0.0.1:9"  # any HTTP(S) the kernel attempts fails at once
# the cell the GPU run puts after the install cell: from then on lensnb.load "moves" every
# model to a pretend cuda:0 (what Colab's GPU runtime does for real)
PRETEND_GPU = (f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\nimport fake_cuda\n\n"
               "fake_cuda.install()")


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    # one torch thread: on 2 cores shared with anything else (chromium, a second kernel, other
    # jobs) two threads wait on each other at every op; measured with the machine at load ~3.6,
    # 04_generation_and_patchscopes ran in 29 s on one thread and 281 s on two
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, ALL_PROXY=DEAD_PROXY,
               http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY, all_proxy=DEAD_PROXY,
               NO_PROXY="", no_proxy="", PYDEVD_DISABLE_FILE_VALIDATION="1")
    # the kernel must import this checkout's lensnb and run on this venv's python
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def _execute(path: Path, tmp_path: Path, *, runtime: str) -> None:
    """Run ``path`` top to bottom in a fresh kernel (``runtime``: "cpu", or "gpu" for the pretend
    GPU), write the executed copy and the run time, and hold it to its budget."""
    from nbclient import NotebookClient

    budget = BUDGET_S.get(path.stem, BUDGET_S["default"])
    nb = nbformat.read(path, as_version=4)
    if runtime == "gpu":
        after_install = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code") + 1
        nb.cells.insert(after_install, nbformat.v4.new_code_cell(PRETEND_GPU))
    client = NotebookClient(nb, timeout=min(CELL_TIMEOUT_S, budget), kernel_name="python3",
                            allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    out = OUT if runtime == "cpu" else OUT / runtime
    start = time.perf_counter()
    try:
        client.execute(env=_kernel_env())
    finally:
        elapsed = time.perf_counter() - start
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / path.name)  # executed copy, for reading failures
        times_file = OUT / "times.json"
        times = json.loads(times_file.read_text()) if times_file.is_file() else {}
        key = path.stem if runtime == "cpu" else f"{path.stem} ({runtime})"
        times[key] = {"seconds": round(elapsed, 1), "cores": os.cpu_count(),
                      "python": sys.version.split()[0]}
        times_file.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
    assert elapsed <= budget, f"{path.name} took {elapsed:.0f} s, over its {budget} s budget"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_offline_within_budget(path: Path, tmp_path: Path) -> None:
    _execute(path, tmp_path, runtime="cpu")


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_on_a_gpu_runtime(path: Path, tmp_path: Path) -> None:
    """As on Colab's GPU runtime, as far as a CPU can tell: every model on a pretend cuda:0
    (tests/fake_cuda.py), so a cell that plots a GPU tensor, turns it into numpy or mixes it
    with a CPU tensor fails here as it would there (tests/test_fake_cuda.py checks those rules;
    scripts/gpu_check.sh runs the notebooks on a real GPU)."""
    _execute(path, tmp_path, runtime="gpu")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec") == KERNELSPEC
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: strip the outputs of cells {dirty}"

    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert f"[Open in Colab]({COLAB_URL + path.name})" in first.source, (
        f"{path.name}: the title cell needs a plain 'Open in Colab' link to {COLAB_URL + path.name}")
    # nothing in a notebook asks the network when it is opened: no remote image or script
    remote = [c.source for c in nb.cells if c.cell_type == "markdown"
              and re.search(r"!\[[^\]]*\]\(https?:|<img[^>]+src=[\"']https?:", c.source)]
    assert not remote, f"{path.name}: markdown loads a remote image: {remote[0][:120]!r}"
    install = next(c for c in nb.cells if c.cell_type == "code")
    assert install.source == _install_cell(), (
        f"{path.name}: the first code cell must be the Colab install cell of 01_quickstart.ipynb")
    assert "git clone" not in install.source and "sys.path" not in install.source


def _install_cell() -> str:
    """The one Colab install cell, as in the quickstart: pip from the git URL, no clone."""
    nb = nbformat.read(REPO / "notebooks" / "01_quickstart.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code").source
    assert cell.startswith('import sys\n\nif "google.colab" in sys.modules:')
    assert "pip install" in cell and "git+https://github.com/lensnb/lensnb" in cell
    assert "plotly_get_chrome" in cell  # figure export (notebook 06) needs a Chrome on Colab
    return cell


def test_notebooks_use_only_the_public_api() -> None:
    import lensnb

    public_modules = {"export", "rope"}  # modules lensnb exports as such
    internal = sorted(m.name for m in pkgutil.iter_modules(lensnb.__path__)
                      if m.name not in public_modules)
    assert {"core", "backends", "analysis", "interventions", "widgets"} <= set(internal)
    pattern = rf"lensnb\.(?:{'|'.join(internal)})\b|lensnb\._\w+"
    for path in NOTEBOOKS:
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
        private = sorted(set(re.findall(pattern, code)))
        assert not private, f"{path.name} reaches into lensnb's internals: {private}"


def test_every_tutorial_is_collected() -> None:
    assert REPO / "notebooks" / "01_quickstart.ipynb" in NOTEBOOKS
