"""Forward passes run HF's sdpa attention unless a hook needs the pattern; pattern hooks still see
HF eager's numbers (the memory check before them: tests/backends/test_attention_memory.py)."""

from __future__ import annotations

import pytest
import torch
from layouts import DEMO_DIR, LAYOUTS

import lensnb
from lensnb.backends.bridge import attention_mode


def hf_model(path, impl):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl,
                                                dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def hf_outputs(tokens):
    with torch.no_grad():
        sdpa = hf_model(DEMO_DIR, "sdpa")(tokens, output_hidden_states=True)
        eager = hf_model(DEMO_DIR, "eager")(tokens, output_attentions=True)
    return sdpa, eager


def count_sdpa(monkeypatch) -> list[int]:
    """Counts calls of lensnb's sdpa attention function (one per layer that ran it)."""
    attention_mode._register()  # its mask function too (a sliding window needs the right one)
    calls = [0]
    real = attention_mode._sdpa_with_hooks

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(attention_mode, "_sdpa_with_hooks", counted)
    from transformers import AttentionInterface

    monkeypatch.setitem(AttentionInterface._global_mapping, attention_mode.IMPLEMENTATION,
                        counted)
    monkeypatch.setattr(attention_mode, "_register", lambda: None)
    return calls


def test_forward_runs_sdpa_and_equals_hf_sdpa(demo_lens, tokens, hf_outputs, monkeypatch):
    calls = count_sdpa(monkeypatch)
    logits = demo_lens(tokens)
    assert calls[0] == demo_lens.n_layers
    sdpa, eager = hf_outputs
    torch.testing.assert_close(logits, sdpa.logits, rtol=0, atol=1e-5)
    assert demo_lens.hf_config._attn_implementation == "eager"  # restored


def test_residual_cache_runs_sdpa(demo_lens, tokens, hf_outputs, monkeypatch):
    calls = count_sdpa(monkeypatch)
    logits, cache = demo_lens.run_with_cache(tokens, names="blocks.*.hook_resid_pre")
    assert calls[0] == demo_lens.n_layers
    sdpa, _ = hf_outputs
    for layer in range(demo_lens.n_layers):  # HF hidden_states[i] is layer i's input
        torch.testing.assert_close(cache[f"blocks.{layer}.hook_resid_pre"],
                                   sdpa.hidden_states[layer], rtol=0, atol=1e-5)
    torch.testing.assert_close(logits, sdpa.logits, rtol=0, atol=1e-5)


def test_pattern_hooks_see_hf_eager(demo_lens, tokens, hf_outputs, monkeypatch):
    calls = count_sdpa(monkeypatch)
    logits, cache = demo_lens.run_with_cache(tokens, names=["blocks.1.attn.hook_pattern",
                                                            "blocks.3.hook_resid_post"])
    assert calls[0] == 0  # a call that hooks a pattern runs eager everywhere
    _, eager = hf_outputs
    torch.testing.assert_close(cache["blocks.1.attn.hook_pattern"], eager.attentions[1],
                               rtol=0, atol=1e-6)
    torch.testing.assert_close(logits, eager.logits, rtol=0, atol=1e-5)


def test_hooks_fire_on_the_same_tensors_in_both_paths(demo_lens, tokens):
    """q/k/v, rotated q/k, cos/sin and z: the sdpa path caches what the eager path caches, and
    an edit at each of them changes the logits the same way."""
    names = [f"blocks.2.attn.{n}" for n in ("hook_q", "hook_k", "hook_v", "hook_rot_q",
                                            "hook_rot_k", "hook_cos", "hook_sin", "hook_z",
                                            "hook_in", "hook_out")]
    _, fast = demo_lens.run_with_cache(tokens, names=names)
    _, slow = demo_lens.run_with_cache(tokens, names=[*names, "blocks.2.attn.hook_pattern"])
    for n in names:  # layers 0-1 ran sdpa in one, eager in the other: float noise (~1e-6 rel)
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-5, atol=1e-5)
    for n in ("blocks.1.attn.hook_rot_k", "blocks.1.attn.hook_rot_q", "blocks.1.attn.hook_cos",
              "blocks.1.attn.hook_z"):
        edit = [(n, lambda t, hook: t * 0.5)]
        plain = demo_lens(tokens)
        a = demo_lens.run_with_hooks(tokens, fwd_hooks=edit)
        b = demo_lens.run_with_hooks(
            tokens, fwd_hooks=[*edit, ("blocks.1.attn.hook_pattern", lambda t, hook: None)])
        assert (a - plain).abs().max() > 1e-2, n  # the edit took effect
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


@pytest.mark.parametrize("layout", ["gqa-llama3", "mqa-gemma", "gqa-qwen2-bias"])
def test_tiny_layouts_equal_hf_sdpa(make_tiny_model, layout, monkeypatch):
    model_type, overrides = LAYOUTS[layout]
    path = make_tiny_model(model_type, **overrides)
    lens = lensnb.load(str(path))
    tokens = lens.to_tokens("def f(x):\n    return x * 2\n" * 4)
    calls = count_sdpa(monkeypatch)
    with torch.no_grad():
        truth = hf_model(path, "sdpa")(tokens).logits
    torch.testing.assert_close(lens(tokens), truth, rtol=0, atol=1e-5)
    assert calls[0] == lens.n_layers
