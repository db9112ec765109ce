"""What a layer's attention pattern is made of: the hooks that carry its queries and keys as the
softmax uses them, and the rest of the softmax (scaling, logit soft-cap, sliding window).

Each backend declares it per layer (``Backend.layer_qk``): lensnb's analyses (``KeptQK``)
recompute patterns from it, so the same code serves rotary and absolute positions, q/k norms,
soft-caps and sliding windows without asking which model it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import UnsupportedFeatureError


@dataclass(frozen=True)
class LayerQK:
    """One self-attention layer's pattern, ``softmax(cap(q k^T * scaling) + mask)``.

    Attributes:
        q_hook, k_hook: full hook names whose tensors are the queries ``[batch, pos, n_heads,
            d_head]`` and keys ``[batch, pos, n_kv, d_head]`` exactly as the softmax uses them
            (after RoPE, q/k norms; as projected where positions are absolute).
        scaling: the factor on ``q k^T`` (``d_head ** -0.5`` unless the model says otherwise).
        softcap: ``c`` of a logit soft-cap ``c * tanh(s / c)`` (Gemma 2), or ``None``.
        window: a sliding window: query ``i`` sees keys ``j`` with ``i - j < window``, or ``None``.
    """

    q_hook: str
    k_hook: str
    scaling: float
    softcap: float | None = None
    window: int | None = None


def read_layer_attention(hf_attn: Any, config: Any, layer: int, *, q_hook: str,
                         k_hook: str) -> LayerQK:
    """A ``LayerQK`` with the scaling, soft-cap and sliding window read off Hugging Face
    attention module ``hf_attn`` (``scaling``, ``attn_logit_softcapping``) and its ``config``
    (``sliding_window``, per-layer ``layer_types``, ``use_sliding_window``). Attention with
    sinks (GPT-OSS) is refused: its softmax has an extra term per head."""
    if getattr(hf_attn, "sinks", None) is not None:
        raise UnsupportedFeatureError(
            "recomputing patterns from q and k (attention_patterns, AttentionExplorer, "
            "long_context_profile) is not supported on attention with sinks (GPT-OSS); "
            f"cache blocks.{layer}.attn.hook_pattern with lens.run_with_cache instead")
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_heads = config.num_attention_heads
    d_head = getattr(config, "head_dim", None) or config.hidden_size // n_heads
    scaling = float(getattr(hf_attn, "scaling", d_head ** -0.5))
    softcap = getattr(hf_attn, "attn_logit_softcapping", None)
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and layer_types[layer] != "sliding_attention":
        window = None
    if window is not None and not getattr(config, "use_sliding_window", True):
        window = None
    return LayerQK(q_hook, k_hook, scaling, float(softcap) if softcap else None,
                   int(window) if window else None)


def hooked_layer_qk(model: Any, layer: int, q: str = "hook_rot_q", k: str = "hook_rot_k"
                    ) -> LayerQK:
    """The ``LayerQK`` of layer ``layer`` of a hooked model whose attention fires hooks ``q``
    and ``k`` (default: ``hook_rot_q``/``hook_rot_k``) with the queries and keys it uses;
    ``blocks.{layer}.attn.original_component`` is the layer's Hugging Face attention."""
    attn = model.blocks[layer].attn
    return read_layer_attention(getattr(attn, "original_component", None),
                                model.original_model.config, layer,
                                q_hook=f"blocks.{layer}.attn.{q}",
                                k_hook=f"blocks.{layer}.attn.{k}")
