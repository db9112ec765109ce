"""Split QKV: per-head query/key/value inputs, and patches of one head's or one KV group's input
(``lensnb.patch`` with ``head=``/``kv_group=``, installed for the duration of a block).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ..core.errors import InputError, LensnbWarning
from .hook_context import PatchValue, forward_hook
from .patch import Patch

# ---------------------------------------------------------------------- split-QKV inputs
# With split QKV on, every attention layer forks the residual stream (before ln1) into one copy
# per head: ``hook_q_input`` ``[batch, pos, n_heads, d_model]``, ``hook_k_input`` and
# ``hook_v_input`` ``[batch, pos, n_key_value_heads, d_model]``; each copy is normalised and
# projected by its own head's slice of W_Q / W_K / W_V. Patching copy ``g`` of the key input
# changes the keys of KV head ``g`` only, so only the query heads ``heads_of_kv(g)`` see it.

PER_HEAD_INPUTS = ("hook_q_input", "hook_k_input", "hook_v_input")
_WHICH = {"q": "hook_q_input", "k": "hook_k_input", "v": "hook_v_input"}


def require_split_qkv(lens: Any) -> None:
    """Raise ``UnsupportedFeatureError`` up front on a lens without split QKV (Llama 3.2
    Vision), naming what to use instead."""
    lens.require(
        "split_qkv",
        "split QKV (per-head hook_q_input/hook_k_input/hook_v_input, patch_kv_input, "
        "patch_q_input)",
        "use blocks.{i}.ln1.hook_out (the attention input) or blocks.{i}.attn.hook_k / hook_v "
        "(keys and values per KV head) instead, or lens.text_only() for the language model "
        "alone as a plain Llama, where split QKV works")


def input_hook_name(lens: Any, layer: int, which: str) -> str:
    """``blocks.{layer}.attn.hook_{which}_input`` for ``which`` in ``"q"``, ``"k"``, ``"v"``."""
    require_split_qkv(lens)
    if which not in _WHICH:
        raise InputError(f"which must be 'q', 'k' or 'v' (the input to patch), got {which!r}")
    return lens.hook_name(f"attn.{_WHICH[which]}", layer)


def input_patch_hook(lens: Any, layer: int, head: int, value: PatchValue, *,
                     which: str = "k") -> tuple[str, Patch]:
    """A ``(hook name, Patch)`` pair for ``run_with_hooks`` that replaces the per-head input of
    one head at every position: query head ``head`` for ``which="q"``, KV head (KV group)
    ``head`` for ``"k"``/``"v"``. ``value``: anything broadcasting to ``[batch, pos, d_model]``,
    or a function of the original input ``[batch, pos, d_model]``.

    The same as ``lensnb.patch(layer, "attn.hook_k_input", kv_group=head, every_position=True,
    value=value)``; ``run_with_hooks``/``generate`` turn split QKV on for a run with it.
    """
    name = input_hook_name(lens, layer, which)
    p = Patch(layer=layer, hook=f"attn.{_WHICH[which]}", value=value, every_position=True,
              head=head if which == "q" else None, kv_group=None if which == "q" else head)
    return name, p.resolve(lens)  # checks the head / KV group now


def patch_input(lens: Any, layer: int, head: int, value: PatchValue, *,
                which: str = "k") -> contextlib.AbstractContextManager[Any]:
    """Within the block, the ``which`` input (``"q"``, ``"k"``, ``"v"``) of one head of ``layer``
    is replaced by ``value``; split QKV is on inside and restored after (also on error).

        with patch_input(lens, layer=1, head=0, value=torch.zeros_like, which="k"):
            logits, cache = lens.run_with_cache(text, names="blocks.1.attn.hook_pattern")
    """
    name, p = input_patch_hook(lens, layer, head, value, which=which)  # checks indices now
    return _hooked(lens, name, forward_hook(p))


@contextlib.contextmanager
def _hooked(lens: Any, name: str, fn: Callable) -> Iterator[Any]:
    with lens.split_qkv(), lens.bridge.hooks(fwd_hooks=[(name, fn)]):
        yield lens


def patch_kv_input(lens: Any, layer: int, kv_head: int, value: PatchValue, *,
                   which: str = "k") -> contextlib.AbstractContextManager[Any]:
    """Patch the key (``which="k"``) or value (``"v"``) input of KV group ``kv_head``.

    Exactly the query heads ``lens.heads_of_kv(kv_head)`` read it.
    """
    if which not in ("k", "v"):
        raise InputError(f"patch_kv_input patches 'k' or 'v' inputs, got which={which!r} "
                         "(use patch_q_input for a query head)")
    return patch_input(lens, layer, kv_head, value, which=which)


def patch_q_input(lens: Any, layer: int, head: int,
                  value: PatchValue) -> contextlib.AbstractContextManager[Any]:
    """Patch the query input of query head ``head`` (only that head's pattern can change)."""
    return patch_input(lens, layer, head, value, which="q")


def cache_filter(lens: Any, names: Any, keep: Callable[[str], bool]) -> Callable[[str], bool]:
    """The names ``run_with_cache`` keeps, with lensnb's rule for per-head inputs.

    Per-head inputs are cached only when asked for: with split QKV on and ``names=None``,
    ``hook_q_input``/``hook_k_input``/``hook_v_input`` are left out (each is ``n_heads`` or
    ``n_key_value_heads`` copies of the residual stream) and a warning says so. Naming one of
    them while split QKV is off raises, since it would never fire.
    """
    if names is None:
        if not lens.split_qkv_enabled:
            return keep
        warnings.warn(
            "split QKV is on: run_with_cache(names=None) leaves out the per-head inputs "
            "(hook_q_input/hook_k_input/hook_v_input, each n_heads or n_key_value_heads copies "
            "of the residual stream); name them to cache them, e.g. "
            "names=['blocks.*.attn.hook_k_input']",
            LensnbWarning,
            stacklevel=3,
        )
        return lambda name: not name.endswith(PER_HEAD_INPUTS)
    if not lens.split_qkv_enabled and not callable(names):
        asked = [names] if isinstance(names, str) else list(names)
        gated = [n for n in asked if isinstance(n, str) and n.endswith(PER_HEAD_INPUTS)
                 and n in lens.bridge.hook_dict]
        if gated:
            raise InputError(
                f"{', '.join(gated)} only fire with split QKV on: run inside "
                "`with lens.split_qkv():` (or call lens.set_split_qkv(True) first)"
            )
    return keep


