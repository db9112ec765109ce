"""Patterns recomputed from kept rotated q/k equal the model's own (HF eager attentions)."""

from __future__ import annotations

import pytest
import torch
from layouts import LAYOUTS

import lensnb
from lensnb.analysis.patterns import KeptQK, summaries_pooled

TEXT = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))"


def hf_attentions(lens, text):
    """Independent truth: a plain HF forward with eager attention, output_attentions=True."""
    from transformers import AutoModelForCausalLM

    path = lens.hf_model.config._name_or_path
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager",
                                                 dtype=torch.float32)
    with torch.no_grad():
        out = model(lens.to_tokens(text), output_attentions=True)
    return [a[0] for a in out.attentions]  # per layer [n_heads, q, k]


def tiny(make_tiny_model, layout):
    model_type, overrides = LAYOUTS[layout]
    return lensnb.load(str(make_tiny_model(model_type, **overrides)))


@pytest.fixture(scope="module")
def demo_kept(demo_lens):
    return KeptQK.from_lens(demo_lens, TEXT)


def test_demo_patterns_equal_hf_and_hook_pattern(demo_lens, demo_kept):
    truth = hf_attentions(demo_lens, TEXT)
    _, cache = demo_lens.run_with_cache(TEXT, names="blocks.*.attn.hook_pattern")
    for layer in range(demo_lens.n_layers):
        got = demo_kept.pattern(layer)
        torch.testing.assert_close(got, truth[layer], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got, cache[f"blocks.{layer}.attn.hook_pattern"][0],
                                   rtol=1e-5, atol=1e-6)


# Kept q/k come from the memory-efficient (sdpa) forward; HF eager's come from its own: upstream
# layers differ by float rounding. Measured max |diff| of the weights over every layout and
# layer: 3e-7 (transformers 5.22, torch 2.13 CPU, float32).
PATTERN_ATOL = 1e-6


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_family_equals_hf_eager_in_every_layer(make_tiny_model, layout):
    """GPT-2 (absolute positions), NeoX/Phi-3 (partial rotary, fused q/k/v), Qwen3/OLMo-2 (q/k
    norms), Gemma 2 (soft-cap, sliding window, query_pre_attn_scalar), Gemma 3, Llama-likes."""
    lens = tiny(make_tiny_model, layout)
    kept = lensnb.attention_patterns(lens, TEXT)
    assert (kept.n_heads, kept.n_kv) == (lens.n_heads, lens.n_key_value_heads)
    truth = hf_attentions(lens, TEXT)
    assert len(truth) == lens.n_layers == len(kept.layers)
    for layer, want in enumerate(truth):
        torch.testing.assert_close(kept.pattern(layer), want, rtol=0, atol=PATTERN_ATOL)


def test_the_softcap_and_the_scaling_are_the_models(make_tiny_model):
    """Gemma 2's tiny layout caps scores (at 0.05: its random scores reach ~0.08) and scales by
    24**-0.5: recomputing without the cap, or with d_head**-0.5, is measurably off HF (so the
    test above would catch either)."""
    import dataclasses

    lens = tiny(make_tiny_model, "gemma2")
    kept = lensnb.attention_patterns(lens, TEXT, layers=[1])
    spec = kept.specs[1]
    overrides = LAYOUTS["gemma2"][1]
    assert spec.softcap == overrides["attn_logit_softcapping"]
    assert spec.scaling == overrides["query_pre_attn_scalar"] ** -0.5
    truth = hf_attentions(lens, TEXT)[1]
    for wrong in (dict(softcap=None), dict(scaling=16 ** -0.5)):
        kept.specs[1] = dataclasses.replace(spec, **wrong)
        assert (kept.pattern(1) - truth).abs().max() > 1e-3, wrong
    kept.specs[1] = spec
    torch.testing.assert_close(kept.pattern(1), truth, rtol=0, atol=PATTERN_ATOL)


def test_partial_rotary_keeps_the_pass_through_dims(make_tiny_model):
    """NeoX rotates a quarter of each head: the kept keys of a position differ from its unrotated
    keys in the first rotary_dim dims only, and equal them in the rest."""
    lens = tiny(make_tiny_model, "gpt-neox")
    kept = lensnb.attention_patterns(lens, TEXT, layers=[0])
    _, cache = lens.run_with_cache(TEXT, names="blocks.0.attn.hook_k")
    plain = cache["blocks.0.attn.hook_k"][0]  # [pos, heads, d_head], before RoPE
    rotary = lens.hf_model.gpt_neox.layers[0].attention.rotary_ndims  # 16 * 0.25
    assert rotary == 4
    torch.testing.assert_close(kept.k[0][:, :, rotary:], plain[:, :, rotary:], rtol=0, atol=0)
    assert (kept.k[0][1:, :, :rotary] - plain[1:, :, :rotary]).abs().max() > 1e-3


def test_sliding_window_equals_hf(make_tiny_model):
    lens = lensnb.load(str(make_tiny_model("mistral", num_attention_heads=4,
                                           num_key_value_heads=2, sliding_window=5)))
    kept = KeptQK.from_lens(lens, TEXT)
    assert kept.specs[0].window == 5
    for layer, truth in enumerate(hf_attentions(lens, TEXT)):
        got = kept.pattern(layer)
        torch.testing.assert_close(got, truth, rtol=1e-5, atol=1e-6)
        n = got.shape[-1]
        assert got[:, n - 1, : n - 5].abs().max() == 0  # keys outside the window get nothing


def test_rows_columns_and_chunking(demo_kept, monkeypatch):
    full = demo_kept.pattern(2)  # [heads, q, k]
    n = demo_kept.n_pos
    torch.testing.assert_close(demo_kept.pattern(2, 5, slice(3, 9)), full[5, 3:9])
    torch.testing.assert_close(demo_kept.row(2, 6, n - 1), full[6, n - 1])
    torch.testing.assert_close(demo_kept.column(2, 6, 4), full[6, :, 4])
    assert demo_kept.row(2, 6, 2)[3:].abs().max() == 0  # causal: later keys get nothing
    import lensnb.analysis.patterns as patterns

    monkeypatch.setattr(patterns, "CHUNK_BYTES", 1)  # one row per block: same numbers
    torch.testing.assert_close(demo_kept.pattern(2), full)


def test_pooled_is_blockwise_max(demo_kept):
    full = demo_kept.pattern(1, [3])[0]
    n = full.shape[0]
    tile, (fq, fk) = demo_kept.pooled(1, [3], size=4)
    assert (fq, fk) == (-(-n // 4), -(-n // 4))
    for i in range(tile.shape[1]):
        for j in range(tile.shape[2]):
            block = full[i * fq:(i + 1) * fq, j * fk:(j + 1) * fk]
            assert tile[0, i, j] == block.max()
    win, f = demo_kept.pooled(1, [3], 2, 9, 1, 6, size=64)
    assert f == (1, 1)
    torch.testing.assert_close(win[0], full[2:9, 1:6])


def test_group_summaries_pooled_match_formula(demo_lens, demo_kept):
    heads, summaries, (f, _) = summaries_pooled(demo_kept, 3, 1, size=5)
    group = demo_lens.heads_of_kv(1)
    full = demo_kept.pattern(3, group)  # [g, q, k]
    expect = {"mean": full.mean(0), "max": full.max(0).values,
              "spread": full.max(0).values - full.min(0).values}
    n = full.shape[-1]
    for name, want in expect.items():
        for i in range(0, n, f):
            for j in range(0, n, f):
                assert summaries[name][i // f, j // f] == pytest.approx(
                    float(want[i:i + f, j:j + f].max()), abs=1e-6)
    assert heads.shape[0] == len(group)


def test_memory_is_q_and_k_only(demo_lens, demo_kept):
    d, n = demo_lens.facts.d_head, demo_kept.n_pos
    per_layer = n * (demo_lens.n_heads + demo_lens.n_key_value_heads) * d * 4
    assert demo_kept.nbytes - sum(t.numel() * 4 for t in demo_kept._lse.values()) == (
        demo_lens.n_layers * per_layer)


def test_bad_input_messages(demo_lens, demo_kept):
    with pytest.raises(IndexError, match="valid layers are 0..3"):
        KeptQK.from_lens(demo_lens, TEXT, layers=[7])
    with pytest.raises(ValueError, match="layers is empty"):
        KeptQK.from_lens(demo_lens, TEXT, layers=[])
    with pytest.raises(IndexError, match="valid heads are 0..7"):
        demo_kept.pattern(0, 8)
    with pytest.raises(IndexError, match="query position"):
        demo_kept.row(0, 0, demo_kept.n_pos)
    with pytest.raises(IndexError, match="not inside"):
        demo_kept.pooled(0, [0], 5, 2)
    kept_one = KeptQK.from_lens(demo_lens, TEXT, layers=[2])
    with pytest.raises(IndexError, match=r"kept layers are \[2\]"):
        kept_one.pattern(0)


def test_public_entry_blocks_and_columns(demo_lens):
    kept = lensnb.attention_patterns(demo_lens, TEXT, layers=[1, 3])
    assert isinstance(kept, lensnb.KeptQK) and kept.layers == [1, 3]
    full = kept.pattern(3)  # [heads, q, k], == HF eager (test above)
    n = kept.n_pos
    torch.testing.assert_close(kept.block(3, [2, 6], 4, 11, 2, 9), full[[2, 6], 4:11, 2:9])
    torch.testing.assert_close(kept.block(3, 5, 0, n), full[5])
    for key in (0, 7, n - 1):
        torch.testing.assert_close(kept.column(3, 4, key), full[4, :, key])


def test_pooled_windows_ragged_edges_equal_loop(demo_kept, monkeypatch):
    """Pooled windows (any origin, ragged last blocks, several heads of two KV groups) equal a
    max over the exact pattern's blocks, also with one row per computed block."""
    import lensnb.analysis.patterns as patterns

    full = demo_kept.pattern(2)  # [heads, q, k]
    heads = [1, 6]
    for chunk in (patterns.CHUNK_BYTES, 1):
        monkeypatch.setattr(patterns, "CHUNK_BYTES", chunk)
        for q0, q1, k0, k1, size in ((3, 22, 1, 20, 4), (0, demo_kept.n_pos, 5, 17, 3)):
            tile, (fq, fk) = demo_kept.pooled(2, heads, q0, q1, k0, k1, size=size)
            assert tile.shape == (2, -(-(q1 - q0) // fq), -(-(k1 - k0) // fk))
            for a in range(tile.shape[1]):
                for b in range(tile.shape[2]):
                    want = full[heads, q0 + a * fq:min(q1, q0 + (a + 1) * fq),
                                k0 + b * fk:min(k1, k0 + (b + 1) * fk)].amax((1, 2))
                    torch.testing.assert_close(tile[:, a, b], want, rtol=1e-6, atol=0)


def test_sliding_window_blocks_and_columns(make_tiny_model):
    lens = lensnb.load(str(make_tiny_model("mistral", num_attention_heads=4,
                                           num_key_value_heads=2, sliding_window=5)))
    kept = lensnb.attention_patterns(lens, TEXT)
    truth = hf_attentions(lens, TEXT)[1]  # [heads, q, k] from HF eager
    n = kept.n_pos
    torch.testing.assert_close(kept.block(1, [0, 3], 6, n, 0, n - 2), truth[[0, 3], 6:, :n - 2],
                               rtol=1e-5, atol=1e-6)
    for key in (0, 9):
        torch.testing.assert_close(kept.column(1, 2, key), truth[2, :, key], rtol=1e-5,
                                   atol=1e-6)
    tile, (fq, fk) = kept.pooled(1, [3], size=4)
    assert tile[0, -1, 0] == truth[3, (tile.shape[1] - 1) * fq:, :fk].max() == 0  # far keys
