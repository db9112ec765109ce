"""Every family's attention hooks fire on the same tensors on the memory-efficient path (HF's own
attention module with sdpa) as in the bridge's own attention, or run the bridge's attention when
hooked; each layer's declared q/k hooks (``layer_qk``) fire on both paths. Unit tier: tiny random
models of every layout; the truth is the bridge's own (eager) attention and HF's sdpa forward."""

from __future__ import annotations

import pytest
import torch
from layouts import LAYOUTS
from test_attention_mode import count_sdpa, hf_model

import lensnb
from lensnb.backends import attention_memory
from lensnb.backends.bridge import attention_mode
from lensnb.backends.bridge.qk_capture import silent_hooks
from lensnb.backends.gating import gated_hooks

TEXT = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))"
LAYER = 1
ROTARY = {lay for lay, (mt, _) in LAYOUTS.items() if mt != "gpt2"}


@pytest.fixture(scope="module")
def built(make_tiny_model):
    cache: dict[str, tuple] = {}

    def get(layout: str):
        if layout not in cache:
            model_type, overrides = LAYOUTS[layout]
            path = make_tiny_model(model_type, **overrides)
            cache[layout] = (lensnb.load(path), path)
        return cache[layout]

    return get


def attention_hooks(lens) -> list[str]:
    """Every hook of layer ``LAYER``'s attention that can fire without a bridge flag, except
    the pattern-sized ones."""
    dead = gated_hooks(lens.bridge)
    prefix = f"blocks.{LAYER}.attn."
    return [n for n in lens.hook_names() if n.startswith(prefix) and n not in dead
            and n.rsplit(".", 1)[-1] not in attention_memory.NEEDS_PATTERN]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_hooks_fire_on_the_same_tensors_on_both_paths(built, layout, monkeypatch):
    lens, _ = built(layout)
    tokens = lens.to_tokens(TEXT)
    names = attention_hooks(lens)
    _, eager = lens.run_with_cache(tokens, names=[*names, f"blocks.{LAYER}.attn.hook_pattern"])
    points = {id(hp) for _, hp in silent_hooks(lens.bridge.blocks[LAYER].attn)}
    silent = {n for n in names if id(lens.bridge.hook_dict[n]) in points}  # aliases included
    calls = count_sdpa(monkeypatch)
    _, native = lens.run_with_cache(tokens, names=[n for n in names if n not in silent])
    native_runs = attention_mode._model_allows_sdpa(lens.bridge)
    assert calls[0] == (lens.n_layers if native_runs else 0)
    fired_eager = {n for n in eager.keys() if n in names}
    if native_runs:  # what the bridge's attention fires, the native path fires, or is silent
        assert fired_eager - silent <= set(native.keys()), sorted(fired_eager - silent)
    for n in sorted(set(native.keys()) & fired_eager):  # sdpa vs eager upstream: float noise
        torch.testing.assert_close(native[n], eager[n], rtol=1e-5, atol=1e-5,
                                   msg=lambda m, n=n: f"{n}: {m}")
    qk = lens.backend.layer_qk(lens.bridge, LAYER)
    assert {qk.q_hook, qk.k_hook} <= fired_eager & set(native.keys() if native_runs else names)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_edits_change_the_logits_alike_on_both_paths(built, layout):
    """An edit of q, k, v, rotated q/k or z has the same effect whether the layer runs HF's
    module with sdpa or the bridge's own attention (forced by a hook on its pattern)."""
    lens, _ = built(layout)
    tokens = lens.to_tokens(TEXT)
    plain = lens(tokens)
    hooks = ["hook_q", "hook_k", "hook_v", "hook_z"]
    hooks += ["hook_rot_q", "hook_rot_k"] if layout in ROTARY else []
    for hook in hooks:
        edit = [(f"blocks.{LAYER}.attn.{hook}", lambda t, hook: t * 0.5 + 0.3)]
        native = lens.run_with_hooks(tokens, fwd_hooks=edit)
        eager = lens.run_with_hooks(tokens, fwd_hooks=[
            *edit, (f"blocks.{LAYER}.attn.hook_pattern", lambda t, hook: None)])
        assert (native - plain).abs().max() > 1e-4, hook  # the edit took effect
        torch.testing.assert_close(native, eager, rtol=0, atol=1e-5, msg=hook)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layer_qk_names_what_the_softmax_uses(built, layout):
    """Rotary families keep the rotated q/k, GPT-2 (absolute positions) the projected ones."""
    lens, _ = built(layout)
    qk = lens.backend.layer_qk(lens.bridge, 0)
    want = ("hook_rot_q", "hook_rot_k") if layout in ROTARY else ("hook_q", "hook_k")
    assert (qk.q_hook, qk.k_hook) == tuple(f"blocks.0.attn.{h}" for h in want)


@pytest.mark.parametrize("layout", ["gpt2", "gpt-neox", "phi3"])
def test_joint_qkv_families_run_sdpa_and_equal_hf_sdpa(built, layout, monkeypatch):
    """GPT-2, NeoX and Phi-3 split a fused q/k/v projection in the bridge; a plain forward
    still runs HF's own attention with sdpa in every layer (memory linear in the length)."""
    lens, path = built(layout)
    tokens = lens.to_tokens(TEXT * 3)
    calls = count_sdpa(monkeypatch)
    with torch.no_grad():
        truth = hf_model(path, "sdpa")(tokens).logits
    torch.testing.assert_close(lens(tokens), truth, rtol=0, atol=1e-5)
    assert calls[0] == lens.n_layers


@pytest.mark.parametrize("layout", ["gpt2", "gpt-neox", "phi3"])
def test_compatibility_mode_keeps_joint_qkv_in_the_bridge(make_tiny_model, tmp_path, layout):
    """Compatibility mode folds each pre-norm into the bridge's own q/k/v copies of a fused
    projection, not into HF's fused module: those layers must run the bridge's attention. With
    norms that are not the identity, the logits equal HF's (up to the per-position shift of the
    centred unembedding)."""
    from transformers import AutoModelForCausalLM

    model_type, overrides = LAYOUTS[layout]
    source = make_tiny_model(model_type, **overrides)
    hf = AutoModelForCausalLM.from_pretrained(source).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if "norm" in name or ".ln_" in name:
                param.copy_(torch.rand_like(param) + 0.5)
    hf.save_pretrained(tmp_path)
    lensnb.load(source).tokenizer.save_pretrained(tmp_path)
    lens = lensnb.load(tmp_path, compatibility=True)
    assert not lens.capabilities.sdpa_switch
    tokens = lens.to_tokens(TEXT)
    with torch.no_grad():
        diff = lens(tokens) - hf(tokens).logits  # [1, pos, vocab]
    assert float((diff - diff.mean(-1, keepdim=True)).abs().max()) < 1e-5  # measured 1e-7


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_attention_patterns_never_build_the_scores(built, layout, monkeypatch):
    """Keeping q/k runs every layer through the memory-efficient attention function (sdpa, or
    Gemma 2's blockwise soft-cap): no layer builds its [heads, pos, pos] scores."""
    lens, _ = built(layout)
    calls = count_sdpa(monkeypatch)
    kept = lensnb.attention_patterns(lens, TEXT)
    assert calls[0] == lens.n_layers and kept.layers == list(range(lens.n_layers))
