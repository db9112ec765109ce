"""The text part of a Llama 3.2 Vision model alone: ``Lens.text_only()`` and
``lensnb.save_text_only`` give the same logits as Hugging Face's Mllama run without an image.
Unit tier: the tiny random Mllama of conftest.py."""

from __future__ import annotations

import json

import pytest
import torch

TEXT = ["def f(x):\n    return x + 1", "import os"]


def hf_text_logits(hf, lens, texts):
    ids = lens.to_tokens(texts[0])
    with torch.no_grad():
        return ids, hf(input_ids=ids).logits


def test_text_only_lens_equals_hf_without_image(vision_lens, hf_mllama):
    text_lens = vision_lens.text_only()
    assert text_lens.hf_config.model_type == "llama"
    assert text_lens.n_layers == 2  # 4 layers minus the cross-attention layers 1 and 3
    ids, ref = hf_text_logits(hf_mllama, vision_lens, TEXT)
    ours = text_lens(ids)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() <= 1e-4
    # its layer 1 is the vision model's layer 2
    _, a = text_lens.run_with_cache(ids, names="blocks.1.hook_resid_post")
    _, b = vision_lens.run_with_cache(ids, names="blocks.2.hook_resid_post")
    assert (a["blocks.1.hook_resid_post"] - b["blocks.2.hook_resid_post"]).abs().max() <= 1e-5


def test_save_text_only_round_trip(vision_lens, hf_mllama, tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    import lensnb

    path = lensnb.save_text_only(vision_lens, tmp_path / "text")
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "vision_config" not in config
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("vision" in k or "cross_attn" in k or "projector" in k for k in keys)
    ids, ref = hf_text_logits(hf_mllama, vision_lens, TEXT)
    hf_text = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    with torch.no_grad():
        assert (hf_text(input_ids=ids).logits - ref).abs().max() <= 1e-4
    again = lensnb.load(path)
    assert (again(ids) - ref).abs().max() <= 1e-4
    # saving the text-only lens again writes the same weights
    path2 = lensnb.save_text_only(vision_lens.text_only(), tmp_path / "text2")
    with safe_open(str(path2 / "model.safetensors"), "pt") as f2, \
            safe_open(str(path / "model.safetensors"), "pt") as f1:
        assert all(torch.equal(f1.get_tensor(k), f2.get_tensor(k)) for k in keys)


def test_text_only_refuses_text_models(make_tiny_model):
    import lensnb

    lens = lensnb.load(make_tiny_model("llama"))
    with pytest.raises(TypeError, match="not a Llama 3.2 Vision"):
        lens.text_only()
    with pytest.raises(TypeError, match="not a Llama 3.2 Vision"):
        lensnb.save_text_only(lensnb.load(make_tiny_model("qwen2")), "/nonexistent")
