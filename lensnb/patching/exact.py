"""Exact activation patching, batched: each row of a forward pass is one copy of the corrupted
prompt with one cell's clean activation written in.

For a chunk of cells, every hook involved gets one lensnb hook ``fn(activation, ctx)`` that
writes the clean values into the rows whose cell it holds (a position, a head, a KV group, or
a position of a head); the pass stops at the final residual stream and only the metric
position is unembedded.

Rows branch off where they start to differ (``branch_hooks``): a pass begins with one row, the
corrupted prompt (the *trunk*), and at ``blocks.{l}.hook_resid_pre`` the rows of the cells of
layer ``l`` join as copies of the trunk's residual stream. Below its cell's layer a patched
copy equals the corrupted run, so it is never computed there: a sweep over every layer costs
about half the row-layers of running each copy from the embedding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..core.errors import InputError, UnsupportedFeatureError
from . import runner
from .metrics import Metric, apply_metric

if TYPE_CHECKING:
    from ..lens import Lens
    from .sites import Sweep


def run_and_capture(lens: Lens, tokens: torch.Tensor, names: Sequence[str]
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One pass over ``tokens [1, pos]``: the final residual ``[1, pos, d_model]`` and the
    activations of ``names`` (each ``[pos, ...]``, batch row 0)."""
    kept: dict[str, torch.Tensor] = {}

    def keep(act: torch.Tensor, ctx: Any) -> None:
        kept[ctx.name] = act[0].detach()

    resid = runner.final_residual(lens, tokens, [(n, keep) for n in names])
    lost = [n for n in names if n not in kept]
    if lost:
        raise UnsupportedFeatureError(
            f"{', '.join(lost[:3])} did not fire in a forward pass of {lens.name!r}, so there "
            "is no activation to patch there: sweep another site")
    return resid, kept


def writer(rows: list[int], pos: list[int] | None, heads: list[int] | None,
            source: torch.Tensor, moved: dict[str, torch.Tensor] | None = None
            ) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """A hook writing ``source [pos, ...]`` (the clean activation) into ``rows``: at position
    ``pos[i]`` and/or head ``heads[i]`` of row ``rows[i]`` (``None``: every position / the whole
    width). With ``moved``, a position writer keeps the difference it made there (``"delta"``
    ``[k, d]``) for a ``_carrier``."""
    index: dict[str, torch.Tensor] = {}

    def on(device: torch.device) -> tuple[torch.Tensor | None, ...]:
        if "rows" not in index or index["rows"].device != device:
            index["rows"] = torch.tensor(rows, device=device)
            index["pos"] = torch.tensor(pos, device=device) if pos is not None else None
            index["heads"] = torch.tensor(heads, device=device) if heads is not None else None
        return index["rows"], index["pos"], index["heads"]

    def write(act: torch.Tensor, ctx: Any) -> torch.Tensor:
        r, p, h = on(act.device)
        src = source.to(act.device, act.dtype)
        new = act.clone()
        if h is None:  # [batch, pos, d]: one position of each row
            new[r, p] = src[p]
            if moved is not None:
                moved["delta"] = src[p] - act[r, p]  # [k, d]
        elif p is None:  # [batch, pos, heads, d]: one head at every position
            new[r, :, h] = src[:, h].transpose(0, 1)  # [k, pos, d_head]
        else:  # one head at one position
            new[r, p, h] = src[p, h]
        return new

    return write


def _carrier(rows: list[int], pos: list[int], moved: dict[str, torch.Tensor]
             ) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    """A hook adding what a writer moved (``moved["delta"]`` ``[k, d]``) at ``pos[i]`` of
    ``rows[i]``: the residual stream past a hook that only feeds the next norm."""

    def carry(act: torch.Tensor, ctx: Any) -> torch.Tensor:
        r = torch.tensor(rows, device=act.device)
        p = torch.tensor(pos, device=act.device)
        new = act.clone()
        new[r, p] += moved.pop("delta").to(act.device, act.dtype)
        return new

    return carry


def patch_hooks(lens: Lens, sweep: Sweep, cells: Sequence[tuple[int, ...]],
                clean: dict[str, torch.Tensor], *, first_row: int = 0
                ) -> list[tuple[str, Callable]]:
    """lensnb hooks for one pass whose row ``first_row + i`` patches ``cells[i]`` with
    ``clean``."""
    groups: dict[str, tuple[list[int], list[int], list[int]]] = {}
    carried: dict[str, str] = {}  # site hook -> the hook that carries its patch on
    for row, cell in enumerate(cells, start=first_row):
        layer, pos, head = sweep.parts(cell)
        for name in sweep.hook_names(lens, layer):
            rows, ps, hs = groups.setdefault(name, ([], [], []))
            rows.append(row)
            if pos is not None:
                ps.append(pos)
            if head is not None:
                hs.append(head)
            if (carry := sweep.carry_name(lens, layer)) is not None:
                carried[name] = carry
    hooks: list[tuple[str, Callable]] = []
    for name, (rows, ps, hs) in groups.items():
        moved: dict[str, torch.Tensor] | None = {} if name in carried else None
        hooks.append((name, writer(rows, ps or None, hs or None, clean[name], moved)))
        if moved is not None:
            hooks.append((carried[name], _carrier(rows, ps, moved)))
    return hooks


def branch_hooks(lens: Lens, layers: Sequence[int]) -> list[tuple[str, Callable]]:
    """Hooks that add row ``1 + i`` to a pass of one row (the trunk, row 0) at
    ``blocks.{layers[i]}.hook_resid_pre`` as a copy of the trunk (``layers`` ascending, so the
    rows join in order). What the pass shares (position embeddings, masks) is built for the
    trunk's one row and broadcast to the rows that join later, so each row is computed as a
    pass of its own would be (a mask built per row, as for sliding windows, would not match
    rows joining a trunk of several)."""
    if list(layers) != sorted(layers):
        raise InputError(f"branch rows must join in ascending layer order, got layers "
                         f"{list(layers)}")  # pragma: no cover - internal
    hooks = []
    for layer, n in Counter(layers).items():  # ascending, as ``layers``
        def grow(act: torch.Tensor, ctx: Any, n: int = n) -> torch.Tensor:
            return torch.cat([act, act[:1].expand(n, *act.shape[1:])], dim=0)

        hooks.append((lens.hook_name("hook_resid_pre", layer), grow))
    return hooks


def exact_metric(lens: Lens, sweep: Sweep, cells: Sequence[tuple[int, ...]],
                 clean: dict[str, torch.Tensor], corrupted: torch.Tensor, position: int,
                 metric: Metric, size: int, advance: Callable[[int], None]) -> torch.Tensor:
    """The metric ``[len(cells)]`` (float64, CPU) of the corrupted prompt ``[1, pos]`` with each
    cell patched, ``size`` cells per pass, each row joining the pass at its cell's layer."""
    order = sorted(range(len(cells)), key=lambda i: cells[i][0])  # stable: by layer
    out = torch.empty(len(cells), dtype=torch.float64)
    with torch.no_grad():
        for part in runner.chunks(len(cells), size):
            index = [order[i] for i in part]
            chunk = [cells[i] for i in index]
            hooks = branch_hooks(lens, [c[0] for c in chunk])
            # rows 1.. hold the cells (row 0 is the trunk: the corrupted run)
            hooks += patch_hooks(lens, sweep, chunk, clean, first_row=1)
            resid = runner.final_residual(lens, corrupted, hooks)[1:]
            values = apply_metric(metric, runner.logits_at(lens, resid, position))
            out[index] = values.detach().double().cpu()
            advance(len(chunk))
    return out
