"""GQA / MQA: KV-group arithmetic, the split-QKV toggle, patching per-head inputs, per-group
views. Unit tier: tiny random models of every attention layout (tests/conftest.py LAYOUTS),
checked against plain Hugging Face forward passes (eager attention) and loops written here."""

from __future__ import annotations

import pytest
import torch
from layouts import LAYOUTS
from transformers import AutoModelForCausalLM

import lensnb
from lensnb.core import kv_groups
from lensnb.core.kv_groups import GQAError
from lensnb.interventions import split_qkv as gqa

TEXT = "def add(a, b):\n    return a + b\n"

# The shape of TransformerLens's old crash (Gemma: 64 query heads against 8 KV heads in one
# einsum), a 16/2 Gemma and a Gemma MQA, all with split-QKV on.
GEMMA_CRASH_SHAPES = {
    "gemma-64-8": ("gemma", dict(num_attention_heads=64, num_key_value_heads=8, head_dim=4)),
    "gemma-16-2": ("gemma", dict(num_attention_heads=16, num_key_value_heads=2, head_dim=8)),
    "gemma-mqa-16-1": ("gemma", dict(num_attention_heads=16, num_key_value_heads=1, head_dim=8)),
}
ALL_SHAPES = {**LAYOUTS, **GEMMA_CRASH_SHAPES}


@pytest.fixture(scope="module")
def built(make_tiny_model):
    """layout name -> (Lens, plain HF model with eager attention), built once per module."""
    cache: dict[str, tuple] = {}

    def get(layout: str):
        if layout not in cache:
            model_type, overrides = ALL_SHAPES[layout]
            path = make_tiny_model(model_type, **overrides)
            hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
            cache[layout] = (lensnb.load(path), hf)
        return cache[layout]

    return get


def patterns(lens, tokens, layer: int) -> torch.Tensor:
    name = f"blocks.{layer}.attn.hook_pattern"
    return lens.run_with_cache(tokens, names=name)[1][name][0]  # [n_heads, q, k]


def split_patterns(lens, tokens, layer: int) -> torch.Tensor:
    """Patterns with split QKV on: the clean baseline for a patch of per-head inputs, which
    runs in that mode (split on and off differ by float rounding, see the noise-floor test)."""
    with lens.split_qkv():
        return patterns(lens, tokens, layer)


# Split QKV on vs off computes q/k/v per head instead of in one matmul, so the two differ by
# float32 rounding: measured max |diff| of patterns 6e-8 (transformers 5.20-5.24, torch 2.13 CPU).
SPLIT_NOISE_FLOOR = 1e-6


# --------------------------------------------------------------------- KV-group arithmetic
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_kv_group_arithmetic(built, layout):
    lens, hf = built(layout)
    n_heads, n_kv = hf.config.num_attention_heads, hf.config.num_key_value_heads
    assert (lens.n_heads, lens.n_key_value_heads, lens.group_size) == (n_heads, n_kv,
                                                                        n_heads // n_kv)
    for h in range(n_heads):  # transformers' repeat_kv: query head h reads KV head h // group
        assert lens.kv_head_of(h) == h * n_kv // n_heads
    for g in range(n_kv):
        assert lens.heads_of_kv(g) == [h for h in range(n_heads) if h * n_kv // n_heads == g]
    with pytest.raises(IndexError, match=rf"valid heads are 0\.\.{n_heads - 1}"):
        lens.kv_head_of(n_heads)
    with pytest.raises(IndexError, match=rf"valid KV groups are 0\.\.{n_kv - 1}"):
        lens.heads_of_kv(n_kv)
    with pytest.raises(IndexError, match=r"0\.\."):
        lens.heads_of_kv(-1)
    if n_kv == n_heads:
        with pytest.raises(GQAError, match="has no GQA"):
            lens.require_gqa("a per-KV-group view")
        with pytest.raises(GQAError, match="has no GQA"):
            lens.kv_group_view(TEXT, layer=0)
    else:
        lens.require_gqa()


# --------------------------------------------------------------------- split-QKV toggle
@pytest.mark.parametrize("layout", list(ALL_SHAPES))
def test_split_qkv_logits_match_plain_transformers(built, layout):
    lens, hf = built(layout)
    n_heads, n_kv = hf.config.num_attention_heads, hf.config.num_key_value_heads
    d_model = hf.config.hidden_size
    tokens = lens.to_tokens(TEXT)
    with torch.no_grad():
        out = hf(tokens, output_attentions=True)
    off = lens(tokens)
    names = ["blocks.*.attn.hook_q_input", "blocks.*.attn.hook_k_input",
             "blocks.*.attn.hook_v_input", "blocks.*.attn.hook_pattern"]
    with lens.split_qkv():
        on, cache = lens.run_with_cache(tokens, names=names)
    assert not lens.split_qkv_enabled
    torch.testing.assert_close(off, out.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(on, off, atol=1e-5, rtol=0)
    batch, pos = tokens.shape
    for layer in range(hf.config.num_hidden_layers):
        assert cache[f"blocks.{layer}.attn.hook_q_input"].shape == (batch, pos, n_heads, d_model)
        for which in "kv":
            assert cache[f"blocks.{layer}.attn.hook_{which}_input"].shape == (batch, pos, n_kv,
                                                                              d_model)
        # every copy is the residual stream entering the layer
        resid = lens.run_with_cache(tokens, names=f"blocks.{layer}.hook_resid_pre")[1]
        resid = resid[f"blocks.{layer}.hook_resid_pre"]
        for h in range(n_kv):
            torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_k_input"][:, :, h], resid)
        torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_pattern"],
                                   out.attentions[layer], atol=1e-5, rtol=0)


def test_split_qkv_restores_previous_state(built):
    lens, _ = built("gqa-llama3")
    assert not lens.split_qkv_enabled
    with lens.split_qkv() as inner:
        assert inner is lens and lens.split_qkv_enabled
        with lens.split_qkv(False):
            assert not lens.split_qkv_enabled
        assert lens.split_qkv_enabled
    assert not lens.split_qkv_enabled
    with pytest.raises(RuntimeError, match="boom"), lens.split_qkv():
        raise RuntimeError("boom")
    assert not lens.split_qkv_enabled
    lens.set_split_qkv(True)
    try:
        with pytest.raises(RuntimeError, match="boom"), lens.split_qkv(False):
            raise RuntimeError("boom")
        assert lens.split_qkv_enabled
    finally:
        lens.set_split_qkv(False)
    with pytest.raises(TypeError, match="True or False"):
        lens.set_split_qkv("no")
    assert not lens.split_qkv_enabled


def test_per_head_inputs_cached_only_when_asked(built):
    lens, hf = built("gqa-llama3")
    tokens = lens.to_tokens(TEXT)
    with lens.split_qkv():
        with pytest.warns(UserWarning, match="leaves out the per-head inputs"):
            _, cache = lens.run_with_cache(tokens)
        assert not [k for k in cache.keys() if k.endswith(("_q_input", "_k_input", "_v_input"))]
        assert "blocks.0.attn.hook_pattern" in cache
        _, cache = lens.run_with_cache(tokens, names="blocks.1.attn.hook_k_input")
        assert cache["blocks.1.attn.hook_k_input"].shape[2] == hf.config.num_key_value_heads
    with pytest.raises(ValueError, match=r"with lens\.split_qkv\(\)"):
        lens.run_with_cache(tokens, names="blocks.1.attn.hook_k_input")


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_split_qkv_on_and_off_agree_to_the_noise_floor(built, layout):
    """The baseline question behind the locality tests: split on vs off is rounding only."""
    lens, hf = built(layout)
    tokens = lens.to_tokens(TEXT)
    for layer in range(hf.config.num_hidden_layers):
        off, on = patterns(lens, tokens, layer), split_patterns(lens, tokens, layer)
        assert (on - off).abs().max() <= SPLIT_NOISE_FLOOR, f"layer {layer}"


# --------------------------------------------------------------------- patching
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_patching_key_input_of_a_group_changes_exactly_its_heads(built, layout):
    lens, hf = built(layout)
    n_heads, n_kv = hf.config.num_attention_heads, hf.config.num_key_value_heads
    layer = hf.config.num_hidden_layers - 1
    tokens = lens.to_tokens(TEXT)
    k_norm = getattr(lens.bridge.blocks[layer].attn, "k_norm", None)
    shared = k_norm is not None and k_norm.original_component.weight.numel() != lens.facts.d_head
    assert lens.capabilities.shared_k_norm == shared  # the contract says what the model does
    clean = split_patterns(lens, tokens, layer)  # same mode as the patched run
    for g in range(n_kv):
        torch.manual_seed(g)
        noise = torch.randn(*tokens.shape, hf.config.hidden_size) * 2.0  # [batch, pos, d_model]
        with lens.patch_kv_input(layer, g, noise, which="k"):
            patched = patterns(lens, tokens, layer)
        assert not lens.split_qkv_enabled
        changed = {h for h in range(n_heads) if (patched[h] - clean[h]).abs().max() > 1e-4}
        unchanged = {h for h in range(n_heads) if torch.equal(patched[h], clean[h])}
        group = {h for h in range(n_heads) if h // (n_heads // n_kv) == g}
        if shared:  # OLMo-2: one k_norm over every KV head's keys rescales every group's
            assert changed == set(range(n_heads)), f"KV group {g}"
            continue
        assert changed == group, f"KV group {g}"
        assert unchanged == set(range(n_heads)) - group, f"KV group {g}"


@pytest.mark.parametrize("layout", ["gqa-llama3", "mqa-gemma", "gqa-qwen2-bias"])
def test_patching_query_input_of_one_head_changes_only_that_head(built, layout):
    lens, hf = built(layout)
    n_heads = hf.config.num_attention_heads
    tokens = lens.to_tokens(TEXT)
    clean = split_patterns(lens, tokens, 0)  # same mode as the patched run
    head = n_heads - 1
    with gqa.patch_q_input(lens, 0, head, lambda x: -3.0 * x.flip(1)):
        patched = patterns(lens, tokens, 0)
    changed = {h for h in range(n_heads) if not torch.equal(patched[h], clean[h])}
    assert changed == {head}
    assert (patched[head] - clean[head]).abs().max() > 1e-4


@pytest.mark.parametrize("layout", ["gqa-mistral-32-8", "mqa-gemma"])
def test_patching_value_input_changes_outputs_of_its_group_only(built, layout):
    lens, hf = built(layout)
    n_heads, n_kv = hf.config.num_attention_heads, hf.config.num_key_value_heads
    tokens = lens.to_tokens(TEXT)
    names = ["blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z"]
    with lens.split_qkv():  # same mode as the patched run
        _, clean = lens.run_with_cache(tokens, names=names)
    g = n_kv - 1
    with lens.patch_kv_input(0, g, torch.zeros_like, which="v"):
        _, patched = lens.run_with_cache(tokens, names=names)
    assert torch.equal(patched[names[0]], clean[names[0]])  # values do not move the pattern
    z_changed = {h for h in range(n_heads)
                 if not torch.equal(patched[names[1]][:, :, h], clean[names[1]][:, :, h])}
    assert z_changed == {h for h in range(n_heads) if h // (n_heads // n_kv) == g}


def test_patch_hook_pair_for_run_with_hooks(built):
    lens, hf = built("gqa-llama3")
    tokens = lens.to_tokens(TEXT)
    name, fn = gqa.input_patch_hook(lens, 1, 0, torch.zeros_like, which="k")
    assert name == "blocks.1.attn.hook_k_input"
    with lens.split_qkv():
        hooked = lens.run_with_hooks(tokens, fwd_hooks=[(name, fn)])
    with lens.patch_kv_input(1, 0, torch.zeros_like):
        patched = lens(tokens)
    torch.testing.assert_close(hooked, patched)
    assert (hooked - lens(tokens)).abs().max() > 1e-5


def test_patch_errors_name_the_valid_range(built):
    lens, _ = built("gqa-llama3")
    with pytest.raises(IndexError, match=r"KV group 2 is out of range: valid KV groups are 0\.\.1"):
        lens.patch_kv_input(0, 2, torch.zeros_like)
    with pytest.raises(IndexError, match=r"valid heads are 0\.\.7"):
        lens.patch_q_input(0, 8, torch.zeros_like)
    with pytest.raises(ValueError, match="'k' or 'v'"):
        lens.patch_kv_input(0, 0, torch.zeros_like, which="q")
    with pytest.raises(ValueError, match="'q', 'k' or 'v'"):
        gqa.input_patch_hook(lens, 0, 0, torch.zeros_like, which="x")
    with pytest.raises(IndexError, match="layer 5 is out of range"):
        lens.patch_kv_input(5, 0, torch.zeros_like)
    assert not lens.split_qkv_enabled


# --------------------------------------------------------------------- per-group views
@pytest.mark.parametrize("layout", [k for k, (_, o) in LAYOUTS.items()
                                    if o["num_key_value_heads"] != o["num_attention_heads"]])
def test_group_summaries_equal_direct_computation(built, layout):
    lens, hf = built(layout)
    n_heads, n_kv = hf.config.num_attention_heads, hf.config.num_key_value_heads
    size = n_heads // n_kv
    tokens = lens.to_tokens(TEXT)
    pattern = patterns(lens, tokens, 1)  # [n_heads, q, k]
    view = lens.kv_group_view(tokens, layer=1)
    assert view.heads == [list(range(g * size, (g + 1) * size)) for g in range(n_kv)]
    n_pos = tokens.shape[1]
    for g in range(n_kv):
        heads = [h for h in range(n_heads) if h // size == g]
        for q in range(n_pos):
            for k in range(n_pos):
                values = [float(pattern[h, q, k]) for h in heads]
                assert view.mean[g, q, k] == pytest.approx(sum(values) / len(values), abs=1e-6)
                assert view.max[g, q, k] == pytest.approx(max(values), abs=1e-7)
                assert view.spread[g, q, k] == pytest.approx(max(values) - min(values), abs=1e-7)
        for i, h in enumerate(heads):
            assert torch.equal(view.patterns[g, i], pattern[h])
        causal = [float(view.spread[g, q, k]) for q in range(n_pos) for k in range(q + 1)]
        assert view.spread_score[g] == pytest.approx(sum(causal) / len(causal), abs=1e-6)
    summaries = kv_groups.group_summaries(pattern, n_kv)
    for key in ("mean", "max", "spread"):
        torch.testing.assert_close(summaries[key], getattr(view, key))


def test_group_patterns_rejects_a_bad_split():
    with pytest.raises(GQAError, match="do not split into 3 KV groups"):
        kv_groups.group_patterns(torch.zeros(8, 4, 4), 3)
