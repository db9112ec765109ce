"""``Lens``'s own contract: ``inputs`` and ``unembed`` (final norm, unembedding, soft-cap) against
the Hugging Face model's forward pass."""

from __future__ import annotations

import pytest
import torch

import lensnb

TEXT = "def add(a, b):\n    return a + b"


def test_unembed_of_the_last_residual_stream_is_the_models_logits(demo_lens):
    logits, cache = demo_lens.run_with_cache(TEXT, names=f"blocks.{demo_lens.n_layers - 1}"
                                             ".hook_resid_post")
    resid = cache[f"blocks.{demo_lens.n_layers - 1}.hook_resid_post"]  # [1, pos, d_model]
    with torch.no_grad():
        hf = demo_lens.hf_model(demo_lens.to_tokens(TEXT)).logits
        mine = demo_lens.unembed(resid)
    torch.testing.assert_close(mine, hf, atol=1e-4, rtol=0)
    torch.testing.assert_close(mine, logits, atol=1e-4, rtol=0)
    norm, _ = demo_lens.final_modules()
    with torch.no_grad():
        torch.testing.assert_close(demo_lens.unembed(norm(resid), normed=True), mine)


def test_unembed_applies_the_final_logit_softcap(make_tiny_model):
    """Gemma 2 caps its logits (``tanh(x / cap) * cap``) after the unembedding: so does
    ``unembed``, and the result is Hugging Face's own logits."""
    path = make_tiny_model("gemma2", num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                           final_logit_softcapping=0.5)  # small cap: every logit is bent
    lens = lensnb.load(str(path))
    tokens = lens.to_tokens(TEXT)
    last = f"blocks.{lens.n_layers - 1}.hook_resid_post"
    _, cache = lens.run_with_cache(tokens, names=last)
    with torch.no_grad():
        hf = lens.hf_model(tokens).logits
        mine = lens.unembed(cache[last])
        norm, unembed = lens.final_modules()
        uncapped = unembed(norm(cache[last]))
    assert float(hf.abs().max()) <= 0.5
    assert float((uncapped - hf).abs().max()) > 1e-2  # the cap matters here
    torch.testing.assert_close(mine, hf, atol=1e-5, rtol=0)


def test_inputs_without_images_are_the_tokens(demo_lens):
    tokens, kwargs = demo_lens.inputs(TEXT, None, return_type="logits")
    assert torch.equal(tokens, demo_lens.to_tokens(TEXT))
    assert kwargs == {"return_type": "logits"}


def test_images_on_a_text_lens_refuse_up_front(demo_lens):
    with pytest.raises(lensnb.UnsupportedFeatureError, match="images"):
        demo_lens.inputs(TEXT, ["not an image"])
