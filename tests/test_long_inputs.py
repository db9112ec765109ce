"""32,768 tokens of real text on the demo model: forward, residual cache and exact pattern rows
run in memory linear in the length (the long forward passes run once, shared by the tests)."""

from __future__ import annotations

import pytest
import torch
from layouts import DEMO_DIR

import lensnb
from lensnb.analysis.longcontext import stdlib_tokens

N = 32_768
LAYER = 1  # the layer whose rows are recomputed (the kept run stops after it)


@pytest.fixture(scope="module")
def long_run(demo_lens):
    """HF (sdpa) and lensnb on the same 32k tokens, once: what the tests compare."""
    from transformers import AutoModelForCausalLM

    tokens = stdlib_tokens(demo_lens, N)
    assert tokens.shape == (1, N)
    hf = AutoModelForCausalLM.from_pretrained(DEMO_DIR, attn_implementation="sdpa",
                                              dtype=torch.float32).eval()
    with torch.no_grad():
        out = hf(tokens, output_hidden_states=True)
    run = {"tokens": tokens, "hf": hf, "hf_logits": out.logits[0, -64:].clone(),
           "hf_hidden": [h[0].clone() for h in out.hidden_states[:-1]]}  # layer inputs
    del out
    run["lens_logits"] = demo_lens(tokens)[0, -64:].clone()
    logits, cache = demo_lens.run_with_cache(tokens, names="blocks.2.hook_resid_post",
                                             progress=False)
    run["cache_logits"] = logits[0, -64:].clone()
    run["resid"] = cache["blocks.2.hook_resid_post"][0].clone()
    del logits, cache
    run["kept"] = lensnb.attention_patterns(demo_lens, tokens, layers=[LAYER])
    return run


def hf_rotated_qk(run) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Rotated q ``[n_heads, pos, d]`` and k ``[n_kv, pos, d]`` of ``LAYER``, by hand from HF's
    modules and HF's hidden state (independent of lensnb and TransformerLens)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    hf = run["hf"]
    attn = hf.model.layers[LAYER].self_attn
    with torch.no_grad():
        x = hf.model.layers[LAYER].input_layernorm(run["hf_hidden"][LAYER][None])
        d = attn.head_dim
        q = attn.q_proj(x).view(1, N, -1, d).transpose(1, 2)
        k = attn.k_proj(x).view(1, N, -1, d).transpose(1, 2)
        cos, sin = hf.model.rotary_emb(x, torch.arange(N)[None])
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
    return q[0], k[0], attn.scaling


def rows_by_hand(q, k, scaling, head, q0, q1) -> torch.Tensor:
    """softmax(q k^T * scaling + causal mask) of rows q0..q1, in float64: ``[rows, pos]``."""
    kv = head // (q.shape[0] // k.shape[0])
    s = (q[head, q0:q1].double() @ k[kv].double().T) * scaling
    s = s.masked_fill(torch.arange(N)[None] > torch.arange(q0, q1)[:, None], float("-inf"))
    return torch.softmax(s, -1)


@pytest.mark.slow
def test_forward_at_32k_equals_hf_sdpa(long_run):
    torch.testing.assert_close(long_run["lens_logits"], long_run["hf_logits"], rtol=0, atol=1e-4)
    torch.testing.assert_close(long_run["cache_logits"], long_run["hf_logits"], rtol=0,
                               atol=1e-4)


@pytest.mark.slow
def test_residual_cache_at_32k(long_run):
    # HF's hidden_states[3] is the input of layer 3 = the residual after block 2
    torch.testing.assert_close(long_run["resid"], long_run["hf_hidden"][3], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_pattern_rows_and_blocks_at_32k_equal_hand_computation(long_run):
    kept = long_run["kept"]
    assert kept.nbytes < 50 * 2**20  # rotated q/k of one layer: linear in N (32 MB)
    q, k, scaling = hf_rotated_qk(long_run)
    last = rows_by_hand(q, k, scaling, 5, N - 64, N)
    torch.testing.assert_close(kept.pattern(LAYER, 5, slice(N - 64, N)).double(), last,
                               rtol=0, atol=1e-5)
    mid = torch.stack([rows_by_hand(q, k, scaling, h, 10_000, 10_016) for h in (2, 6)])
    block = kept.block(LAYER, [2, 6], 10_000, 10_016, 9_000, 10_016)
    torch.testing.assert_close(block.double(), mid[..., 9_000:10_016], rtol=0, atol=1e-5)
    torch.testing.assert_close(kept.row(LAYER, 5, N - 1).double(), last[-1], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_pattern_cache_at_32k_raises_clear_error(demo_lens, long_run):
    with pytest.raises(lensnb.PatternMemoryError,
                       match=r"\[1, 8, 32768, 32768\] float32 is 34\.4 GB") as err:
        demo_lens.run_with_cache(long_run["tokens"], names="blocks.0.attn.hook_pattern")
    assert "attention_patterns" in str(err.value)
