"""The backend contract (lensnb.backends.contract / registry): both backends satisfy the
``HookedModel`` protocol, their declared ``Capabilities`` are what the models can do, the
registry resolves architectures, and a feature asked of a backend lacking it raises
``UnsupportedFeatureError`` before any forward pass. Unit tier: tiny random models."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from mllama_fixtures import mllama_dir, picture, vision_lens  # noqa: F401

import lensnb
from lensnb import UnsupportedArchitectureError, UnsupportedFeatureError
from lensnb.analysis import rope
from lensnb.backends import registry
from lensnb.backends.bridge import backend as bridge_backend
from lensnb.backends.contract import Capabilities, HookedModel
from lensnb.backends.gating import gated_hooks

TEXT = "def f(x):\n    return x"
PACKAGE = Path(lensnb.__file__).parent


@pytest.fixture(scope="module")
def lens(make_tiny_model):
    return lensnb.load(make_tiny_model("llama", seed=5))


def test_both_backends_satisfy_the_protocol(lens, vision_lens):  # noqa: F811
    assert isinstance(lens.bridge, HookedModel)
    assert isinstance(vision_lens.bridge, HookedModel)
    assert not isinstance(torch.nn.Linear(2, 2), HookedModel)
    assert lens.backend.name == "bridge" and vision_lens.backend.name == "mllama"


def test_bridge_capabilities_are_what_it_does(lens):
    caps = lens.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.split_qkv and caps.fast_path and caps.stop_at_layer and caps.compatibility_mode
    assert not (caps.images or caps.cross_attention or caps.own_decoding or lens.is_vision)
    with lens.split_qkv():  # split QKV: per-KV-head key inputs
        _, cache = lens.run_with_cache(TEXT, names="blocks.0.attn.hook_k_input")
    assert cache["blocks.0.attn.hook_k_input"].shape[2] == lens.n_key_value_heads
    assert lens.generate(TEXT, 2).path == "fast"  # the fast path
    seen = []  # stop_at_layer: block 1 never runs
    lens.bridge.run_with_hooks(lens.to_tokens(TEXT), stop_at_layer=1, return_type=None,
                               fwd_hooks=[("blocks.1.hook_resid_pre",
                                           lambda t, hook: seen.append(1))])
    assert seen == []


def test_vision_capabilities_are_what_it_does(vision_lens):  # noqa: F811
    caps = vision_lens.capabilities
    assert caps.cross_attention and caps.images and caps.text_only and caps.own_decoding
    assert vision_lens.is_vision  # derived from the capabilities
    assert not (caps.split_qkv or caps.fast_path or caps.compatibility_mode or caps.stop_at_layer)
    with pytest.raises(TypeError):  # declared False: HookedMllama's forward has no such argument
        vision_lens.bridge.run_with_hooks(vision_lens.to_tokens(TEXT), stop_at_layer=1)
    assert vision_lens.generate(TEXT, 2).path == "bridge"  # its own decoding loop
    text = vision_lens.text_only()  # the text part is a plain bridge model again
    assert text.capabilities == registry.BRIDGE.capabilities and not text.is_vision


def test_registry_resolves_architectures():
    assert registry.backend_for({"architectures": ["LlamaForCausalLM"]}).name == "bridge"
    assert registry.backend_for({"architectures": ["Gemma3ForCausalLM"]}).name == "bridge"
    assert registry.backend_for(
        {"architectures": ["MllamaForConditionalGeneration"]}).name == "mllama"
    assert registry.backend_for({"model_type": "mllama_text_model"}).name == "mllama"
    supported = lensnb.supported_architectures()
    assert supported == sorted(set(supported))
    assert {"LlamaForCausalLM", "Qwen2ForCausalLM", "MllamaForCausalLM"} <= set(supported)
    assert set(supported) == {a for b in registry.backends() for a in b.architectures()}


def test_unregistered_architecture_lists_the_supported_ones(tmp_path):
    with pytest.raises(UnsupportedArchitectureError,
                       match=r"NoSuchModelForCausalLM.*Supported architectures: .*"
                             r"LlamaForCausalLM.*MllamaForConditionalGeneration"):
        registry.backend_for({"architectures": ["NoSuchModelForCausalLM"]}, "x")
    (tmp_path / "config.json").write_text(json.dumps(
        {"architectures": ["NoSuchModelForCausalLM"], "model_type": "nosuch"}))
    with pytest.raises(UnsupportedArchitectureError, match="Supported architectures: .*Llama"):
        lensnb.load(tmp_path)


def test_adapter_registration_goes_through_transformer_lens():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.factories.architecture_adapter_factory import (
        ArchitectureAdapterFactory,
    )
    from transformer_lens.model_bridge.supported_architectures.llama import (
        LlamaArchitectureAdapter,
    )

    name = "LensnbTestLlamaForCausalLM"
    assert name not in lensnb.supported_architectures()
    bridge_backend.register_adapter(name, LlamaArchitectureAdapter)
    assert name in lensnb.supported_architectures()
    assert registry.backend_for({"architectures": [name]}).name == "bridge"
    cfg = TransformerBridgeConfig(d_model=8, d_head=2, n_layers=1, n_ctx=8, architecture=name)
    assert isinstance(ArchitectureAdapterFactory.select_architecture_adapter(cfg),
                      LlamaArchitectureAdapter)


def test_gated_hooks_follow_the_bridge_flags(lens, vision_lens):  # noqa: F811
    assert "blocks.0.attn.hook_q_input" in gated_hooks(lens.bridge)
    with lens.split_qkv():
        assert "blocks.0.attn.hook_q_input" not in gated_hooks(lens.bridge)
    assert gated_hooks(vision_lens.bridge) == frozenset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gated hooks a filter matches are skipped silently
        _, cache = lens.run_with_cache(TEXT, names=["blocks.0.attn.hook_*"])
    assert "blocks.0.attn.hook_q_input" not in cache
    assert "blocks.0.attn.hook_pattern" in cache


def test_require_names_the_flag_feature_and_alternative(lens):
    with pytest.raises(ValueError, match="unknown capability 'warp'"):
        lens.require("warp", "x", "y")
    with pytest.raises(UnsupportedFeatureError,
                       match=r"images= is not supported on TransformerLens bridge lenses "
                             r"\('.*'\); images need a Llama 3.2 Vision"):
        lens.require_images()


def _counting(lens):
    """A list that grows by one per forward of ``lens``'s embedding (any forward pass)."""
    calls: list[int] = []
    lens.hf_model.get_input_embeddings().register_forward_pre_hook(
        lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("feature", [
    lambda lens: lens.set_split_qkv(True),
    lambda lens: lens.patch_kv_input(0, 0, torch.zeros_like).__enter__(),
    lambda lens: lens.logit_attribution(TEXT, 1),
    lambda lens: rope.frequency_usage(lens, TEXT),
], ids=["split_qkv", "patch_kv_input", "logit_attribution", "frequency_usage"])
def test_vision_lacks_are_refused_before_any_forward(vision_lens, feature):  # noqa: F811
    calls = _counting(vision_lens)
    with pytest.raises(UnsupportedFeatureError, match="not supported on Llama 3.2 Vision"):
        feature(vision_lens)
    assert calls == []


@pytest.mark.parametrize("feature", [
    lambda lens, img: lens(TEXT, images=[img]),
    lambda lens, img: lens.run_with_cache("<|image|>" + TEXT, images=[img]),
    lambda lens, img: lens.generate("<|image|>" + TEXT, 2, images=[img]),
    lambda lens, img: lensnb.ImageAttention(lens, "<|image|>" + TEXT, img),
    lambda lens, img: lensnb.GenerationStepper(lens, "<|image|>x", image=img),
], ids=["call", "run_with_cache", "generate", "ImageAttention", "GenerationStepper"])
def test_text_model_refuses_images_before_any_forward(lens, feature):
    calls = _counting(lens)
    with pytest.raises(UnsupportedFeatureError, match="Llama 3.2 Vision"):
        feature(lens, picture(28, 28))
    assert calls == []


def test_features_ask_capabilities_not_backend_classes():
    """Above the backends, nothing asks which class a model is: widgets and generation read
    ``lens.capabilities`` (HookedMllama appears only inside backends/mllama)."""
    for path in [*(PACKAGE / "widgets").glob("*.py"), *(PACKAGE / "interventions").glob("*.py"),
                 *(PACKAGE / "analysis").glob("*.py"), PACKAGE / "lens.py"]:
        source = path.read_text()
        assert not re.search(r"isinstance\([^)]*HookedMllama", source), path
        assert not re.search(r"import[^\n]*HookedMllama|mllama\.hooked import", source), path
        assert "_gated_hook_reason" not in source and "._adapters" not in source, path
