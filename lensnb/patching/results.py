"""``PatchingResult``: the scores of one sweep, their labels, a table and a figure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..core.kv_groups import KVGroups

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go


@dataclass
class PatchingResult:
    """The scores of one activation-patching sweep (``lensnb.activation_patching``).

    A score is ``(m - m_corrupted) / (m_clean - m_corrupted)``: 0 where patching the cell
    leaves the corrupted run's metric, 1 where it restores the clean run's.

    Attributes:
        scores: float32 on the CPU, ``[n_layers, n_positions]`` (position sites),
            ``[n_layers, n_heads]`` (``"head"``), ``[n_layers, n_positions, n_heads]``
            (``"head_by_pos"``) or ``[n_layers, n_key_value_heads]`` (``"kv_group"``).
        dims: the names of the axes of ``scores``.
        site, method: as passed (``"exact"`` or ``"attribution"``).
        layers: the swept layers (rows of ``scores``).
        positions: the swept positions (position sites), else ``None``.
        str_tokens, corrupted_str_tokens: the two prompts' tokens.
        clean_value, corrupted_value: the raw metric of the two runs (the logit difference by
            default).
        answer, wrong: the token ids of the default metric (``None`` with a custom metric).
        kv_groups: the model's ``KVGroups`` (which query heads share each KV group).
        exact: with ``method="attribution", refine=k``: ``{cell: exact score}`` of the ``k``
            cells with the largest ``|score|``; else empty. A cell is a tuple of the model's
            own numbers, as in ``top``.
        metric_position: the position whose logits the metric reads.
    """

    scores: torch.Tensor
    dims: tuple[str, ...]
    site: str
    method: str
    layers: list[int]
    positions: list[int] | None
    str_tokens: list[str]
    corrupted_str_tokens: list[str]
    clean_value: float
    corrupted_value: float
    answer: int | None
    wrong: int | None
    kv_groups: KVGroups
    exact: dict[tuple[int, ...], float] = field(default_factory=dict)
    metric_position: int = -1

    # ------------------------------------------------------------------ cells
    def cell(self, index: tuple[int, ...]) -> tuple[int, ...]:
        """The cell (model numbers: layer, position, head / KV group) at ``scores[index]``."""
        out = [self.layers[index[0]]]
        rest = list(index[1:])
        if self.positions is not None:
            out.append(self.positions[rest.pop(0)])
        return (*out, *rest)

    def top(self, k: int = 10) -> list[tuple[tuple[int, ...], float]]:
        """The ``k`` cells with the largest ``|score|``, largest first: ``[(cell, score)]``,
        a cell being the model's numbers (``(layer, position)``, ``(layer, head)``,
        ``(layer, position, head)`` or ``(layer, kv_group)``)."""
        flat = self.scores.flatten()
        k = max(0, min(int(k), flat.numel()))
        order = flat.abs().argsort(descending=True, stable=True)[:k]
        out = []
        for i in order.tolist():
            index = tuple(int(x) for x in torch.unravel_index(torch.tensor(i), self.scores.shape))
            out.append((self.cell(index), float(flat[i])))
        return out

    def __repr__(self) -> str:
        best = ", ".join(f"{c} {s:+.3f}" for c, s in self.top(3))
        return (f"PatchingResult({self.site!r}, {self.method}, scores {list(self.scores.shape)} "
                f"{self.dims}; clean {self.clean_value:+.3f}, corrupted "
                f"{self.corrupted_value:+.3f}; top: {best})")

    # ------------------------------------------------------------------ table
    def to_frame(self) -> pd.DataFrame:
        """A long pandas table, one row per cell: ``layer``, then ``position`` and ``token``
        (the clean prompt's), ``head`` and its ``kv_group``, or ``kv_group`` and its ``heads``,
        and ``score`` (and ``exact`` where refined)."""
        import pandas as pd

        rows = []
        for index in _indices(self.scores.shape):
            cell = self.cell(index)
            row: dict[str, Any] = {"layer": cell[0]}
            rest = list(cell[1:])
            if self.positions is not None:
                p = rest.pop(0)
                row.update(position=p, token=self.str_tokens[p])
            if "head" in self.dims:
                h = rest.pop(0)
                row.update(head=h, kv_group=self.kv_groups.kv_head_of(h))
            elif "kv_group" in self.dims:
                g = rest.pop(0)
                row.update(kv_group=g, heads=tuple(self.kv_groups.heads_of_kv(g)))
            row["score"] = float(self.scores[index])
            if self.exact:
                row["exact"] = self.exact.get(cell)
            rows.append(row)
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ figure
    def figure(self, *, title: str | None = None, labels: dict[str, str] | None = None,
               height: float | None = None, color_continuous_scale: Any = None,
               style: str | None = None) -> go.Figure:
        """A plotly heatmap of the scores, on the theme's diverging scale centred at 0: layer
        x position (token labels), layer x head, layer x KV group, or for ``"head_by_pos"``
        one row per head (``L{layer}H{head}``) x position. ``labels`` renames axes
        (``{"layer": "block"}``), ``height`` is in inches, ``style`` as ``lensnb.save``."""
        from .figures import patching_figure

        return patching_figure(self, title=title, labels=labels or {}, height=height,
                               colorscale=color_continuous_scale, style=style)


def _indices(shape: tuple[int, ...] | torch.Size) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = [()]
    for n in shape:
        out = [(*i, j) for i in out for j in range(n)]
    return out
