"""Grouped-query attention: the one source of truth for KV-group arithmetic.

Query head ``h`` reads key/value head ``h // group_size`` where
``group_size = n_heads // n_key_value_heads`` (the layout of ``repeat_kv`` in transformers).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch


class GQAError(ValueError):
    """A GQA-only view asked of a model without GQA, or an inconsistent head layout."""


class KVGroups:
    """KV-group arithmetic, mixed into ``Lens`` (needs ``n_heads`` and ``n_key_value_heads``)."""

    n_heads: int
    n_key_value_heads: int

    @property
    def group_size(self) -> int:
        """Query heads sharing one key/value head."""
        if self.n_heads % self.n_key_value_heads:
            raise GQAError(
                f"n_heads ({self.n_heads}) is not a multiple of n_key_value_heads "
                f"({self.n_key_value_heads})"
            )
        return self.n_heads // self.n_key_value_heads

    def _check_head(self, head: int) -> int:
        if not isinstance(head, int) or isinstance(head, bool):
            raise TypeError(f"a head index is an int, got {type(head).__name__}")
        if not 0 <= head < self.n_heads:
            raise IndexError(
                f"query head {head} is out of range: valid heads are 0..{self.n_heads - 1}"
            )
        return head

    def _check_kv_head(self, kv_head: int) -> int:
        if not isinstance(kv_head, int) or isinstance(kv_head, bool):
            raise TypeError(f"a KV-group index is an int, got {type(kv_head).__name__}")
        if not 0 <= kv_head < self.n_key_value_heads:
            raise IndexError(
                f"KV group {kv_head} is out of range: valid KV groups are "
                f"0..{self.n_key_value_heads - 1}"
            )
        return kv_head

    def kv_head_of(self, head: int) -> int:
        """The key/value head (KV group) that query head ``head`` reads."""
        return self._check_head(head) // self.group_size

    def heads_of_kv(self, kv_head: int) -> list[int]:
        """The query heads that share key/value head ``kv_head``."""
        g = self.group_size
        start = self._check_kv_head(kv_head) * g
        return list(range(start, start + g))

    def require_gqa(self, what: str = "this view") -> None:
        """Raise ``GQAError`` when the model has one KV head per query head (plain MHA)."""
        if self.n_key_value_heads == self.n_heads:
            raise GQAError(
                f"{what} needs grouped-query attention, but this model has no GQA: "
                f"{self.n_heads} query heads and {self.n_key_value_heads} key/value heads "
                "(one KV head per query head)"
            )


def kv_groups(obj: Any) -> KVGroups:
    """KV-group arithmetic for a ``Lens`` or ``ModelFacts``."""
    if isinstance(obj, KVGroups):
        return obj
    g = KVGroups()
    g.n_heads, g.n_key_value_heads = obj.n_heads, obj.n_key_value_heads
    return g


def group_patterns(pattern: Any, n_key_value_heads: int) -> Any:
    """``[..., n_heads, q, k]`` -> ``[..., n_kv, group_size, q, k]`` (query heads by KV group)."""
    n_heads = pattern.shape[-3]
    if n_heads % n_key_value_heads:
        raise GQAError(f"{n_heads} heads do not split into {n_key_value_heads} KV groups")
    return pattern.unflatten(-3, (n_key_value_heads, n_heads // n_key_value_heads))


def group_summaries(pattern: Any, n_key_value_heads: int) -> dict[str, Any]:
    """Per-KV-group summaries of attention patterns ``[..., n_heads, q, k]``.

    Returns ``mean``, ``max`` and ``spread`` (max - min over the group's heads), each
    ``[..., n_kv, q, k]``: a large spread means heads that share K/V still attend differently.
    """
    g = group_patterns(pattern, n_key_value_heads)
    hi, lo = g.amax(dim=-3), g.amin(dim=-3)
    return {"mean": g.mean(dim=-3), "max": hi, "spread": hi - lo}


# ---------------------------------------------------------------------- split-QKV inputs
# With split QKV on, every attention layer forks the residual stream (before ln1) into one copy
# per head: ``hook_q_input`` ``[batch, pos, n_heads, d_model]``, ``hook_k_input`` and
# ``hook_v_input`` ``[batch, pos, n_key_value_heads, d_model]``; each copy is normalised and
# projected by its own head's slice of W_Q / W_K / W_V. Patching copy ``g`` of the key input
# changes the keys of KV head ``g`` only, so only the query heads ``heads_of_kv(g)`` see it.

PER_HEAD_INPUTS = ("hook_q_input", "hook_k_input", "hook_v_input")
_WHICH = {"q": "hook_q_input", "k": "hook_k_input", "v": "hook_v_input"}

#: ``value`` of a patch: a replacement ``[batch, pos, d_model]`` (anything broadcasting to it),
#: or a function of the original input ``[batch, pos, d_model]`` returning the replacement.
PatchValue = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def require_split_qkv(lens: Any) -> None:
    """Raise ``UnsupportedFeatureError`` up front on a lens without split QKV (Llama 3.2
    Vision), naming what to use instead."""
    lens.require_text_model(
        "split QKV (per-head hook_q_input/hook_k_input/hook_v_input, patch_kv_input, "
        "patch_q_input)",
        "use blocks.{i}.ln1.hook_out (the attention input) or blocks.{i}.attn.hook_k / hook_v "
        "(keys and values per KV head) instead, or lens.text_only() for the language model "
        "alone as a plain Llama, where split QKV works")


def input_hook_name(lens: Any, layer: int, which: str) -> str:
    """``blocks.{layer}.attn.hook_{which}_input`` for ``which`` in ``"q"``, ``"k"``, ``"v"``."""
    require_split_qkv(lens)
    if which not in _WHICH:
        raise ValueError(f"which must be 'q', 'k' or 'v' (the input to patch), got {which!r}")
    return lens.hook_name(f"attn.{_WHICH[which]}", layer)


def _patch_fn(index: int, value: PatchValue) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    def hook(inputs: torch.Tensor, hook: Any) -> torch.Tensor:  # [batch, pos, heads, d_model]
        inputs = inputs.clone()
        old = inputs[:, :, index]  # [batch, pos, d_model]
        new = value(old) if callable(value) else value
        inputs[:, :, index] = torch.as_tensor(new, dtype=old.dtype, device=old.device)
        return inputs

    return hook


def input_patch_hook(lens: Any, layer: int, head: int, value: PatchValue, *,
                     which: str = "k") -> tuple[str, Callable]:
    """A ``(hook name, fn)`` pair for ``run_with_hooks`` that replaces the per-head input of one
    head: query head ``head`` for ``which="q"``, KV head (KV group) ``head`` for ``"k"``/``"v"``.

    Needs split QKV on (``with lens.split_qkv():``); ``patch_input`` turns it on for you.
    """
    name = input_hook_name(lens, layer, which)
    index = lens._check_head(head) if which == "q" else lens._check_kv_head(head)
    return name, _patch_fn(index, value)


def patch_input(lens: Any, layer: int, head: int, value: PatchValue, *,
                which: str = "k") -> contextlib.AbstractContextManager[Any]:
    """Within the block, the ``which`` input (``"q"``, ``"k"``, ``"v"``) of one head of ``layer``
    is replaced by ``value``; split QKV is on inside and restored after (also on error).

        with patch_input(lens, layer=1, head=0, value=torch.zeros_like, which="k"):
            logits, cache = lens.run_with_cache(text, names="blocks.1.attn.hook_pattern")
    """
    name, fn = input_patch_hook(lens, layer, head, value, which=which)  # checks indices now
    return _hooked(lens, name, fn)


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
        raise ValueError(f"patch_kv_input patches 'k' or 'v' inputs, got which={which!r} "
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
            stacklevel=3,
        )
        return lambda name: not name.endswith(PER_HEAD_INPUTS)
    if not lens.split_qkv_enabled and not callable(names):
        asked = [names] if isinstance(names, str) else list(names)
        gated = [n for n in asked if isinstance(n, str) and n.endswith(PER_HEAD_INPUTS)
                 and n in lens.bridge.hook_dict]
        if gated:
            raise ValueError(
                f"{', '.join(gated)} only fire with split QKV on: run inside "
                "`with lens.split_qkv():` (or call lens.set_split_qkv(True) first)"
            )
    return keep


# ---------------------------------------------------------------------- per-group views
@dataclass
class KVGroupView:
    """Attention of one layer, query heads grouped by the KV head they share.

    Attributes:
        layer: the layer.
        str_tokens: the tokens (BOS included).
        patterns: ``[n_kv, group_size, q, k]`` attention patterns (``patterns[g, i]`` is query
            head ``heads[g][i]``).
        heads: ``heads[g]`` = query heads of KV group ``g``.
        mean, max, spread: ``[n_kv, q, k]`` per-group summaries (``spread`` = max - min over the
            group's heads).
        spread_score: ``[n_kv]`` mean spread over the causal (q >= k) entries: how differently
            the heads of a group attend although they share keys and values.
    """

    layer: int
    str_tokens: list[str]
    patterns: torch.Tensor
    heads: list[list[int]]
    mean: torch.Tensor
    max: torch.Tensor
    spread: torch.Tensor
    spread_score: torch.Tensor

    def __repr__(self) -> str:
        n_kv, g, q, _ = self.patterns.shape
        scores = ", ".join(f"{s:.3f}" for s in self.spread_score.tolist())
        return (f"KVGroupView(layer {self.layer}: {n_kv} KV groups x {g} query heads, "
                f"{q} tokens; spread score per group [{scores}])")


def kv_group_view(lens: Any, text_or_tokens: Any, layer: int) -> KVGroupView:
    """Patterns of ``layer`` grouped by KV head, with mean/max/spread per group (one text).

    A GQA-only view: raises ``GQAError`` on a model with one KV head per query head.
    """
    lens.require_gqa("a per-KV-group view")
    if isinstance(layer, int) and -lens.n_layers <= layer < lens.n_layers:
        layer = lens.require_self_attention(layer, "kv_group_view (a text self-attention view)")
    name = lens.hook_name("attn.hook_pattern", layer)
    tokens = lens.to_tokens(text_or_tokens)
    if tokens.shape[0] != 1:
        raise ValueError(f"kv_group_view takes one text, got a batch of {tokens.shape[0]}")
    _, cache = lens.run_with_cache(tokens, names=name)
    pattern = cache[name][0].float()  # [n_heads, q, k]
    summaries = group_summaries(pattern, lens.n_key_value_heads)
    causal = torch.ones(pattern.shape[-2:], dtype=torch.bool, device=pattern.device).tril()
    spread_score = summaries["spread"][:, causal].mean(dim=-1)  # [n_kv]
    return KVGroupView(
        layer=int(name.split(".")[1]),
        str_tokens=lens.to_str_tokens(tokens),
        patterns=group_patterns(pattern, lens.n_key_value_heads),
        heads=[lens.heads_of_kv(g) for g in range(lens.n_key_value_heads)],
        spread_score=spread_score,
        **summaries,
    )
