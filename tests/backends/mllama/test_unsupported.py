"""Features that do not apply to a Llama 3.2 Vision lens raise one clear
``UnsupportedFeatureError`` up front (what is not supported, what to use instead), and what
they point to works. Unit tier: the tiny random Mllama of tests/mllama_fixtures.py."""

from __future__ import annotations

import pytest
import torch

import lensnb
from lensnb import UnsupportedFeatureError

TEXT = "def f(x):\n    return x"


def test_error_type_is_exported_and_backward_compatible():
    assert issubclass(UnsupportedFeatureError, NotImplementedError)
    assert issubclass(UnsupportedFeatureError, ValueError)


def test_vision_facts(vision_lens):
    assert vision_lens.is_vision
    assert vision_lens.self_attention_layers == [0, 2]
    assert not vision_lens.text_only().is_vision


@pytest.mark.parametrize("call", [
    lambda lens: lens.set_split_qkv(True),
    lambda lens: lens.split_qkv().__enter__(),
    lambda lens: lens.patch_kv_input(0, 0, torch.zeros_like),
    lambda lens: lens.patch_q_input(0, 1, torch.zeros_like),
])
def test_split_qkv_is_refused_up_front(vision_lens, call):
    with pytest.raises(UnsupportedFeatureError,
                       match=r"split QKV .* not supported on Llama 3\.2 Vision.*text_only\(\)"):
        call(vision_lens)
    assert not vision_lens.split_qkv_enabled
    vision_lens.set_split_qkv(False)  # turning it off is always fine


def test_split_qkv_works_on_the_text_only_lens(vision_lens):
    text = vision_lens.text_only()
    with text.split_qkv():
        _, cache = text.run_with_cache(TEXT, names="blocks.0.attn.hook_k_input")
    assert cache["blocks.0.attn.hook_k_input"].shape[2] == vision_lens.n_key_value_heads


def test_compatibility_mode_is_refused_before_loading(mllama_dir):
    with pytest.raises(UnsupportedFeatureError, match="compatibility mode .*save_text_only"):
        lensnb.load(mllama_dir, compatibility=True)


def test_kv_group_view_on_a_cross_attention_layer(vision_lens, hf_mllama):
    with pytest.raises(UnsupportedFeatureError, match=r"layer 1 .*cross-attention.*ImageAttention"):
        vision_lens.kv_group_view(TEXT, 1)
    with pytest.raises(UnsupportedFeatureError, match="layer 3 .*cross-attention"):
        vision_lens.kv_group_view(TEXT, -1)
    view = vision_lens.kv_group_view(TEXT, 2)  # a self-attention layer works, equal to HF
    with torch.no_grad():
        ref = hf_mllama(input_ids=vision_lens.to_tokens(TEXT), output_attentions=True)
    torch.testing.assert_close(view.patterns.flatten(0, 1), ref.attentions[1][0], atol=1e-5,
                               rtol=0)


def test_logit_attribution_points_to_text_only(vision_lens):
    with pytest.raises(UnsupportedFeatureError,
                       match=r"direct logit attribution .*lens\.text_only\(\)\.logit_attribution"):
        vision_lens.logit_attribution(TEXT, 5)
    dla = vision_lens.text_only().logit_attribution(TEXT, 5)  # what the message suggests
    logits = vision_lens(TEXT)[0, -1]  # the vision lens on text alone: the same model
    assert dla.total == pytest.approx(float(logits[5]), abs=1e-4)


def test_frequency_usage_points_to_text_only(vision_lens):
    with pytest.raises(UnsupportedFeatureError, match=r"frequency usage .*text_only\(\)"):
        lensnb.rope.frequency_usage(vision_lens, TEXT)
    usage = lensnb.rope.frequency_usage(vision_lens.text_only(), TEXT)
    assert usage.shape[:2] == (len(vision_lens.self_attention_layers), vision_lens.n_heads)
