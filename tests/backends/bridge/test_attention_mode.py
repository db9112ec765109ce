"""Forward passes run HF's sdpa attention unless a hook needs the pattern; pattern hooks still see
HF eager's numbers; a pattern request that cannot fit fails up front with the size it needs."""

from __future__ import annotations

import pytest
import torch
from layouts import DEMO_DIR, LAYOUTS

import lensnb
from lensnb.backends.bridge import attention_mode
from lensnb.backends.bridge.attention_mode import PatternMemoryError

N = 200


def hf_model(path, impl):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, attn_implementation=impl,
                                                dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def tokens(demo_lens):
    g = torch.Generator().manual_seed(0)
    t = torch.randint(2, demo_lens.tokenizer.vocab_size, (1, N), generator=g)
    t[0, 0] = demo_lens.tokenizer.bos_token_id
    return t


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


def test_too_large_pattern_raises_up_front(demo_lens, tokens, monkeypatch):
    monkeypatch.setenv(attention_mode.MEMORY_LIMIT_ENV, str(10**6))  # 1 MB for patterns
    fired = []
    with pytest.raises(PatternMemoryError, match=r"\[1, 8, 200, 200\] float32 is 1\.3 MB"
                       ) as err:
        demo_lens.run_with_cache(tokens, names=["blocks.0.hook_resid_post",
                                                "blocks.*.attn.hook_pattern"])
    assert "attention_patterns" in str(err.value) and "AttentionExplorer" in str(err.value)
    with pytest.raises(PatternMemoryError):
        demo_lens.run_with_hooks(tokens, fwd_hooks=[
            ("blocks.0.hook_resid_post", lambda t, hook: fired.append(1)),
            ("blocks.3.attn.hook_attn_scores", lambda t, hook: None)])
    assert not fired  # raised before the forward pass started
    # residual hooks are fine at the same budget, and "none" lifts the limit
    demo_lens.run_with_cache(tokens, names="blocks.0.hook_resid_post")
    monkeypatch.setenv(attention_mode.MEMORY_LIMIT_ENV, "none")
    demo_lens.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")
    monkeypatch.setenv(attention_mode.MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match="number of bytes or 'none'"):
        demo_lens.run_with_cache(tokens, names="blocks.0.attn.hook_pattern")


def test_needed_bytes_formula(demo_lens, monkeypatch):
    """One layer's scores are batch x heads x pos^2 float32; a cache keeps one per hook."""
    assert attention_mode.pattern_bytes(demo_lens, 2, 100) == 2 * 8 * 100 * 100 * 4
    one = 8 * 1000 * 1000 * 4
    monkeypatch.setenv(attention_mode.MEMORY_LIMIT_ENV, str(5 * one))
    attention_mode.check_pattern_memory(demo_lens, ["blocks.0.attn.hook_pattern",
                                                    "blocks.1.attn.hook_pattern"], 1, 1000,
                                        cache=True)  # 3 working + 2 kept = 5 layers
    with pytest.raises(PatternMemoryError):
        attention_mode.check_pattern_memory(
            demo_lens, [f"blocks.{i}.attn.hook_pattern" for i in range(3)], 1, 1000, cache=True)
