"""GenerationStepper's Python side: its state after Step/Run/patches, the replies its frontend
decodes, and its static figure. Truths: ``lens.generate`` (itself checked against Hugging Face
in tests/backend) and plain forwards through the bridge's hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mllama_fixtures import mllama_dir, picture, vision_lens  # noqa: F401

import lensnb
from lensnb.widgets.generation_stepper import GenerationStepper

PROMPT = "def add(a, b):\n    return"


@pytest.fixture(scope="module")
def lens(make_tiny_model):
    return lensnb.load(make_tiny_model("llama", seed=3, num_attention_heads=8,
                                       num_key_value_heads=2))


def _buffer(array):
    """A named float32 buffer of a reply (``LensWidget.ask``)."""
    assert array.dtype == np.float32
    return array


def test_step_and_run_follow_generate(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=6, top_k_probs=4)
    want = lens.generate(PROMPT, 6)
    s = w.step()
    assert s.token == int(want.new_tokens[0, 0])
    assert w.generated == [s.text] and w.text == PROMPT + s.text
    assert len(w.steps) == 1 and not w.done
    w.run()
    assert w.done and w.stop_reason == "max_new_tokens" and w.step() is None
    assert [t.token for t in w.steps] == want.new_tokens[0].tolist()
    assert w.text == PROMPT + "".join(lens.tokenizer.decode([t]) for t in want.new_tokens[0])
    assert torch.equal(w.tokens, want.tokens)
    w.reset()
    assert w.steps == [] and w.generated == [] and not w.done


def test_patch_reruns_from_prompt(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=5)
    w.run(2)
    torch.manual_seed(0)
    v = torch.randn(lens.facts.d_model) * 5
    w.add_patch(0, "hook_resid_post", position=3, value=v)
    assert w.steps == [] and len(w.patches) == 1 and w.patches[0]["position"] == 3
    w.run()
    want = lens.generate(PROMPT, 5, hooks=[lensnb.patch(0, "hook_resid_post", position=3,
                                                        value=v)], return_logits=True)
    assert [s.token for s in w.steps] == want.new_tokens[0].tolist()
    w.add_patch(0, "hook_mlp_out", position=-1, value="scale", scale=0.0)
    assert len(w.patches) == 2 and w.patches[1]["value"] == "×0"
    w.clear_patches()
    w.run()
    assert [s.token for s in w.steps] == lens.generate(PROMPT, 5).new_tokens[0].tolist()


def test_replies_decode_to_the_steps(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=4, top_k_probs=3)
    got = w.ask("step")
    reply = got.reply
    s = w.steps[0]
    assert reply["step"]["token"] == s.text and reply["step"]["top_texts"] == s.top_texts[0]
    np.testing.assert_allclose(_buffer(got.buffers["top"]), s.top_probs[0].numpy())
    np.testing.assert_allclose(_buffer(got.buffers["lens"]),
                               s.logit_lens.chosen_probs[0].numpy())
    w.ask("step")
    got = w.ask("state")
    state = got.reply
    assert [j["token"] for j in state["steps"]] == [t.text for t in w.steps]
    np.testing.assert_allclose(_buffer(got.buffers["top"][1]), w.steps[1].top_probs[0].numpy())
    assert len(got.buffers["top"]) == len(got.buffers["lens"]) == 2  # both buffers per step
    np.testing.assert_allclose(_buffer(got.buffers["lens"][1]),
                               w.steps[1].logit_lens.chosen_probs[0].numpy())
    state = w.ask("add_patch", layer=1, hook="hook_resid_post", position=1, value="zero").reply
    assert state["steps"] == [] and w.patches[0]["name"] == "blocks.1.hook_resid_post"
    with pytest.raises(ValueError, match="unknown request"):
        w.ask("nope")


def test_attention_of_the_new_token(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=4)
    w.run(2)
    att = w.attention(1)
    # the second new token was predicted from the sequence prompt + first new token
    _, cache = lens.run_with_cache(w.tokens[:, :-1], names=["blocks.1.attn.hook_pattern"])
    torch.testing.assert_close(att, cache["blocks.1.attn.hook_pattern"][0, :, -1])
    got = w.ask("attention", layer=1)
    assert list(got.buffers["weights"].shape) == [lens.n_heads, w.tokens.shape[1] - 1]
    assert len(got.reply["tokens"]) == w.tokens.shape[1] - 1
    explorer = w.attention_explorer()
    assert type(explorer).__name__ == "AttentionExplorer" and explorer.tokens[-1] == w.generated[-1]


def test_figure_has_logit_lens_and_top_k(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=3, top_k_probs=4)
    w.run()
    fig = w.figure()
    heat, bars = fig.data
    z = np.asarray(heat.z)
    assert z.shape == (lens.n_layers, 3)
    np.testing.assert_allclose(z[:, -1], w.steps[-1].logit_lens.chosen_probs[0].numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(list(bars.x)[::-1], w.steps[-1].top_probs[0].numpy(), rtol=1e-6)


def test_bad_input(lens):
    with pytest.raises(ValueError, match="prompt"):
        GenerationStepper(lens, "")
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationStepper(lens, PROMPT, max_new_tokens=0)
    w = GenerationStepper(lens, PROMPT, max_new_tokens=3)
    with pytest.raises(ValueError, match="'zero', 'scale', 'source'"):
        w.add_patch(0, value="nonsense")
    with pytest.raises(IndexError, match="outside the sequence"):
        w.add_patch(0, position=50)
    with pytest.raises(KeyError, match="Did you mean"):
        w.add_patch(0, "hook_resid_pots")
    assert w.patches == []


# ---------------------------------------------------------------------------- captioning
CAPTION = "<|image|>a picture of"


def _grown_inputs(lens, prompt, img, new_tokens):
    """Processor inputs for prompt + new tokens, each new token seeing what the last prompt
    token saw (written here, as the truth for the stepper's cached rows)."""
    ids, kw = lens.inputs(prompt, [img])
    kw = dict(kw)
    for t in new_tokens:
        ids = torch.cat([ids, torch.tensor([[t]])], 1)
        kw["attention_mask"] = torch.cat([kw["attention_mask"], torch.ones(1, 1).long()], 1)
        kw["cross_attention_mask"] = torch.cat([kw["cross_attention_mask"],
                                                kw["cross_attention_mask"][:, -1:]], 1)
    return ids, kw


def test_captioning_steps_follow_generate_and_show_cross_attention(vision_lens):  # noqa: F811
    lens = vision_lens
    img = picture(56, 28, seed=4)
    w = GenerationStepper(lens, CAPTION, max_new_tokens=3, top_k_probs=3, image=img)
    assert w.vision and w.cross_layers == [1, 3] and w.cross_layer == 3
    assert w.attention_layers == [0, 2] and w.geometry["tiles_w"] == 2
    assert w.picture.startswith("data:image/png;base64,")
    want = lens.generate(CAPTION, 3, images=[img])
    w.run()
    assert [s.token for s in w.steps] == want.new_tokens[0].tolist()
    assert torch.equal(w.tokens, want.tokens)
    for k in range(3):  # the row that wrote token k: last position of prompt + k tokens
        ids, kw = _grown_inputs(lens, CAPTION, img, want.new_tokens[0, :k].tolist())
        names = [f"blocks.{i}.attn.hook_pattern" for i in (1, 3)]
        with torch.no_grad():
            _, cache = lens.bridge.run_with_cache(ids, names_filter=names, **kw)
        for layer in (1, 3):
            full = cache[f"blocks.{layer}.attn.hook_pattern"][0, :, -1]  # [heads, image_tokens]
            torch.testing.assert_close(w.cross_attention(k, layer=layer), full.mean(0),
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(w.cross_attention(k, layer=layer, mode="head", head=2),
                                       full[2], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(
                w.cross_attention(k, layer=layer, mode="kv_group", kv_group=1),
                full[lens.heads_of_kv(1)].mean(0), atol=1e-5, rtol=1e-4)


def test_captioning_replies_and_the_image_attention_grid(vision_lens):  # noqa: F811
    """Step 0's grid is ImageAttention's grid at the last prompt token (same overlay code,
    independent forward: ImageAttention runs the prompt uncached)."""
    img = picture(40, 30, seed=6)
    w = GenerationStepper(vision_lens, CAPTION, max_new_tokens=4, image=img)
    reply = w.ask("step").reply
    assert reply["step"]["token"] == w.steps[0].text
    ia = lensnb.ImageAttention(vision_lens, CAPTION, img, layer=1, token=-1, mode="head", head=1)
    answer = w.ask("cross", step=0, layer=1, mode="head", head=1)
    got = answer.reply
    want, summary = ia.grid()
    np.testing.assert_allclose(_buffer(answer.buffers["grid"]), want, atol=1e-5)
    assert got["step"] == 0 and got["token"] == w.steps[0].text
    assert got["on_picture"] == pytest.approx(summary["on_picture"], abs=1e-5)
    w.ask("step")
    reqs = w.export_requests()
    cross = [r["params"] for r in reqs if r["name"] == "cross"]
    assert [r["step"] for r in cross] == [0, 1]
    assert all(r["layer"] == w.cross_layer and r["mode"] == "mean" for r in cross)
    # the first drawn self-attention panel is a self-attention layer, not a cross one
    assert {"name": "attention", "params": {"layer": 2}} in reqs
    # self-attention of the new token on a vision lens: truth from a full forward
    att = w.attention(2)
    ids, kw = _grown_inputs(vision_lens, CAPTION, img, [w.steps[0].token])
    with torch.no_grad():
        _, cache = vision_lens.bridge.run_with_cache(
            ids, names_filter=["blocks.2.attn.hook_pattern"], **kw)
    torch.testing.assert_close(att, cache["blocks.2.attn.hook_pattern"][0, :, -1])


def test_captioning_patch_changes_what_it_looks_at(vision_lens):  # noqa: F811
    img = picture(56, 56, seed=8)
    w = GenerationStepper(vision_lens, CAPTION, max_new_tokens=2, image=img)
    w.run()
    before = w.cross_attention(1, layer=3)
    w.add_patch(2, "hook_resid_post", position=-1, value="scale", scale=0.0,
                every_generated=True)
    w.run()
    p = lensnb.patch(2, "hook_resid_post", position=-1, value=lambda old: old * 0.0,
                     every_generated=True)
    want = vision_lens.generate(CAPTION, 2, images=[img], hooks=[p],
                                cache="blocks.3.attn.hook_pattern")
    after = w.cross_attention(1, layer=3)
    torch.testing.assert_close(after, want.steps[1].cache["blocks.3.attn.hook_pattern"][0]
                               .mean(0))
    assert (after - before).abs().max() > 1e-4


def test_captioning_figure_shows_each_token_on_the_picture(vision_lens):  # noqa: F811
    img = picture(56, 28, seed=9)
    w = GenerationStepper(vision_lens, CAPTION, max_new_tokens=3, image=img)
    w.run()
    w.cross_mode, w.cross_head = "head", 3
    fig = w.figure(max_pictures=2)
    heat, bars, *rest = fig.data
    assert np.asarray(heat.z).shape == (vision_lens.n_layers, 3)
    pictures = [t for t in rest if t.type == "image"]
    grids = [t for t in rest if t.type == "heatmap"]
    assert len(pictures) == len(grids) == 2  # the last two tokens
    for step, g in zip((1, 2), grids, strict=True):
        np.testing.assert_allclose(np.asarray(g.z), w.cross_grid(step)[0], rtol=1e-6)
    titles = [a.text for a in fig.layout.annotations]
    assert any(t.startswith("2: ") for t in titles)
    assert fig.layout.meta == {"cross_layer": 3, "cross_mode": "head"}


def test_captioning_bad_input(vision_lens, lens):  # noqa: F811
    img = picture(28, 28)
    with pytest.raises(TypeError, match="Llama 3.2 Vision"):
        GenerationStepper(lens, "<|image|>x", image=img)
    with pytest.raises(ValueError, match="exactly one <\\|image\\|>"):
        GenerationStepper(vision_lens, "a picture", image=img)
    with pytest.raises(ValueError, match="exactly one"):
        GenerationStepper(vision_lens, "<|image|><|image|>", image=img)
    with pytest.raises(ValueError, match="no image was given"):
        GenerationStepper(vision_lens, CAPTION)
    w = GenerationStepper(vision_lens, CAPTION, max_new_tokens=2, image=img)
    with pytest.raises(ValueError, match="no step yet"):
        w.cross_attention()
    w.step()
    with pytest.raises(ValueError, match="cross-attention layer"):
        w.attention(1)
    with pytest.raises(ValueError, match="not a cross-attention layer"):
        w.cross_attention(layer=2)
    with pytest.raises(IndexError, match="out of range"):
        w.cross_attention(5)
    with pytest.raises(Exception, match="not a cross-attention layer"):
        w.cross_layer = 0
    with pytest.raises(IndexError, match="query head"):
        w.cross_head = 9
    text = GenerationStepper(vision_lens, "def f(x):", max_new_tokens=2)  # no picture: text only
    assert not text.vision and text.attention_layers == [0, 2]
    text.run()
    with pytest.raises(ValueError, match="no image"):
        text.cross_attention()
