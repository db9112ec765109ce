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


def test_vision_lens_with_and_without_an_image():
    """Llama 3.2 Vision: without an image its cross-attention layers (1, 3) are skipped, so
    their rows repeat the row before and the rest equal the text-only model's; with an image
    every row is read and the last equals the model's output."""
    import numpy as np
    from PIL import Image

    vision = lensnb.load("demo-vision")
    ids = torch.tensor([[5, 9, 7, 3, 12]])
    ll = lensnb.logit_lens(vision, ids)
    assert ll.skipped == [2, 4]  # the outputs of blocks 1 and 3
    assert torch.equal(ll.top_ids[2], ll.top_ids[1]) and torch.equal(ll.top_ids[4], ll.top_ids[3])
    text = lensnb.logit_lens(vision.text_only(), ids)
    assert torch.equal(ll.top_ids[[0, 1, 3]], text.top_ids)
    assert torch.allclose(ll.top_probs[[0, 1, 3]], text.top_probs, atol=1e-6)
    image = Image.fromarray((np.random.default_rng(0).random((56, 56, 3)) * 255).astype("uint8"))
    seen = lensnb.logit_lens(vision, "<|image|>a cat", images=[image])
    assert seen.skipped == []
    with torch.no_grad():
        out = vision("<|image|>a cat", images=[image])[0].softmax(-1)
    assert torch.allclose(seen.top_probs[-1], out.topk(5, dim=-1).values, atol=1e-5)
