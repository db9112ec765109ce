"""What the static fallback adds to a widget's display: bytes in the notebook and time.

For each widget (AttentionExplorer at 31 and 1,024 tokens, GenerationStepper after 4 steps,
RopeSpectrum of the demo model, ImageAttention on demo-vision) and each
``lensnb.options.static_fallback`` mode, the size of what the mode adds to the display bundle
(the ``text/html`` and base64 ``image/png`` entries, UTF-8 bytes as stored in the .ipynb) and
the time of ``_repr_mimebundle_()``: the first display of a fresh widget and the median of
later ones, next to the live-view-only bundle (mode None) of the same widget. Peer: none does
this (a plain anywidget/ipywidgets output has no fallback), so the baseline is mode None.

    .venv/bin/python bench/static_fallback.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

import lensnb
from lensnb.export import shutdown

MODES = (None, "html", "png", "html+png")
ADDED = ("text/html", "image/png")


def _code_ids(lens, n: int) -> torch.Tensor:
    """``n`` token ids (BOS first) of repeated Python source: ``[1, n]``."""
    text = "def add(a, b):\n    return a + b\n\nclass Point:\n    x: int = 0\n" * 200
    ids = lens.tokenizer(text, add_special_tokens=False)["input_ids"][: n - 1]
    return torch.tensor([[lens.tokenizer.bos_token_id, *ids]])


def widgets() -> dict[str, Callable[[], object]]:
    from PIL import Image, ImageDraw

    lens = lensnb.load("demo")
    vision = lensnb.load("demo-vision")
    picture = Image.new("RGB", (56, 56), (235, 235, 235))
    ImageDraw.Draw(picture).ellipse((4, 4, 17, 17), fill=(220, 30, 30))

    def stepper():
        w = lensnb.GenerationStepper(lens, "def f(x):\n    return", max_new_tokens=8)
        w.run(4)
        return w

    return {
        "AttentionExplorer, 31 tokens": lambda: lensnb.AttentionExplorer(lens, _code_ids(lens, 31)),
        "AttentionExplorer, 1,024 tokens": lambda: lensnb.AttentionExplorer(
            lens, _code_ids(lens, 1024)),
        "GenerationStepper, 4 steps": stepper,
        "RopeSpectrum (demo)": lambda: lensnb.RopeSpectrum(lens),
        "ImageAttention (demo-vision)": lambda: lensnb.ImageAttention(
            vision, "<|image|>a red circle at the top left", picture),
    }


def measure(make: Callable[[], object], mode, rounds: int) -> tuple[int, float, float]:
    """(bytes added, first display s, median later display s) for ``mode``."""
    with lensnb.options.context(static_fallback=mode, static_fallback_max_bytes=None):
        widget = make()
        start = time.perf_counter()
        data, _ = widget._repr_mimebundle_()
        first = time.perf_counter() - start
        later = []
        for _ in range(rounds):
            start = time.perf_counter()
            widget._repr_mimebundle_()
            later.append(time.perf_counter() - start)
    added = sum(len(data[k].encode("utf-8")) for k in ADDED if k in data)
    return added, first, statistics.median(later)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    # warm up kaleido's chromium once so "png" timings are renders, not browser start-up
    with lensnb.options.context(static_fallback="png"):
        start = time.perf_counter()
        lensnb.RopeSpectrum(lensnb.load("demo"))._repr_mimebundle_()
        print(f"chromium start + first PNG: {time.perf_counter() - start:.2f} s")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, rounds {args.rounds}")
    print("| widget | mode | adds to the output | first display | later displays |")
    print("|---|---|---:|---:|---:|")
    for name, make in widgets().items():
        for mode in MODES:
            added, first, later = measure(make, mode, args.rounds)
            print(f"| {name} | {mode} | {added / 1024:,.1f} KiB | {first * 1000:,.0f} ms | "
                  f"{later * 1000:,.0f} ms |")
    shutdown()


if __name__ == "__main__":
    main()
