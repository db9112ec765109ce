"""lensnb.load: every accepted source, offline, against a plain transformers forward pass."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import lensnb
from lensnb.lens import ContextLengthError
from lensnb.loading import ModelNotFoundError, UnsupportedArchitectureError

TEXT = "def add(a, b):\n    return a + b\n"


def hf_logits(path, tokens: torch.Tensor) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    with torch.no_grad():
        return model(tokens).logits


def test_demo_logits_equal_transformers(demo_lens):
    tokens = demo_lens.to_tokens(TEXT)
    ref = hf_logits(lensnb.loading.DEMOS["demo"], tokens)
    assert (demo_lens(tokens) - ref).abs().max() <= 1e-4


def test_demo_tokens_match_the_tokenizer(demo_lens):
    tok = AutoTokenizer.from_pretrained(lensnb.loading.DEMOS["demo"])
    expected = tok(TEXT)["input_ids"]
    assert demo_lens.to_tokens(TEXT)[0].tolist() == expected
    assert expected[0] == tok.bos_token_id
    assert "".join(demo_lens.to_str_tokens(TEXT)[1:]) == TEXT


@pytest.mark.parametrize("model_type", ["llama", "mistral", "qwen2", "gemma"])
def test_local_directory(make_tiny_model, model_type):
    path = make_tiny_model(model_type)
    lens = lensnb.load(path)
    tokens = lens.to_tokens(TEXT)
    assert (lens(tokens) - hf_logits(path, tokens)).abs().max() <= 1e-4
    assert lens.facts.n_key_value_heads == json.loads((path / "config.json").read_text()).get(
        "num_key_value_heads")


def test_cached_model_id(make_tiny_model, tmp_path, monkeypatch):
    """A model id resolves through the local Hugging Face cache layout, offline."""
    src = make_tiny_model("llama")
    cache = tmp_path / "hub"
    repo = cache / "models--someorg--tiny-llama"
    snap = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(src, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(snap.name)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    lens = lensnb.load("someorg/tiny-llama")
    tokens = lens.to_tokens(TEXT)
    assert (lens(tokens) - hf_logits(src, tokens)).abs().max() <= 1e-4


def test_already_loaded_model(make_tiny_model):
    path = make_tiny_model("qwen2")
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(path)
    lens = lensnb.load(model, tokenizer=tok)
    tokens = lens.to_tokens(TEXT)
    assert lens.hf_model is model
    assert (lens(tokens) - hf_logits(path, tokens)).abs().max() <= 1e-4
    with pytest.raises(ValueError, match="needs its tokenizer"):
        lensnb.load(model)


def test_device_map_offload_gives_same_logits(tmp_path):
    """Some layers offloaded to disk, some on CPU: same logits as the plain load."""
    base = lensnb.load("demo")
    dm = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
          "model.layers.1": "disk", "model.layers.2": "disk", "model.layers.3": "cpu",
          "model.norm": "cpu", "lm_head": "cpu"}
    off = lensnb.load("demo", device_map=dm, offload_folder=tmp_path)
    assert off.hf_model.hf_device_map["model.layers.1"] == "disk"
    tokens = base.to_tokens(TEXT)
    assert (off(tokens) - base(tokens)).abs().max() <= 1e-5


def test_compatibility_mode_is_explicit_and_stated():
    raw = lensnb.load("demo")
    compat = lensnb.load("demo", compatibility=True)
    assert "raw Hugging Face weights" in repr(raw)
    assert "compatibility mode" in repr(compat) and compat.compatibility
    tokens = raw.to_tokens(TEXT)
    # folding norms and centring weights changes the numbers but not the predictions
    a, b = raw(tokens), compat(tokens)
    assert torch.equal(a.argmax(-1), b.argmax(-1))
    assert torch.allclose(a.log_softmax(-1), b.log_softmax(-1), atol=1e-3)


def test_dtype_option():
    lens = lensnb.load("demo", dtype="bfloat16")
    assert lens.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'float8'.*bfloat16"):
        lensnb.load("demo", dtype="float8")


def test_run_with_cache_filters(demo_lens):
    logits, cache = demo_lens.run_with_cache(TEXT, names="blocks.*.attn.hook_pattern")
    assert sorted(cache.keys()) == [f"blocks.{i}.attn.hook_pattern" for i in range(4)]
    n = demo_lens.to_tokens(TEXT).shape[1]
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, 8, n, n)
    _, cache = demo_lens.run_with_cache(TEXT, names=lambda name: name.endswith("hook_resid_post"))
    assert len(cache) == 4
    _, cache = demo_lens.run_with_cache(TEXT, names=["hook_embed", "blocks.2.hook_resid_pre"])
    assert sorted(cache.keys()) == ["blocks.2.hook_resid_pre", "hook_embed"]
    # the cached residual is what the HF model computes (hidden_states[2] enters layer 2)
    out = demo_lens.hf_model(demo_lens.to_tokens(TEXT), output_hidden_states=True)
    assert torch.allclose(cache["blocks.2.hook_resid_pre"], out.hidden_states[2], atol=1e-5)


def test_progress_bar_for_long_inputs(demo_lens, capsys, monkeypatch):
    from lensnb.core import progress

    monkeypatch.setattr(progress, "TRANSIENT_DELAY_S", 0.0)  # draw it however quick the run
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    tokens = torch.randint(3, 4096, (1, 64))
    demo_lens.run_with_cache(tokens, names="hook_embed", progress=True)
    assert "demo: layers" in capsys.readouterr().err


def test_unknown_hook_name_suggests(demo_lens):
    with pytest.raises(KeyError, match=r"Did you mean: blocks\.0\.attn\.hook_pattern"):
        demo_lens.run_with_cache(TEXT, names="blocks.0.attn.hook_patern")
    with pytest.raises(KeyError, match="unknown hook name"):
        demo_lens.run_with_cache(TEXT, names="blocks.*.attn.hook_nothing")
    with pytest.raises(IndexError, match=r"4 layers \(0\.\.3"):
        demo_lens.hook_name("attn.hook_pattern", layer=4)
    assert demo_lens.hook_name("attn.hook_pattern", layer=-1) == "blocks.3.attn.hook_pattern"


def test_unknown_name_lists_available():
    with pytest.raises(ModelNotFoundError, match="unknown model 'no-such-model'.*demo"):
        lensnb.load("no-such-model")


def test_path_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        lensnb.load(tmp_path)
    f = tmp_path / "weights.bin"
    f.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="is a file, not a model"):
        lensnb.load(f)


def test_unsupported_architecture_names_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"architectures": ["NotARealModelForCausalLM"], "model_type": "not_real"}))
    expected = "NotARealModelForCausalLM.*Supported architectures:.*LlamaForCausalLM"
    with pytest.raises(UnsupportedArchitectureError, match=expected):
        lensnb.load(tmp_path)


def test_text_longer_than_context(make_tiny_model):
    lens = lensnb.load(make_tiny_model("llama", max_position_embeddings=16))
    with pytest.raises(ContextLengthError, match="has a context of 16 tokens"):
        lens(" x" * 40)


def test_never_trusts_remote_code_unless_asked(monkeypatch):
    from transformer_lens.model_bridge import TransformerBridge

    seen = {}
    real = TransformerBridge.boot_transformers

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(TransformerBridge, "boot_transformers", spy)
    lensnb.load("demo")
    assert seen["trust_remote_code"] is False


def test_works_with_hub_offline(no_network):
    lens = lensnb.load("demo")
    assert lens(TEXT).shape[-1] == 4096
