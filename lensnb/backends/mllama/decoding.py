"""What ``HookedMllama`` keeps between generation steps, and its attention masks.

``MllamaCache`` holds the self-attention keys/values in a transformers ``DynamicCache`` (through
``kv_cache``, the one place that speaks transformers' cache API), and, once an image has been
seen, each cross-attention layer's keys/values (computed once from the image tokens, after the
hooks and the key norm) plus the last text token's ``cross_attention_mask`` row. As in Hugging
Face's ``generate``, every new token sees the images the last prompt token saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ...core.errors import InputError
from .. import kv_cache


@dataclass
class MllamaCache:
    """Decoding state of one generation on a Llama 3.2 Vision model.

    Attributes:
        kv: transformers ``DynamicCache``; self-attention layer ``i`` holds keys/values
            ``[batch, n_kv_heads, pos, d_head]`` (cross-attention layers' slots stay empty).
        self_layers: indices of the self-attention layers.
        cross: layer -> ``(k, v)`` ``[batch, image_tokens, n_kv_heads, d_head]`` (k after
            ``k_norm``), filled on the pass that saw the image.
        cross_row: ``[batch, 1, n_images, max_tiles]`` the last fed token's
            ``cross_attention_mask`` row (which image tiles a new token may see).
    """

    kv: Any
    self_layers: list[int]
    cross: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    cross_row: torch.Tensor | None = None

    @classmethod
    def empty(cls, text_config: Any) -> MllamaCache:
        cross = set(text_config.cross_attention_layers)
        return cls(kv=kv_cache.new_cache(text_config),
                   self_layers=[i for i in range(text_config.num_hidden_layers)
                                if i not in cross])

    def __len__(self) -> int:
        """Text positions seen so far."""
        return self.get_seq_length(self.self_layers[0]) if self.self_layers else 0

    def get_seq_length(self, layer: int = 0) -> int:
        """Positions self-attention layer ``layer`` holds (``transformers``' cache API, so
        ``kv_cache.check_filled`` reads this state as it reads a ``DynamicCache``)."""
        return int(self.kv.get_seq_length(layer))

    @property
    def has_image(self) -> bool:
        return bool(self.cross)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new positions' ``k``/``v`` ``[batch, pos, n_kv, d]`` to ``layer``; all of
        its keys/values so far, same layout."""
        k_all, v_all = self.kv.update(k.transpose(1, 2), v.transpose(1, 2), layer)
        return k_all.transpose(1, 2), v_all.transpose(1, 2)


def causal_mask(attention_mask: torch.Tensor | None, b: int, p: int, past: int,
                dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive self-attention mask ``[batch, 1, pos, past + pos]``: 0 where query ``i`` (at
    ``past + i``) may read key ``j`` (``j <= past + i`` and not padding), the dtype's minimum
    elsewhere. ``attention_mask``: ``[batch, past + pos]`` (1 = real token)."""
    q = torch.arange(p, device=device)[:, None] + past
    k = torch.arange(past + p, device=device)[None, :]
    allowed = (k <= q)[None, None]  # [1, 1, pos, keys]
    if attention_mask is not None:
        if attention_mask.shape[-1] != past + p:
            raise InputError(f"attention_mask covers {attention_mask.shape[-1]} positions, "
                             f"expected {past + p} (cached {past} + new {p})")
        allowed = allowed & attention_mask.bool()[:, None, None, :]
    allowed = allowed.expand(b, 1, p, past + p)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(
        ~allowed, torch.finfo(dtype).min)
