"""The up-front memory check of full attention patterns, for every backend.

A hook on an attention pattern (or on anything only an eager attention computes) makes its layer
build the full ``[batch, n_heads, pos, pos]`` scores: 34 GB for one layer of 8 heads at 32,768
tokens. Before a forward pass starts, ``guard`` raises ``PatternMemoryError`` with the size it
needs and the alternatives when those hooks cannot fit. It reads only what the contract's
``HookedModel`` offers (``hook_dict``, ``cfg.n_heads``, ``blocks[i].attn`` where there are
blocks), so each backend's attention switch (``Backend.attention``) runs it first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from ..core.errors import InputError, PatternMemoryError
from .contract import input_device

# Hooks of an attention layer that only its eager computation fires (the bridge's
# re-implementation, HookedMllama's own loop).
NEEDS_PATTERN = ("hook_attn_scores", "hook_pattern", "hook_hidden_states", "hook_result",
                 "hook_attn_in", "hook_q_input", "hook_k_input", "hook_v_input",
                 "hook_q_normed", "hook_k_normed", "hook_q_gate", "hook_gate")
MEMORY_FRACTION = 0.8  # patterns may use at most this share of the memory free at call time
MEMORY_LIMIT_ENV = "LENSNB_PATTERN_MEMORY"  # bytes (or "none" for no check) instead of that
WORKING_COPIES = 3  # scores, masked scores and softmax of the layer being computed


def attention_modules(model: Any) -> list[Any]:
    """The attention module of each layer ``[n_layers]`` (``blocks[i].attn``; empty for a model
    without blocks)."""
    return [getattr(block, "attn", None) for block in getattr(model, "blocks", ())]


def hooked(attn: Any) -> list[str]:
    """The N²-only hooks of one attention module that have a hook on them right now."""
    if attn is None:
        return []
    return [n for n in NEEDS_PATTERN
            if (hp := getattr(attn, n, None)) is not None and len(hp._forward_hooks)]


def live_pattern_hooks(model: Any) -> list[str]:
    """The N²-only hook names that have a hook on them right now (``blocks.{i}.attn.{hook}``)."""
    return [f"blocks.{i}.attn.{n}" for i, a in enumerate(attention_modules(model))
            for n in hooked(a)]


def pattern_hook_names(model: Any, keep: Callable[[str], bool]) -> list[str]:
    """The N²-only hook names of ``model`` that ``keep`` selects."""
    return [n for n in model.hook_dict if n.rsplit(".", 1)[-1] in NEEDS_PATTERN and keep(n)]


def available_bytes(device: torch.device) -> int:
    """Memory free on ``device`` now (CUDA: ``mem_get_info``; CPU: available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with ipython/accelerate
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def pattern_budget(device: torch.device) -> int | None:
    """Bytes patterns may take: ``$LENSNB_PATTERN_MEMORY`` if set (``none``: no limit), else
    ``MEMORY_FRACTION`` of the memory free now."""
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env:
        if env.strip().lower() == "none":
            return None
        try:
            return int(float(env))
        except ValueError:
            raise InputError(f"${MEMORY_LIMIT_ENV} must be a number of bytes or 'none', "
                             f"got {env!r}") from None
    return int(available_bytes(device) * MEMORY_FRACTION)


def pattern_bytes(model: Any, batch: int, n_pos: int) -> int:
    """Bytes of one layer's full scores ``[batch, n_heads, pos, pos]`` in float32."""
    return batch * model.cfg.n_heads * n_pos * n_pos * 4


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_pattern_memory(model: Any, names: Iterable[str], batch: int, n_pos: int,
                         cache: bool = False) -> None:
    """Raise ``PatternMemoryError`` if N²-only hooks ``names`` cannot run at this length.

    Need: ``WORKING_COPIES`` layers' ``[batch, n_heads, pos, pos]`` float32 (the layer being
    computed) plus, when ``cache``, one per cached ``hook_pattern``/``hook_attn_scores``.
    """
    names = sorted(names)
    if not names:
        return
    n_kept = sum(n.endswith(("hook_pattern", "hook_attn_scores")) for n in names) if cache else 0
    budget = pattern_budget(input_device(model))
    one = pattern_bytes(model, batch, n_pos)
    need = one * (WORKING_COPIES + n_kept)
    if budget is None or need <= budget:
        return
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise PatternMemoryError(
        f"{shown} need the full attention pattern at {n_pos:,} tokens: one layer's "
        f"[{batch}, {model.cfg.n_heads}, {n_pos}, {n_pos}] float32 is {_gb(one)}, and this call "
        f"needs about {_gb(need)} ({WORKING_COPIES} working copies + {n_kept} kept), more "
        f"than the {_gb(budget)} it may use ({MEMORY_FRACTION:.0%} of the free memory; set "
        f"${MEMORY_LIMIT_ENV} to a number of bytes, or 'none', to change that). Instead: "
        f"lensnb.attention_patterns(lens, text, layers) gives exact rows, columns, blocks and "
        f"pooled overviews of any head without the full matrix, lensnb.AttentionExplorer shows "
        f"them, and residual-stream or q/k/v hooks run at any length."
    )


def check(model: Any, keep: Callable[[str], bool], tokens: torch.Tensor | None,
          cache: bool = False) -> tuple[list[str], list[str]]:
    """The up-front check of one call: the N²-only hooks ``keep`` selects (``wanted``) and
    those already hooked (``live``), checked against the memory for ``tokens [batch, pos]``
    (no check without tokens). Returns ``(wanted, live)``."""
    wanted = pattern_hook_names(model, keep)
    live = live_pattern_hooks(model)
    if tokens is not None:
        check_pattern_memory(model, set(wanted) | set(live), tokens.shape[0], tokens.shape[-1],
                             cache)
    return wanted, live


@contextlib.contextmanager
def guard(model: Any, names: Callable[[str], bool] | Iterable[str] = (),
          tokens: torch.Tensor | None = None, *, cache: bool = False) -> Iterator[None]:
    """The attention switch of a backend whose attention is always eager (``Backend.attention``
    without a memory-efficient path): the up-front memory check, nothing else."""
    check(model, names if callable(names) else set(names).__contains__, tokens, cache)
    yield
