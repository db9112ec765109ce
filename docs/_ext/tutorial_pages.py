"""The tutorials on the site: every ``notebooks/*.ipynb`` with its outputs, for myst-nb.

A tutorial is executed once per ``make test``, by its test: ``tests/notebooks/test_notebooks.py``
runs it offline and writes the executed copy to ``test-output/notebooks/NAME.ipynb``. The site
reuses that copy when it is *fresh*: the same cells as the committed notebook, written after the
last change to the notebook and to ``lensnb/``. When it is missing or stale, the build runs that
notebook's test (the same kernel, environment and budget, so there is one way a tutorial is
executed) and reads the copy it wrote. A fresh copy in which a cell failed stops the build
with that error instead of running the notebook again.

The page copy, written to ``docs/tutorials/`` (generated, not committed), differs from the
executed copy only in how outputs are shown offline:

- lensnb widgets show their static copy (``text/html``: drawn, interactive where pre-computed):
  ``lensnb.export.notebook.drop_lensnb_state`` removes their saved state, exactly what
  ``StaticFallbacks`` does for nbconvert, and the site's mime priority skips widget views;
- other widgets' state goes too (the site links no widget manager): a progress bar shows its
  text;
- plotly figures (``application/vnd.plotly.v1+json``, which myst-nb cannot show) become a
  ``text/html`` div drawn by the plotly.js of the installed plotly package, served locally.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
from sphinx.errors import ExtensionError

NOTEBOOK_TEST = "tests/notebooks/test_notebooks.py::test_notebook_runs_offline_within_budget"
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def _cells(nb: Any) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def newest_change(repo: Path, source: Path) -> float:
    """mtime of the newest file among ``source`` and the ``lensnb`` package (what an executed
    copy's outputs depend on that its cells do not show)."""
    newest = source.stat().st_mtime
    for root, dirs, files in os.walk(repo / "lensnb"):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
    return newest


def failures(nb: Any) -> list[str]:
    """Why an executed notebook is not complete: the cells that raised or never ran."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            found.append(f"cell {i} raised {errors[0].get('ename')}: {errors[0].get('evalue')}")
        elif cell.get("execution_count") is None:
            found.append(f"cell {i} did not run")
    return found


def fresh_copy(repo: Path, source: Path, executed_dir: Path) -> Any | None:
    """The suite's executed copy of ``source`` when it is fresh (else None)."""
    executed = executed_dir / source.name
    if not executed.is_file() or executed.stat().st_mtime < newest_change(repo, source):
        return None
    nb = nbformat.read(executed, as_version=4)
    committed = nbformat.read(source, as_version=4)
    return nb if _cells(nb) == _cells(committed) else None


def run_notebook_tests(repo: Path, stems: list[str], log: Any) -> str:
    """Run the suite's test of each stale tutorial (it writes the executed copy); its output."""
    log(f"executing {len(stems)} tutorial(s) through their test: {', '.join(stems)}")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *[f"{NOTEBOOK_TEST}[{stem}]" for stem in stems]]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def plotly_html(bundle: dict, div_id: str) -> str:
    """A plotly mime bundle as a div and its figure as JSON beside it; the page's
    ``lensnb-plotly.js`` draws it with plotly.js once that has loaded (Furo loads scripts at
    the end of the page, after the outputs)."""
    figure = {k: bundle[k] for k in ("data", "layout", "frames") if k in bundle}
    figure["config"] = {**PLOTLY_CONFIG, **(bundle.get("config") or {})}
    layout = figure.get("layout") or {}
    width = f"{layout['width']}px" if layout.get("width") else "100%"
    height = f"{layout['height']}px" if layout.get("height") else "450px"
    spec = json.dumps(figure).replace("</", "<\\/")  # nothing in it can close the script tag
    return (f'<div id="{div_id}" class="plotly-graph-div" '
            f'style="width: {width}; height: {height}; max-width: 100%;"></div>\n'
            f'<script type="application/json" data-lensnb-plotly="{div_id}">{spec}</script>\n')


def page_copy(nb: Any, stem: str) -> Any:
    """The executed notebook as the site shows it (see the module docstring)."""
    from lensnb.export.notebook import drop_lensnb_state

    nb = drop_lensnb_state(copy.deepcopy(nb))
    nb.metadata.pop("widgets", None)
    for i, cell in enumerate(nb.cells):
        for j, output in enumerate(cell.get("outputs", []) if cell.cell_type == "code" else []):
            data = output.get("data") or {}
            if PLOTLY_MIMETYPE in data:
                data["text/html"] = plotly_html(data.pop(PLOTLY_MIMETYPE), f"{stem}-{i}-{j}")
    return nb


def write_tutorial_pages(repo: Path, out: Path, log: Any) -> dict[str, str]:
    """Write the page copy of every tutorial to ``out``; ``{stem: "reused" | "executed"}``."""
    executed_dir = repo / "test-output" / "notebooks"
    sources = sorted((repo / "notebooks").glob("*.ipynb"))
    copies = {s.stem: fresh_copy(repo, s, executed_dir) for s in sources}
    how = {stem: "reused" if nb is not None else "executed" for stem, nb in copies.items()}
    stale = [stem for stem, nb in copies.items() if nb is None]
    output = run_notebook_tests(repo, stale, log) if stale else ""
    for source in sources:
        nb = copies[source.stem] or fresh_copy(repo, source, executed_dir)
        if nb is None:
            raise ExtensionError(f"{source.name}: its test wrote no executed copy to "
                               f"{executed_dir}:\n{output[-4000:]}")
        problems = failures(nb)
        if problems:
            raise ExtensionError(f"{source.name} did not run through (executed copy "
                               f"{executed_dir / source.name}): {'; '.join(problems[:3])}\n"
                               f"{output[-4000:]}")
        text = nbformat.writes(page_copy(nb, source.stem)) + "\n"
        target = out / source.name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            out.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    for stale_page in set(out.glob("*.ipynb")) - {out / s.name for s in sources}:
        stale_page.unlink()
    return how
