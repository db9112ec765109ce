"""Gemma 2's soft-capped attention on the memory-efficient path: the blockwise computation equals
Hugging Face's own eager attention function (its ``eager_attention_forward``, the truth), with
GQA, a causal or sliding-window mask and cached keys, in blocks of any size; and a Gemma 2 lens
runs it in every layer, with HF eager's logits."""

from __future__ import annotations

import pytest
import torch
from layouts import LAYOUTS
from test_attention_mode import count_sdpa, hf_model
from transformers.masking_utils import sdpa_mask
from transformers.models.gemma2.modeling_gemma2 import eager_attention_forward

import lensnb
from lensnb.backends.bridge import softcap


class _Module(torch.nn.Module):  # what HF's attention functions read off the module
    num_key_value_groups = 2


def _inputs(q_len: int, kv_len: int):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, q_len, 8, generator=g) * 3
    k = torch.randn(2, 2, kv_len, 8, generator=g) * 3
    v = torch.randn(2, 2, kv_len, 8, generator=g)
    return q, k, v


def _additive(mask: torch.Tensor | None, q_len: int, kv_len: int) -> torch.Tensor:
    """The float mask HF eager adds (0 where seen, -inf where hidden)."""
    if mask is None:
        seen = torch.ones(q_len, kv_len, dtype=torch.bool).tril(kv_len - q_len)[None, None]
    else:
        seen = mask
    return torch.zeros(seen.shape).masked_fill(~seen, float("-inf"))


@pytest.mark.parametrize("q_len,kv_len,window", [(9, 9, None), (9, 9, 3), (2, 11, None)])
@pytest.mark.parametrize("chunk", [softcap.CHUNK_BYTES, 1])
def test_blockwise_equals_hf_eager(monkeypatch, q_len, kv_len, window, chunk):
    monkeypatch.setattr(softcap, "CHUNK_BYTES", chunk)
    q, k, v = _inputs(q_len, kv_len)
    mask = None
    if window is not None:  # transformers' own sdpa mask: True where a query sees a key
        def sliding(b, h, qi, kj):
            return (kj <= qi) & (qi - kj < window)

        mask = sdpa_mask(batch_size=2, q_length=q_len, kv_length=kv_len,
                         mask_function=sliding, allow_is_causal_skip=False)
    module = _Module().eval()
    got, _ = softcap.softcapped_attention(module, q, k, v, mask, softcap=2.0, scaling=0.3)
    want, _ = eager_attention_forward(module, q, k, v, _additive(mask, q_len, kv_len),
                                      scaling=0.3, softcap=2.0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)  # measured: <= 2e-7


def test_gemma2_runs_it_in_every_layer_with_hf_eager_logits(make_tiny_model, monkeypatch):
    model_type, overrides = LAYOUTS["gemma2"]
    path = make_tiny_model(model_type, **overrides)
    lens = lensnb.load(path)
    assert lens.capabilities.sdpa_switch
    tokens = lens.to_tokens("def f(x):\n    return x * 2\n" * 4)
    with torch.no_grad():
        truth = hf_model(path, "eager")(tokens).logits
    calls = count_sdpa(monkeypatch)
    monkeypatch.setattr(softcap, "CHUNK_BYTES", 1)  # one query row per block
    torch.testing.assert_close(lens(tokens), truth, rtol=0, atol=1e-5)  # measured: 4e-7
    assert calls[0] == lens.n_layers
