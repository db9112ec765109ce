"""Long-document attention statistics per head: how far heads look, and how much goes to sinks.

For each head of each kept layer, over the query positions of a long text, computed block by
block from the rotated queries and keys (``KeptQK``, never the ``pos^2`` matrix):

- ``distance_mass``: the attention mass a query puts at relative distance ``d = query - key``,
  in log2 bins (``0``, ``1``, ``2-3``, ``4-7``, ...), averaged over queries;
- ``sink_mass``: the mass on the first ``n_sink`` tokens (the "attention sink"), averaged;
- ``reach``: per query, the smallest distance ``D`` such that keys within ``D`` of it hold
  ``fraction`` of its attention (50 % and 90 %); summarised by the median over queries.

``long_context_profile`` runs the model once and returns all three with the model's RoPE
wavelengths (original and, for Llama 3.1, smoothed: ``rope.spectrum``) so a head's reach can be
read against the rotations that make it possible. ``stdlib_tokens`` gives real long text: the
Python standard library's source, which the demo model was trained on (its held-out files).
"""

from __future__ import annotations

import math
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..core.errors import IndexRangeError, InputError, InputTypeError
from ..core.indices import check_layer
from ..core.progress import bar as progress_bar
from .patterns import KeptQK

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from ..lens import Lens, TextOrTokens

FRACTIONS = (0.5, 0.9)
N_SINK = 4  # the first tokens counted as the attention sink (fewer on a text that short)
MIN_TOKENS = 2  # a profile needs a query with a key before it
HELD_OUT_EVERY = 20  # scripts/train_demo_model.py holds out every 20th stdlib file


# ---------------------------------------------------------------------------- real long text
def stdlib_files(held_out: bool = True) -> list[Path]:
    """The running Python's standard-library ``.py`` files in a fixed order (no tests).

    ``held_out``: only every ``HELD_OUT_EVERY``-th file, the ones the demo model never saw.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "test", "tests", "idle_test", "__pycache__"}
    files = sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))
    return files[::HELD_OUT_EVERY] if held_out else files


def stdlib_tokens(lens: Lens, n_tokens: int, *, held_out: bool = True) -> torch.Tensor:
    """``[1, n_tokens]`` token ids of standard-library source (BOS first), files joined in order.

    Raises ``InputError`` (a ``ValueError``) if the files hold fewer tokens (the held-out ones:
    ~147k for the demo).
    """
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int):
        raise InputTypeError(f"n_tokens is an int (how many tokens of standard-library source), "
                             f"got {type(n_tokens).__name__}")
    if n_tokens < MIN_TOKENS:
        raise InputError(f"n_tokens must be at least {MIN_TOKENS}, got {n_tokens}")
    tok = lens.tokenizer
    ids = [tok.bos_token_id] if tok.bos_token_id is not None else []
    for path in stdlib_files(held_out):
        ids += tok.encode(path.read_text(encoding="utf-8", errors="replace"),
                          add_special_tokens=False)
        if len(ids) >= n_tokens:
            return lens.to_tokens(torch.tensor(ids[:n_tokens])[None])
    raise InputError(f"the standard library's {'held-out ' if held_out else ''}files hold "
                     f"only {len(ids):,} tokens, fewer than n_tokens={n_tokens:,}")


# ---------------------------------------------------------------------------- statistics
def log_bins(n_pos: int) -> np.ndarray:
    """Distance bin edges ``[0, 1, 2, 4, ..., 2^K]`` (``2^K >= n_pos``): bin ``b`` holds
    ``edges[b] <= d < edges[b + 1]``."""
    k = max(1, math.ceil(math.log2(max(2, n_pos))))
    return np.array([0] + [2**i for i in range(k + 1)], dtype=np.int64)


def bin_labels(edges: np.ndarray) -> list[str]:
    return [str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}"
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


@dataclass
class DistanceStats:
    """Where attention goes, by distance: the fields ``HeadStats`` (one layer) and
    ``LongContextProfile`` (stacked over layers) share.

    edges: log2 distance bin edges (``log_bins``); distance: ``[..., heads, n_bins]`` mean mass
    per bin (rows sum to 1); sink: ``[..., heads]`` mean mass on keys ``0..n_sink-1``; reach:
    fraction -> the distance holding that fraction; queries: ``(q0, q1)`` the queries averaged.
    """

    edges: np.ndarray
    distance: torch.Tensor
    sink: torch.Tensor
    reach: dict[float, torch.Tensor]
    n_sink: int
    queries: tuple[int, int]


@dataclass
class HeadStats(DistanceStats):
    """Per-head statistics of one layer over queries ``q0..q1``: distance ``[heads, n_bins]``,
    sink ``[heads]``, reach fraction -> ``[heads, n_queries]`` (per query)."""


def check_stats_args(n_pos: int, queries: Any, n_sink: Any, fractions: Any
                     ) -> tuple[tuple[int, int], int, tuple[float, ...]]:
    """``(queries, n_sink, fractions)`` of a text of ``n_pos`` tokens, checked: queries a pair
    ``0 <= q0 < q1 <= n_pos`` (default all), ``n_sink`` an int in ``1..n_pos`` (default
    ``N_SINK``, or ``n_pos - 1`` on a shorter text), fractions in ``(0, 1]``."""
    if queries is None:
        queries = (0, n_pos)
    if (not isinstance(queries, (tuple, list)) or len(queries) != 2
            or any(isinstance(q, bool) or not isinstance(q, int) for q in queries)):
        raise InputTypeError(f"queries is a pair of ints (q0, q1), the query positions "
                             f"q0..q1-1 averaged over, got {queries!r}")
    q0, q1 = queries
    if not 0 <= q0 < q1 <= n_pos:
        raise IndexRangeError(f"queries ({q0}, {q1}) are not inside the text: need "
                              f"0 <= q0 < q1 <= {n_pos} (it has {n_pos} tokens)")
    if n_sink is None:
        n_sink = min(N_SINK, max(1, n_pos - 1))
    if isinstance(n_sink, bool) or not isinstance(n_sink, int):
        raise InputTypeError(f"n_sink is an int (how many first tokens count as the sink), got "
                             f"{type(n_sink).__name__}")
    if not 1 <= n_sink <= n_pos:
        raise InputError(f"n_sink must be in 1..{n_pos} (the first tokens of the text, which has "
                         f"{n_pos} tokens), got {n_sink}")
    if isinstance(fractions, (int, float)):
        fractions = (fractions,)
    fractions = tuple(fractions)
    if not fractions:
        raise InputError("fractions is empty: pass the attention shares to measure the reach "
                         "of, e.g. (0.5, 0.9)")
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise InputError(f"fractions must be numbers in (0, 1], got {f!r}")
    return (q0, q1), n_sink, fractions


def head_stats(kept: KeptQK, layer: int, heads: Sequence[int] | None = None, *,
               queries: tuple[int, int] | None = None, n_sink: int | None = N_SINK,
               fractions: Sequence[float] = FRACTIONS) -> HeadStats:
    """Distance mass, sink mass and reach of ``heads`` of ``layer``, in one pass per head.
    Computed on the kept q/k's device; the statistics come back on the CPU (for tables and
    plots)."""
    hs = list(range(kept.n_heads)) if heads is None else list(heads)
    (q0, q1), n_sink, fractions = check_stats_args(kept.n_pos, queries, n_sink, fractions)
    edges = log_bins(kept.n_pos)
    device = next(iter(kept.k.values())).device  # where the kept q/k live
    e = torch.as_tensor(edges, device=device)
    dist = torch.zeros(len(hs), len(edges) - 1, dtype=torch.float64, device=device)
    sink = torch.zeros(len(hs), dtype=torch.float64, device=device)
    reach = {f: torch.empty(len(hs), q1 - q0, dtype=torch.int64, device=device)
             for f in fractions}
    for start, sc, lse in kept._scores(layer, hs, q0, q1):  # all heads of a block at once
        p = torch.exp(sc - lse[..., None])  # [heads, rows, n_keys]
        cs = torch.cumsum(p, dim=-1, out=p)  # cs[h, i, x] = mass on keys 0..x (float32)
        n_rows = cs.shape[1]
        rows = torch.arange(start, start + n_rows, device=device)[:, None]  # queries [rows, 1]
        idx = (rows - e[None, :]).expand(len(hs), -1, -1)  # key index at each distance edge
        at = cs.gather(-1, idx.clamp(min=0)).double() * (idx >= 0)  # C(i - e), C(<0) = 0
        dist += (at[..., :-1] - at[..., 1:]).sum(1)  # mass with lo <= d < hi
        sink += cs[..., min(n_sink, cs.shape[-1]) - 1].double().sum(1)
        total = cs.gather(-1, rows.expand(len(hs), -1, -1))  # [heads, rows, 1] ~1
        for f in fractions:  # smallest D: mass on keys i-D..i >= f
            count = torch.searchsorted(cs, total - f * total, right=True)  # keys <= target
            reach[f][:, start - q0:start - q0 + n_rows] = (rows[None] - count)[..., 0]
    n_q = q1 - q0
    return HeadStats(edges, (dist / n_q).float().cpu(), (sink / n_q).float().cpu(),
                     {f: r.cpu() for f, r in reach.items()}, n_sink, (q0, q1))


@dataclass(kw_only=True)
class LongContextProfile(DistanceStats):
    """``long_context_profile``'s result for the kept layers of one text.

    distance ``[layers, heads, n_bins]``, sink ``[layers, heads]``, reach fraction ->
    ``[layers, heads]`` (median over queries), all on the CPU; spectrum: ``rope.spectrum`` (one
    row per rotary pair with ``base_wavelength`` and ``wavelength``) or ``None`` without RoPE.
    """

    layers: list[int]
    n_pos: int
    spectrum: Any = None
    per_layer: dict[int, HeadStats] = field(default_factory=dict, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per (layer, head): sink mass, median reach per fraction, mass at d >= 1k,
        and (with RoPE) how many rotary pairs turn at most once within the 90 % reach, with
        the original and with the model's (smoothed) frequencies: the pairs that still tell
        positions that far apart without wrapping around."""
        import pandas as pd

        far = self.edges[:-1] >= 1024
        waves = {} if self.spectrum is None else {
            "original": self.spectrum["base_wavelength"].to_numpy(),
            "smoothed": self.spectrum["wavelength"].to_numpy()}
        top = max(self.reach) if self.reach else None
        rows = []
        for li, layer in enumerate(self.layers):
            for h in range(self.sink.shape[1]):
                row = {"layer": layer, "head": h, "sink_mass": float(self.sink[li, h])}
                for f, r in self.reach.items():
                    row[f"reach_{round(f * 100)}"] = int(r[li, h])
                row["mass_beyond_1k"] = float(self.distance[li, h, far].sum())
                for name, w in waves.items():
                    row[f"pairs_unwrapped_{name}"] = int((w >= float(self.reach[top][li, h])).sum())
                rows.append(row)
        return pd.DataFrame(rows)

    def figure(self, layer: int | None = None, *, style: str | None = None) -> go.Figure:
        """Mass by distance of each head of ``layer`` (log x), RoPE wavelengths marked below
        (original: grey ticks; smoothed: black), reach 50/90 % as dots. Layer buttons."""
        from .longcontext_figure import profile_figure

        return profile_figure(self, layer, style=style)


def long_context_profile(lens: Lens, text: TextOrTokens | None = None,
                         layers: Sequence[int] | None = None, *, n_tokens: int = 8192,
                         queries: tuple[int, int] | None = None, n_sink: int | None = None,
                         fractions: Sequence[float] = FRACTIONS,
                         kept: KeptQK | None = None, progress: bool = True,
                         ) -> LongContextProfile:
    """Distance mass, sink mass and reach of every head of ``layers`` over one long text.

    ``text``: the text or tokens, at least 2 tokens (default: ``n_tokens`` of held-out
    standard-library source); ``kept``: reuse queries and keys already kept (an
    ``AttentionExplorer``'s ``.kept``) instead of a text. ``queries``: ``(q0, q1)``, the query
    positions averaged over (default all); ``n_sink``: the first tokens counted as the sink
    (default 4, fewer on a shorter text); ``fractions``: the attention shares whose reach is
    measured. Every argument is checked before the model runs.
    """
    from . import rope

    if kept is not None and text is not None:
        raise InputError("pass either text (run the model on it) or kept (queries and keys "
                         "already kept), not both")
    if kept is None:
        tokens = stdlib_tokens(lens, n_tokens) if text is None else lens.to_tokens(text)
        if tokens.shape[0] != 1:
            raise InputError(f"long_context_profile takes one text, got a batch of "
                             f"{tokens.shape[0]}")
        n_pos = tokens.shape[-1]
    else:
        n_pos = kept.n_pos
    if n_pos < MIN_TOKENS:
        shown = "" if kept is not None or not isinstance(text, str) else f" {text[:40]!r} is"
        raise InputError(
            f"long_context_profile needs a text of at least {MIN_TOKENS} tokens (a query and a "
            f"key before it):{shown} {n_pos} token{'s' * (n_pos != 1)}"
            + (" (the BOS token alone)" if n_pos == 1 and kept is None else ""))
    queries, n_sink, fractions = check_stats_args(n_pos, queries, n_sink, fractions)
    if kept is None:
        kept = KeptQK.from_lens(lens, tokens, layers)
        layers = kept.layers
    elif layers is None:
        layers = kept.layers
    else:
        layers = [check_layer(layer, lens.n_layers) for layer in layers]
        missing = [layer for layer in layers if layer not in kept.q]
        if missing or not layers:
            raise IndexRangeError(f"layers {missing or '[]'} were not kept: kept layers are "
                                  f"{kept.layers}")
    stats: dict[int, HeadStats] = {}
    bar = None
    if progress:
        bar = progress_bar(len(layers), "long-context profile: layers", leave=False)
    try:
        for layer in layers:
            stats[layer] = head_stats(kept, layer, queries=queries, n_sink=n_sink,
                                      fractions=fractions)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    first = stats[layers[0]]
    spectrum = rope.spectrum(lens) if lens.facts.rope_theta else None  # none without RoPE
    return LongContextProfile(
        layers=layers, n_pos=kept.n_pos, edges=first.edges,
        distance=torch.stack([stats[la].distance for la in layers]),
        sink=torch.stack([stats[la].sink for la in layers]),
        reach={f: torch.stack([stats[la].reach[f].float().median(-1).values for la in layers])
               for f in fractions},
        n_sink=n_sink, queries=first.queries, spectrum=spectrum, per_layer=stats)
