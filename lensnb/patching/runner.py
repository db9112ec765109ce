"""Batched forward passes for patching: many patched copies per pass, stopped at the final
residual stream so that only the positions a metric reads are unembedded (``lens.unembed``),
chunked to a memory budget, with a progress bar, and safe to interrupt.

Every pass goes through ``lens.run_with_hooks`` (or, for gradients, the hooked model's own
``run_with_hooks``), whose hooks are removed when the pass ends, however it ends: an
interrupt (``KeyboardInterrupt``) leaves no hook on the model.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..core import progress as progress_bars
from ..core.errors import InputError, InputTypeError, UnsupportedFeatureError

if TYPE_CHECKING:
    from ..lens import Lens

# Rows per forward pass on a CPU: on SmolLM2-135M at 14 tokens (2 cores) a residual sweep ran
# fastest at ~120 rows per pass (rows join a pass at their own layer, so a pass starts narrow);
# GPUs keep gaining to far larger batches.
CPU_MAX_ROWS = 128
GPU_MAX_ROWS = 1024
# Share of the free memory a sweep's batch may take, and a ceiling on a CPU (a shared machine).
MEMORY_FRACTION = 0.25
CPU_MEMORY_CEILING = 2 * 2**30
MEMORY_ENV = "LENSNB_PATCHING_MEMORY"  # bytes a batch may take, instead of the rule above

Progress = bool | Callable[[int, int], Any] | None
# progress=None shows a bar from this many forward passes on
AUTO_PROGRESS_PASSES = 2


class _Stop(Exception):
    """Raised by the hook on the final residual stream to end a pass there."""

    def __init__(self, resid: torch.Tensor):
        super().__init__("final residual stream reached")
        self.resid = resid


def final_hook(lens: Lens) -> str:
    """The hook on the residual stream entering the final norm."""
    names = lens.bridge.hook_dict
    if "ln_final.hook_in" in names:
        return "ln_final.hook_in"
    return lens.hook_name("hook_resid_post", lens.n_layers - 1)


def _stop(act: torch.Tensor, ctx: Any) -> None:
    raise _Stop(act)


def final_residual(lens: Lens, tokens: torch.Tensor,
                   hooks: Sequence[tuple[str, Callable]] = ()) -> torch.Tensor:
    """The residual stream entering the final norm ``[batch, pos, d_model]`` of one pass with
    lensnb hooks ``hooks`` (``(name, fn(activation, ctx))``), without unembedding."""
    try:
        lens.run_with_hooks(tokens, fwd_hooks=[*hooks, (final_hook(lens), _stop)])
    except _Stop as stop:
        return stop.resid
    raise UnsupportedFeatureError(  # pragma: no cover - every family fires it
        f"{final_hook(lens)} never fired on {lens.name!r}: patching needs the final residual")


def final_residual_grad(lens: Lens, tokens: torch.Tensor,
                        hooks: Sequence[tuple[str, Callable]] = ()) -> torch.Tensor:
    """As ``final_residual``, with gradients: TransformerLens-style hooks ``fn(tensor, hook)``
    on the hooked model's own ``run_with_hooks`` (``Lens.run_with_hooks`` runs without them)."""

    def stop(act: torch.Tensor, hook: Any) -> None:
        raise _Stop(act)

    with torch.enable_grad():
        try:
            lens.bridge.run_with_hooks(tokens, fwd_hooks=[*hooks, (final_hook(lens), stop)])
        except _Stop as out:
            return out.resid
    raise UnsupportedFeatureError(  # pragma: no cover
        f"{final_hook(lens)} never fired on {lens.name!r}: patching needs the final residual")


def logits_at(lens: Lens, resid: torch.Tensor, position: int) -> torch.Tensor:
    """Logits ``[batch, d_vocab]`` of the residual ``[batch, pos, d_model]`` at one position:
    the final norm and unembedding applied to those rows only."""
    return lens.unembed(resid[:, position])


# ---------------------------------------------------------------------------- batch sizes
def memory_budget(device: torch.device) -> int:
    """Bytes one batch may take: ``$LENSNB_PATCHING_MEMORY`` if set, else ``MEMORY_FRACTION``
    of the free memory (at most ``CPU_MEMORY_CEILING`` on a CPU)."""
    env = os.environ.get(MEMORY_ENV)
    if env:
        try:
            return max(1, int(float(env)))
        except ValueError:
            raise InputError(f"${MEMORY_ENV} must be a number of bytes, got {env!r}") from None
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0] * MEMORY_FRACTION)
    try:
        import psutil

        free = int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with ipykernel/accelerate
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return min(int(free * MEMORY_FRACTION), CPU_MEMORY_CEILING)


def row_bytes(lens: Lens, n_pos: int) -> int:
    """Bytes one patched copy takes at its widest point of a pass without gradients: a few
    residual-stream copies, the MLP's hidden layer and one layer's attention scores."""
    f = lens.facts
    width = 6 * f.d_model + 3 * max(f.d_mlp, f.d_model) + 3 * f.n_heads * n_pos
    item = torch.finfo(lens.dtype).bits // 8
    return n_pos * width * item


def batch_size(lens: Lens, n_pos: int, requested: int | None, *, n_rows: int) -> int:
    """Rows per pass: ``requested``, or as many as the memory budget holds (at most
    ``CPU_MAX_ROWS``/``GPU_MAX_ROWS``), balanced so the passes are of equal size."""
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int):
            raise InputTypeError(f"batch_size is a whole number of rows or None, got "
                                 f"{type(requested).__name__}")
        if requested < 1:
            raise InputError(f"batch_size must be at least 1 row, got {requested}")
        size = requested
    else:
        cap = GPU_MAX_ROWS if lens.device.type == "cuda" else CPU_MAX_ROWS
        size = max(1, min(cap, memory_budget(lens.device) // max(1, row_bytes(lens, n_pos))))
    size = max(1, min(size, n_rows))
    passes = math.ceil(n_rows / size)
    return math.ceil(n_rows / passes) if n_rows else 1


def chunks(n: int, size: int) -> list[range]:
    """``range(n)`` cut into consecutive pieces of at most ``size``."""
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


# ---------------------------------------------------------------------------- progress
def check_progress(progress: Progress) -> None:
    if progress is None or isinstance(progress, bool) or callable(progress):
        return
    raise InputTypeError(f"progress is None (a bar for long sweeps), True, False or a "
                         f"function(done, total), got {type(progress).__name__}")


@contextlib.contextmanager
def progress_bar(progress: Progress, total: int, desc: str, *,
                 passes: int) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``: a lensnb bar (``core.progress``) over ``total`` cells
    (``progress=True``, or ``None`` from ``AUTO_PROGRESS_PASSES`` forward passes on; off
    with ``lensnb.options.progress = False``), ``progress(done, total)`` for a callable,
    nothing for ``False``. The bar closes however the block ends."""
    check_progress(progress)
    done = 0
    if callable(progress) and not isinstance(progress, bool):
        def call(n: int) -> None:
            nonlocal done
            done += n
            progress(done, total)

        yield call
        return
    show = progress if progress is not None else passes >= AUTO_PROGRESS_PASSES
    if not show:
        yield lambda n: None
        return
    bar = progress_bars.bar(total, desc, unit="cell", leave=False, show=True)
    try:
        yield bar.update
    finally:
        bar.close()
