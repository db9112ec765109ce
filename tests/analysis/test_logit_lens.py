"""The logit lens. Truth: a loop written here over the cached residual streams through the Hugging
Face model's own final norm and ``lm_head`` (not ``lens.unembed``); the last row against the
model's own output probabilities."""

from __future__ import annotations

import pytest
import torch

import lensnb

TEXT = "def add(x, y):\n    return x +"


@pytest.fixture(scope="module")
def ll(demo_lens):
    return lensnb.logit_lens(demo_lens, TEXT, target=" y", k=4)


def test_rows_equal_a_loop_through_the_hf_modules(demo_lens, ll):
    lens = demo_lens
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post"
                                           for i in range(lens.n_layers)]
    assert ll.rows == names
    _, cache = lens.run_with_cache(TEXT, names=names)
    hf = lens.hf_model
    target = lens.tokenizer.encode(" y", add_special_tokens=False)[0]
    for r, name in enumerate(names):
        with torch.no_grad():
            probs = hf.lm_head(hf.model.norm(cache[name][0])).softmax(-1)  # [pos, vocab]
        top = probs.topk(4, dim=-1)
        assert torch.equal(ll.top_ids[r], top.indices), name
        assert torch.allclose(ll.top_probs[r], top.values, atol=1e-6)
        assert torch.allclose(ll.target_probs[r], probs[:, target], atol=1e-6)
    with torch.no_grad():
        out = lens(TEXT)[0].softmax(-1)
    assert torch.allclose(ll.top_probs[-1], out.topk(4, dim=-1).values, atol=1e-6)
    assert ll.top_tokens[-1][-1][0] == lens.tokenizer.decode([int(out[-1].argmax())])


def test_shapes_table_and_figure(demo_lens, ll):
    n = len(demo_lens.to_str_tokens(TEXT))
    assert ll.top_ids.shape == ll.top_probs.shape == (demo_lens.n_layers + 1, n, 4)
    assert ll.target_probs.shape == (demo_lens.n_layers + 1, n)
    assert ll.row_labels[:2] == ["embed", "0"]
    frame = ll.to_frame()
    assert len(frame) == (demo_lens.n_layers + 1) * n * 4
    fig = ll.figure()
    assert fig.data[0].text[-1][-1] == ll.top_tokens[-1][-1][0].replace("\n", "\\n")
    assert fig.data[0].zmin == 0 and fig.data[0].zmax == 1
    target = ll.figure(color="target")
    assert target.data[0].z[-1][-1] == pytest.approx(float(ll.target_probs[-1, -1]))
    no_target = lensnb.logit_lens(demo_lens, TEXT, k=1)
    assert no_target.target_probs is None
    with pytest.raises(lensnb.InputError, match="needs a target"):
        no_target.figure(color="target")
    with pytest.raises(lensnb.InputError, match="k must be"):
        lensnb.logit_lens(demo_lens, TEXT, k=0)
