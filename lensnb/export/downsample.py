"""The size policy for exported heatmaps: big attention maps are max-pooled, and the figure says so.

An attention pattern over 4,096 tokens is 16.7M cells. As plotly JSON that is hundreds of MB and
as an embedded raster more pixels than any page can show, so exports pool every heatmap with more
than ``max_cells`` rows or columns (default ``MAX_CELLS = 1024``) by an integer factor per axis
(the smallest that brings the axis to ``<= max_cells``). Max-pooling keeps sharp peaks visible (a
single strong induction-head entry survives; mean-pooling would wash it out). The title of the
exported figure gains a note such as "max-pooled 4x4 from 4096x4096 cells"; ``max_cells=None``
turns the policy off.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import InputError

if TYPE_CHECKING:
    import plotly.graph_objects as go

MAX_CELLS = 1024


def max_pool(z: np.ndarray, factor_rows: int, factor_cols: int) -> np.ndarray:
    """Max over non-overlapping ``factor_rows x factor_cols`` blocks (ragged edges kept, NaN
    ignored).

    ``z``: [rows, cols] -> [ceil(rows / factor_rows), ceil(cols / factor_cols)].
    """
    rows, cols = z.shape
    out_r, out_c = math.ceil(rows / factor_rows), math.ceil(cols / factor_cols)
    if rows == out_r * factor_rows and cols == out_c * factor_cols and not np.isnan(z).any():
        return z.reshape(out_r, factor_rows, out_c, factor_cols).max(axis=(1, 3))
    padded = np.full((out_r * factor_rows, out_c * factor_cols), np.nan,
                     dtype=z.dtype if z.dtype.kind == "f" else np.float64)
    padded[:rows, :cols] = z
    with warnings.catch_warnings():  # all-NaN blocks stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(padded.reshape(out_r, factor_rows, out_c, factor_cols), axis=(1, 3))


def _pooled_coords(coords, n: int, factor: int, start: float, step: float) -> list[float]:
    """Centres of the pooled blocks in the axis' original units (labels become positions)."""
    first = np.arange(0, n, factor)  # first index of each block
    last = np.minimum(first + factor, n) - 1
    if coords is not None and len(coords) == n:
        arr = np.asarray(coords)
        if np.issubdtype(arr.dtype, np.number):
            return list((arr[first].astype(float) + arr[last].astype(float)) / 2)
    return list(start + step * (first + last) / 2)


def limit_heatmaps(fig: go.Figure,
                   max_cells: int | None = MAX_CELLS) -> tuple[go.Figure, list[str]]:
    """A copy of ``fig`` with every heatmap at most ``max_cells`` per axis, and notes saying what
    was pooled (empty when nothing was). ``fig`` itself is not changed."""
    import plotly.graph_objects as go

    if max_cells is None:
        return fig, []
    if not isinstance(max_cells, int) or isinstance(max_cells, bool) or max_cells < 1:
        raise InputError(f"max_cells must be a positive int or None, not {max_cells!r}")
    notes: list[str] = []
    out = go.Figure(fig)
    for trace in out.data:
        if trace.type != "heatmap" or trace.z is None:
            continue
        z = np.asarray(trace.z)
        z = z if z.dtype.kind == "f" else z.astype(np.float64)
        if z.ndim != 2 or max(z.shape) <= max_cells:
            continue
        rows, cols = z.shape
        fr, fc = math.ceil(rows / max_cells), math.ceil(cols / max_cells)
        pooled = max_pool(z, fr, fc).astype(np.float32)  # display precision, half the bytes
        x = _pooled_coords(trace.x, cols, fc, trace.x0 if trace.x0 is not None else 0,
                              trace.dx if trace.dx is not None else 1)
        y = _pooled_coords(trace.y, rows, fr, trace.y0 if trace.y0 is not None else 0,
                              trace.dy if trace.dy is not None else 1)
        trace.update(z=pooled, x=x, y=y, x0=None, dx=None, y0=None, dy=None)
        if trace.text is not None and np.ndim(trace.text) == 2:
            trace.text = None  # per-cell labels no longer line up with pooled cells
        if trace.customdata is not None and np.ndim(trace.customdata) >= 2:
            trace.customdata = None
        factor = f"{fr}x" if fr == fc else f"{fr}x{fc}"
        notes.append(f"max-pooled {factor} from {rows}x{cols} cells")
    if notes:
        note = "; ".join(dict.fromkeys(notes))
        title = out.layout.title.text
        out.update_layout(title_text=f"{title}<br><sup>{note}</sup>" if title else
                          f"<sup>{note}</sup>")
    return out, notes
