"""Tiny configurations of every family lensnb hooks, as ``(model_type, config overrides)``: the
one list ``lensnb.check()`` builds (``models.py``) and the test suite parametrises over
(``tests/layouts.py``). Overrides go on top of a 2-layer, ``d_model = 64`` base (``models.BASE``);
each is a real architecture's distinguishing features, shrunk."""

from __future__ import annotations

from typing import Any

Layout = tuple[str, dict[str, Any]]

#: Llama 3.1's frequency-smoothed RoPE, on a context short enough for its three regions to show.
LLAMA3_ROPE = dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                   high_freq_factor=4.0, original_max_position_embeddings=64)

#: The families beyond the Llama-like attention layouts: what each adds is in the comment.
FAMILIES: dict[str, Layout] = {
    # absolute learned positions (no RoPE), LayerNorm with bias, fused q/k/v in a Conv1D
    "gpt2": ("gpt2", dict(num_attention_heads=4, num_key_value_heads=4)),
    # Pythia: rotary on a quarter of each head (pass-through dims), parallel attention + MLP,
    # LayerNorm, fused q/k/v
    "gpt-neox": ("gpt_neox", dict(num_attention_heads=4, num_key_value_heads=4, rotary_pct=0.25,
                                  use_parallel_residual=True)),
    # fused q/k/v and gate/up projections, rotary on half of each head, GQA
    "phi3": ("phi3", dict(num_attention_heads=4, num_key_value_heads=2,
                          partial_rotary_factor=0.5)),
    # RMSNorm on each head's q and k before RoPE
    "qwen3": ("qwen3", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16)),
    # q/k norms over all heads, norms after attention and MLP (none before)
    "olmo2": ("olmo2", dict(num_attention_heads=4, num_key_value_heads=2)),
    # attention and final-logit soft-caps (small, so they bite on a random model), a sliding
    # window (4 keys) on every other layer, norms before and after attention and MLP, scaling
    # by query_pre_attn_scalar instead of d_head
    "gemma2": ("gemma2", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              sliding_window=4, attn_logit_softcapping=0.05,
                              final_logit_softcapping=1.0, query_pre_attn_scalar=24)),
    # q/k norms, (1 + w) norms around attention and MLP, MQA, a sliding window on layer 0
    "gemma3": ("gemma3_text", dict(num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                                   sliding_window=4,
                                   layer_types=["sliding_attention", "full_attention"])),
}
