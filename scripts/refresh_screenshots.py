"""Refresh the pictures the README shows (``make screenshots``).

1. Copies the widget screenshots the browser tests took (``test-output/screenshots/*.png``,
   written by ``tests/browser/jupyterlab_harness.py``'s ``screenshot``) to ``docs/screenshots/``.
   Run the browser tests first: ``.venv/bin/python -m pytest tests/browser -q``.
2. Exports one paper figure from the embedded demo model with ``lensnb.save``:
   ``docs/paper_figure.png`` (single column, 300 dpi) and ``docs/paper_figure.svg``.

Offline; takes a few seconds plus one Chromium start.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "test-output" / "screenshots"
DOCS = REPO / "docs"


def copy_screenshots(source: Path = SCREENSHOTS, dest: Path = DOCS / "screenshots") -> list[Path]:
    """Copy every ``*.png`` in ``source`` to ``dest`` except the harness's ``failed-*.png``
    (pictures of failing runs); returns the files written."""
    shots = sorted(p for p in source.glob("*.png") if not p.name.startswith("failed-"))
    if not shots:
        print(f"no screenshots in {source}: run `.venv/bin/python -m pytest tests/browser -q` "
              "first", file=sys.stderr)
        return []
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for shot in shots:
        target = dest / shot.name
        shutil.copyfile(shot, target)
        written.append(target)
    return written


def export_paper_figure(dest: Path = DOCS) -> list[Path]:
    """The demo model's RoPE spectrum next to Llama 3 / 3.2, exported in the paper style."""
    import torch

    import lensnb

    torch.set_num_threads(2)
    lens = lensnb.load("demo")
    view = lensnb.RopeSpectrum(lens)
    return [view.save(dest / "paper_figure.png", style="paper", dpi=300),
            view.save(dest / "paper_figure.svg", style="paper")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SCREENSHOTS,
                        help="folder of browser-test screenshots (default: %(default)s)")
    parser.add_argument("--no-figure", action="store_true", help="skip the paper figure")
    args = parser.parse_args(argv)
    written = copy_screenshots(args.source)
    if not args.no_figure:
        written += export_paper_figure()
    for path in written:
        print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
