"""Per-KV-group views of attention: patterns grouped by the key/value head they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..core.errors import InputError
from ..core.kv_groups import group_patterns, group_summaries


# ---------------------------------------------------------------------- per-group views
@dataclass
class KVGroupView:
    """Attention of one layer, query heads grouped by the KV head they share. Every tensor is
    on the CPU (ready to plot or turn into numpy), whatever device the model runs on.

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
    layer = lens.require_self_attention(layer, "kv_group_view (a text self-attention view)")
    name = lens.hook_name("attn.hook_pattern", layer)
    tokens = lens.to_tokens(text_or_tokens)
    if tokens.shape[0] != 1:
        raise InputError(f"kv_group_view takes one text, got a batch of {tokens.shape[0]}")
    _, cache = lens.run_with_cache(tokens, names=name)
    pattern = cache[name][0].float().cpu()  # [n_heads, q, k], on the CPU: a view to plot
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
