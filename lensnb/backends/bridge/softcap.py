"""Soft-capped attention (Gemma 2) in memory linear in the length, for the memory-efficient path.

PyTorch's sdpa has no logit soft-cap, so Hugging Face runs Gemma 2 eagerly, building each
layer's ``[batch, n_heads, pos, pos]`` scores (34 GB for 8 heads at 32,768 tokens). This computes
HF eager's numbers, ``softmax(cap * tanh(q k^T * scaling / cap) + mask) v`` (the same operations
in the same order, softmax in float32), a block of query rows at a time, so a layer never holds
more than ``CHUNK_BYTES`` of scores.
"""

from __future__ import annotations

from typing import Any

import torch

CHUNK_BYTES = 64 * 2**20  # scores of one block of query rows (float32)


def softcapped_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                         value: torch.Tensor, attention_mask: torch.Tensor | None, *,
                         softcap: float, scaling: float | None = None, dropout: float = 0.0,
                         **_: Any) -> tuple[torch.Tensor, None]:
    """Attention with a logit soft-cap, blockwise. query ``[batch, n_heads, q_pos, d_head]``,
    key/value ``[batch, n_kv, kv_pos, d_head]`` (the last ``q_pos`` keys are the queries'
    positions: earlier ones come from a KV cache); ``attention_mask``: transformers' sdpa mask
    (``[batch, 1, q_pos, kv_pos]``, ``True`` where a query sees a key, or additive), or ``None``
    for plain causal. Returns ``([batch, q_pos, n_heads, d_head], None)`` like HF's functions."""
    b, n_heads, q_len, d = query.shape
    n_kv, kv_len = key.shape[1], key.shape[2]
    group = n_heads // n_kv
    scaling = d ** -0.5 if scaling is None else scaling
    rows = max(1, CHUNK_BYTES // (b * n_heads * kv_len * 4))
    offset = kv_len - q_len  # query i sits at key position offset + i
    qg = query.reshape(b, n_kv, group, q_len, d)
    k_t = key[:, :, None].transpose(-1, -2)  # [b, n_kv, 1, d, kv_len]
    out = query.new_empty(b, q_len, n_heads, d)
    for start in range(0, q_len, rows):
        stop = min(q_len, start + rows)
        s = torch.matmul(qg[..., start:stop, :], k_t) * scaling  # [b, n_kv, g, r, kv_len]
        s = torch.tanh(s / softcap) * softcap
        if attention_mask is None:
            qi = torch.arange(offset + start, offset + stop, device=s.device)[:, None]
            s = s.masked_fill(torch.arange(kv_len, device=s.device)[None] > qi, float("-inf"))
        else:
            m = attention_mask[:, :, start:stop, :kv_len][:, :, None]  # [b, 1, 1, r, kv_len]
            s = s.masked_fill(~m, float("-inf")) if m.dtype == torch.bool else s + m
        p = torch.softmax(s, dim=-1, dtype=torch.float32).to(query.dtype)
        p = torch.nn.functional.dropout(p, p=dropout, training=module.training)
        o = torch.matmul(p, value[:, :, None])  # [b, n_kv, g, r, d]
        out[:, start:stop] = o.reshape(b, n_heads, stop - start, d).transpose(1, 2)
    return out, None
