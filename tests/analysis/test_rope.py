"""lensnb.rope against independent truths: Meta's published Llama 3.1 formula (written here),
transformers' rotary modules, a 50-digit mpmath reference for long-context angles, the demo
model's own rotary tensors, and a hand computation of per-pair query/key norms.

Tiers: unit (synthetic and catalogue configs) and integration (the demo model)."""

from __future__ import annotations

import math
import random

import mpmath
import numpy as np
import pytest
import torch
from layouts import LAYOUTS
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, rotate_half

import lensnb
from lensnb import rope
from lensnb.core.facts import catalogue


# ----------------------------------------------------------------------- Meta's formula
def f32_rtol(theta: float) -> float:
    """Float32 precision of ``theta ** (k/d)``: the rounded exponent k/d (half an ulp) is
    amplified by ln(theta); one more ulp for the power and the division."""
    return 2.0**-23 * (1.0 + math.log(theta))


def meta_llama31_inv_freq(theta: float, d_head: int, factor: float, low: float, high: float,
                          orig: int) -> np.ndarray:
    """Meta's Llama 3.1 frequency scaling (llama-models ``apply_scaling``), in float64."""
    freqs = theta ** (-np.arange(0, d_head, 2, dtype=np.float64) / d_head)
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < orig / high:
            out.append(f)
        elif wavelen > orig / low:
            out.append(f / factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return np.array(out)


def llama3_dict(theta=500000.0, d_head=128, factor=8.0, low=1.0, high=4.0, orig=8192,
                max_pos=131072) -> dict:
    """A Llama-3.1-style config dict in the form the Hub ships (legacy ``rope_scaling``)."""
    return {"model_type": "llama", "hidden_size": d_head * 4, "num_attention_heads": 4,
            "head_dim": d_head, "max_position_embeddings": max_pos, "rope_theta": theta,
            "rope_scaling": {"rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                             "high_freq_factor": high, "original_max_position_embeddings": orig}}


CATALOGUE_LLAMA3 = {  # name -> published (theta, d_head, factor, low, high, orig)
    "meta-llama/Llama-3.1-8B": (500000.0, 128, 8.0, 1.0, 4.0, 8192),
    "meta-llama/Llama-3.1-70B": (500000.0, 128, 8.0, 1.0, 4.0, 8192),
    "meta-llama/Llama-3.2-1B": (500000.0, 64, 32.0, 1.0, 4.0, 8192),
    "meta-llama/Llama-3.2-3B": (500000.0, 128, 32.0, 1.0, 4.0, 8192),
    "meta-llama/Llama-3.2-11B-Vision": (500000.0, 128, 8.0, 1.0, 4.0, 8192),
}

UNUSUAL = [  # (theta, d_head, factor, low, high, orig)
    (10000.0, 64, 4.0, 2.0, 8.0, 2048),
    (1e6, 96, 16.0, 0.5, 2.0, 4096),
    (500000.0, 256, 2.0, 1.0, 1.5, 1024),
    (50000.0, 32, 64.0, 1.0, 32.0, 16384),
    (500000.0, 16, 8.0, 1.0, 4.0, 8192),  # the demo model's shape
]


@pytest.mark.parametrize("name", list(CATALOGUE_LLAMA3))
def test_catalogue_llama3_matches_meta_formula(name):
    if name not in catalogue():
        pytest.skip(f"{name} is not in the shipped catalogue (lensnb/assets/configs/)")
    ours = rope.inv_freq(name).double().numpy()
    expected = meta_llama31_inv_freq(*CATALOGUE_LLAMA3[name])
    np.testing.assert_allclose(ours, expected, rtol=f32_rtol(CATALOGUE_LLAMA3[name][0]), atol=0)


@pytest.mark.parametrize("params", [(500000.0, 128, 8.0, 1.0, 4.0, 8192),
                                    (500000.0, 64, 32.0, 1.0, 4.0, 8192), *UNUSUAL])
def test_published_and_unusual_parameters_match_meta_formula(params):
    ours = rope.inv_freq(llama3_dict(*params)).double().numpy()
    np.testing.assert_allclose(ours, meta_llama31_inv_freq(*params), rtol=f32_rtol(params[0]),
                               atol=0)
    # and all three regimes really occur for the published sets
    if params[1] >= 64:
        regions = set(rope.spectrum(llama3_dict(*params))["region"])
        assert regions == set(rope.REGIONS)


def test_spectrum_regions_and_smoothing_follow_the_wavelength_rule():
    theta, d, factor, low, high, orig = 500000.0, 128, 8.0, 1.0, 4.0, 8192
    df = rope.spectrum(llama3_dict(theta, d, factor, low, high, orig))
    base = theta ** (-np.arange(0, d, 2) / d)
    wavelen = 2 * math.pi / base
    np.testing.assert_allclose(df["base_inv_freq"], base, rtol=f32_rtol(theta))
    np.testing.assert_allclose(df["wavelength"], 2 * math.pi / df["inv_freq"], rtol=1e-12)
    for w, region, s in zip(wavelen, df["region"], df["smooth"], strict=True):
        if w < orig / high:
            assert region == "high-frequency kept" and s == 1.0
        elif w > orig / low:
            assert region == "low-frequency scaled" and s == 0.0
        else:
            assert region == "smoothed"
            assert s == pytest.approx((orig / w - low) / (high - low), abs=2e-6)
    assert list(df.columns) == ["pair", "dims", "base_inv_freq", "inv_freq", "base_wavelength",
                                "wavelength", "scale", "region", "smooth"]
    assert df["dims"][3] == "(3, 67)"


# --------------------------------------------------------------- transformers, every type
ROPE_CASES = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256,
             "beta_fast": 32.0, "beta_slow": 1.0},
    "longrope": {"rope_type": "longrope", "original_max_position_embeddings": 256,
                 "short_factor": [1.0 + 0.1 * i for i in range(8)],
                 "long_factor": [1.0 + 0.7 * i for i in range(8)]},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 256},
}


def _hf_config(params: dict, max_pos: int = 1024) -> LlamaConfig:
    return LlamaConfig(hidden_size=64, num_attention_heads=4, head_dim=16,
                       max_position_embeddings=max_pos,
                       rope_parameters={"rope_theta": 10000.0, **params})


@pytest.mark.parametrize("rope_type", list(ROPE_CASES))
def test_every_rope_type_matches_transformers_rotary_module(rope_type):
    cfg = _hf_config(ROPE_CASES[rope_type])
    module = LlamaRotaryEmbedding(cfg)
    assert torch.equal(rope.inv_freq(cfg), module.inv_freq)
    assert rope.attention_scaling(cfg) == pytest.approx(module.attention_scaling)
    # the rotary module's cos/sin at a length where dynamic/longrope switch frequencies
    for length in (64, 2048):
        pos = torch.arange(length)[None]
        cos_hf, sin_hf = module(torch.zeros(1, dtype=torch.float32), pos)
        cos, sin = rope.cos_sin(cfg, pos)
        torch.testing.assert_close(cos, cos_hf, rtol=0, atol=3e-4 if length > 64 else 2e-6)
        torch.testing.assert_close(sin, sin_hf, rtol=0, atol=3e-4 if length > 64 else 2e-6)
        assert torch.equal(rope.inv_freq(cfg, seq_len=length), module.inv_freq)


def test_dynamic_and_longrope_really_change_past_the_original_context():
    dyn = _hf_config(ROPE_CASES["dynamic"])
    assert torch.equal(rope.inv_freq(dyn, seq_len=100), rope.inv_freq(dyn))
    assert (rope.inv_freq(dyn, seq_len=4096)[1:] < rope.inv_freq(dyn)[1:]).all()
    lr = _hf_config(ROPE_CASES["longrope"])
    assert not torch.equal(rope.inv_freq(lr, seq_len=257), rope.inv_freq(lr, seq_len=256))


# ------------------------------------------------------------------ backward compatibility
@pytest.mark.parametrize("theta,d", [(10000.0, 64), (500000.0, 128), (1e6, 16)])
def test_unscaled_configs_give_theta_power_exactly_in_every_legacy_form(theta, d):
    base = {"model_type": "llama", "hidden_size": d * 2, "num_attention_heads": 2, "head_dim": d}
    forms = [
        {**base, "rope_theta": theta},  # no scaling key at all
        {**base, "rope_theta": theta, "rope_scaling": None},  # rope_scaling: null
        {**base, "rope_theta": theta, "rope_scaling": {"type": "default"}},  # legacy key
        {**base, "rope_parameters": {"rope_type": "default", "rope_theta": theta}},  # tf 5
    ]
    exact32 = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    exact64 = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    for form in forms:
        ours = rope.inv_freq(form)
        assert ours.dtype == torch.float32 and ours.shape == (d // 2,)
        assert torch.equal(ours, exact32), form
        torch.testing.assert_close(ours.double(), exact64, rtol=f32_rtol(theta), atol=0)
        assert set(rope.spectrum(form)["region"]) == {"unscaled"}


def test_legacy_type_key_and_rope_scaling_give_the_same_scaled_frequencies():
    new = llama3_dict()
    old = llama3_dict()
    old["rope_scaling"] = dict(old["rope_scaling"])
    old["rope_scaling"]["type"] = old["rope_scaling"].pop("rope_type")
    assert torch.equal(rope.inv_freq(old), rope.inv_freq(new))
    lin_old = {**llama3_dict(), "rope_scaling": {"type": "linear", "factor": 2.0}}
    lin_new = {**llama3_dict(), "rope_parameters": {"rope_type": "linear", "factor": 2.0,
                                                    "rope_theta": 500000.0}}
    lin_new.pop("rope_scaling")
    assert torch.equal(rope.inv_freq(lin_old), rope.inv_freq(lin_new))
    torch.testing.assert_close(rope.inv_freq(lin_old).double(),
                               500000.0 ** (-torch.arange(0, 128, 2).double() / 128) / 2,
                               rtol=f32_rtol(500000.0), atol=0)


def test_inputs_name_dict_config_and_lens_agree(demo_lens):
    name = "meta-llama/Llama-3.1-8B"
    if name not in catalogue():
        pytest.skip(f"{name} is not in the shipped catalogue")
    from lensnb.core.facts import config_dict

    _, data = config_dict(name)
    assert torch.equal(rope.inv_freq(name), rope.inv_freq(data))
    assert torch.equal(rope.inv_freq(rope.rope_config(name)), rope.inv_freq(data))
    assert torch.equal(rope.inv_freq(demo_lens), rope.inv_freq("demo"))
    assert torch.equal(rope.inv_freq(demo_lens), demo_lens.hf_model.model.rotary_emb.inv_freq)


def test_bad_input_names_what_is_allowed():
    with pytest.raises(ValueError, match="no rotary"):
        rope.inv_freq({"model_type": "gpt2", "n_embd": 64, "n_head": 4})
    with pytest.raises(TypeError, match="unknown RoPE parameter"):
        rope.inv_freq(llama3_dict(), facter=3)
    with pytest.raises(ValueError, match="unsupported rope_type"):
        rope.inv_freq(llama3_dict(), rope_type="spiral")
    with pytest.raises(ValueError, match="whole numbers"):
        rope.angles(llama3_dict(), [1.5])
    with pytest.raises(ValueError, match=">= 0"):
        rope.angles(llama3_dict(), [-1])


# ------------------------------------------------------------------------ long contexts
def _reference(freqs: torch.Tensor, positions: list[int]) -> tuple[np.ndarray, ...]:
    """50-digit angles (wrapped to [-pi, pi)), cos and sin of position * float32 freq."""
    mpmath.mp.dps = 50
    two_pi = 2 * mpmath.pi
    ang, cos, sin = [], [], []
    for p in positions:
        row_a, row_c, row_s = [], [], []
        for f in freqs.tolist():  # float32 values are exact as Python floats
            a = mpmath.mpf(p) * mpmath.mpf(f)
            a = a - two_pi * mpmath.floor((a + mpmath.pi) / two_pi)
            row_a.append(float(a))
            row_c.append(float(mpmath.cos(a)))
            row_s.append(float(mpmath.sin(a)))
        ang.append(row_a)
        cos.append(row_c)
        sin.append(row_s)
    return np.array(ang), np.array(cos), np.array(sin)


def test_float32_angles_meet_the_stated_bound_far_past_131072():
    cfg = llama3_dict()
    rng = random.Random(0)
    positions = [0, 1, 8191, 8192, 32768, 65535, 131071, 131072, 1_000_000, 1_048_575,
                 2**24 - 1] + [rng.randrange(2**24) for _ in range(12)]
    ref_a, ref_c, ref_s = _reference(rope.inv_freq(cfg), positions)
    ours = rope.angles(cfg, positions)  # float32 [n_pos, 64]
    assert ours.dtype == torch.float32 and ours.shape == (len(positions), 64)
    diff = np.abs(np.remainder(ours.double().numpy() - ref_a + np.pi, 2 * np.pi) - np.pi)
    assert diff.max() <= rope.ANGLE_BOUND
    cos, sin = rope.cos_sin(cfg, positions)  # [n_pos, 128], attention_scaling 1 for llama3
    assert cos.shape == (len(positions), 128)
    assert np.abs(cos[:, :64].double().numpy() - ref_c).max() <= rope.COS_SIN_BOUND
    assert np.abs(sin[:, 64:].double().numpy() - ref_s).max() <= rope.COS_SIN_BOUND
    # the model's own float32 product misses the same bound by orders of magnitude
    naive = (torch.tensor(positions, dtype=torch.float32)[:, None] * rope.inv_freq(cfg))
    naive_diff = np.abs(np.remainder(naive.double().numpy() - ref_a + np.pi, 2 * np.pi) - np.pi)
    assert naive_diff[positions.index(131071)].max() > 1e3 * rope.ANGLE_BOUND


def test_bf16_and_fp16_position_products_go_wrong():
    cfg = llama3_dict()
    # bf16 has 8 significant bits: neighbouring positions collapse onto one angle
    bf = rope.naive_angles(cfg, [131071, 131072, 131000], torch.bfloat16)
    assert torch.equal(bf[0], bf[1]) and torch.equal(bf[0], bf[2])
    # fp16 overflows past 65504: the angle is inf and its cosine NaN
    fp = rope.naive_angles(cfg, [65504, 65536], torch.float16)
    assert torch.isfinite(fp[0]).all() and torch.isinf(fp[1, 0])
    table = rope.precision_table(cfg, positions=[131071])
    err = dict(zip(table["method"], table["max_angle_error"], strict=True))
    assert err["lensnb"] <= rope.ANGLE_BOUND
    assert 1e-4 < err["float32 product"] < 1e-1
    assert err["bfloat16 product"] > 1.0  # an arbitrary angle
    assert err["float16 product"] == math.inf
    assert math.isnan(table.loc[table["method"] == "float16 product", "max_cos_error"].item())


def test_decay_curve_matches_mean_cosine_and_scaling_slows_it():
    cfg = llama3_dict()
    dist, score = rope.decay_curve(cfg, [0, 10, 5000])
    freqs = rope.inv_freq(cfg).double()
    expected = torch.stack([torch.cos(d * freqs).mean() for d in (0.0, 10.0, 5000.0)])
    torch.testing.assert_close(score, expected, rtol=0, atol=1e-12)
    assert score[0] == 1.0 and dist.tolist() == [0, 10, 5000]
    _, unscaled = rope.decay_curve(cfg, [0, 10, 5000], scaled=False)
    base = 500000.0 ** (-torch.arange(0, 128, 2).double() / 128)
    torch.testing.assert_close(unscaled[2], torch.cos(5000 * base).mean(), rtol=0, atol=1e-6)


# --------------------------------------------------------------------- the demo model
def test_bridge_rotary_tensors_agree_with_lensnb(demo_lens):
    text = "def add(a, b):\n    return a + b\n"
    _, cache = demo_lens.run_with_cache(
        text, names=["rotary_emb.hook_cos", "rotary_emb.hook_sin", "blocks.0.attn.hook_cos",
                     "blocks.0.attn.hook_sin"])
    n_pos = cache["rotary_emb.hook_cos"].shape[1]
    cos, sin = rope.cos_sin(demo_lens, torch.arange(n_pos)[None])  # [1, pos, d_head]
    for prefix in ("rotary_emb", "blocks.0.attn"):
        torch.testing.assert_close(cache[f"{prefix}.hook_cos"], cos, rtol=0, atol=1e-6)
        torch.testing.assert_close(cache[f"{prefix}.hook_sin"], sin, rtol=0, atol=1e-6)


def _pairs_from_rotate_half(d_head: int) -> list[tuple[int, int]]:
    """Which dims transformers' rotate_half mixes: rotate_half(e_i) is nonzero at i's partner."""
    pairs = []
    for i in range(d_head):
        e = torch.zeros(d_head)
        e[i] = 1.0
        j = int(rotate_half(e).abs().argmax())
        if i < j:
            pairs.append((i, j))
    return pairs


@pytest.mark.parametrize("which", ["q", "k"])
def test_frequency_usage_matches_a_hand_computation(demo_lens, which):
    text = "for i in range(10):\n    print(i)\n"
    usage = rope.frequency_usage(demo_lens, text, which=which)
    n_heads = demo_lens.n_heads if which == "q" else demo_lens.n_key_value_heads
    d_head = demo_lens.facts.d_head
    assert usage.shape == (demo_lens.n_layers, n_heads, d_head // 2)
    pairs = _pairs_from_rotate_half(d_head)
    assert pairs[1] == (1, 1 + d_head // 2)  # half-split pairing, not interleaved
    _, cache = demo_lens.run_with_cache(text, names=f"blocks.*.attn.hook_{which}")
    for layer in range(demo_lens.n_layers):
        x = cache[f"blocks.{layer}.attn.hook_{which}"][0].double()  # [pos, heads, d_head]
        for head in range(n_heads):
            total = sum(float(x[p, head, d] ** 2) for p in range(x.shape[0])
                        for d in range(d_head))
            for pair, (a, b) in enumerate(pairs):
                energy = float((x[:, head, a] ** 2 + x[:, head, b] ** 2).sum())
                assert usage[layer, head, pair].item() == pytest.approx(energy / total,
                                                                        rel=1e-5, abs=1e-7)
    torch.testing.assert_close(usage.sum(-1), torch.ones(usage.shape[:2]), rtol=0, atol=1e-5)
    rotated = rope.frequency_usage(demo_lens, text, which=which, rotated=True)
    torch.testing.assert_close(rotated, usage, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layout", ["gpt-neox", "phi3"])
def test_partial_rotary_usage_counts_the_rotated_pairs_only(make_tiny_model, layout):
    """NeoX rotates the first quarter of each head, Phi-3 (partial_rotary_factor 0.5) the first
    half: usage has rotary_dim/2 pairs (i, i + rotary_dim/2), as the model's own rotate_half
    pairs them, and each row plus the pass-through dims' share is 1. The rotated q (now fired
    on NeoX/Phi-3 too) gives the same shares."""
    model_type, overrides = LAYOUTS[layout]
    lens = lensnb.load(make_tiny_model(model_type, **overrides))
    text = "for i in range(10):\n    print(i)\n"
    rotary = lens.hf_model.get_submodule(
        "gpt_neox.rotary_emb" if layout == "gpt-neox" else "model.rotary_emb").inv_freq.numel() * 2
    d_head = lens.facts.d_head
    assert rotary < d_head  # partial
    usage = rope.frequency_usage(lens, text)
    assert usage.shape == (lens.n_layers, lens.n_heads, rotary // 2)
    _, cache = lens.run_with_cache(text, names="blocks.*.attn.hook_q")
    for layer in range(lens.n_layers):
        x = cache[f"blocks.{layer}.attn.hook_q"][0].double()  # [pos, heads, d_head]
        total = (x ** 2).sum((0, 2))  # [heads]
        for pair, (a, b) in enumerate(_pairs_from_rotate_half(rotary)):
            want = (x[..., a] ** 2 + x[..., b] ** 2).sum(0) / total
            torch.testing.assert_close(usage[layer, :, pair].double(), want, rtol=1e-5, atol=1e-7)
        passed = (x[..., rotary:] ** 2).sum((0, 2)) / total
        torch.testing.assert_close(usage[layer].sum(-1).double() + passed,
                                   torch.ones(lens.n_heads, dtype=torch.float64), atol=1e-5,
                                   rtol=0)
    rotated = rope.frequency_usage(lens, text, rotated=True)
    torch.testing.assert_close(rotated, usage, rtol=1e-4, atol=1e-6)


def test_no_rope_refuses_up_front_naming_the_alternative(make_tiny_model):
    lens = lensnb.load(make_tiny_model(*LAYOUTS["gpt2"][:1], **LAYOUTS["gpt2"][1]))
    for call in (lambda: rope.frequency_usage(lens, "a b"), lambda: rope.spectrum(lens),
                 lambda: lensnb.RopeSpectrum(lens)):
        with pytest.raises(lensnb.UnsupportedFeatureError, match="long_context_profile"):
            call()


def test_frequency_usage_rejects_bad_which(demo_lens):
    with pytest.raises(ValueError, match="'q'.*'k'"):
        rope.frequency_usage(demo_lens, "x", which="v")


def test_public_api_is_reexported():
    assert lensnb.rope is rope
