"""Generation on Llama 3.2 Vision (``lens.generate(prompt, images=[...])``, ``lens.steps``).

Unit tier: the tiny random Mllama of tests/mllama_fixtures.py (random tanh gates, so the image
matters). Truths: Hugging Face ``MllamaForConditionalGeneration.generate`` (eager, same weights)
and a loop written here that re-runs the full sequence every step without any cache."""

from __future__ import annotations

import warnings

import pytest
import torch
from mllama_fixtures import picture
from PIL import Image

import lensnb

N = 10
TEXT = "def f(x):\n    return"
CAPTION = "<|image|>a picture of"


def hf_greedy(hf, lens, text, images, n=N):
    ids, kwargs = lens.inputs(text, images)
    with torch.no_grad():
        out = hf.generate(input_ids=ids, **kwargs, max_new_tokens=n, do_sample=False,
                          pad_token_id=lens.tokenizer.eos_token_id)
    return out


def uncached(lens, text, images, n, fwd_hooks=()):
    """Greedy tokens [1, pos + n] and logits [1, n, d_vocab], recomputing the whole sequence
    (image included) every step; new tokens see the images the last prompt token saw."""
    ids, kwargs = lens.inputs(text, images)
    kwargs = dict(kwargs)
    logits = []
    for _ in range(n):
        with torch.no_grad(), lens.bridge.hooks(fwd_hooks=list(fwd_hooks)):
            lg = lens.bridge(ids, **kwargs)[:, -1]
        logits.append(lg)
        token = lg.argmax(-1, keepdim=True)
        ids = torch.cat([ids, token], 1)
        if "attention_mask" in kwargs:
            kwargs["attention_mask"] = torch.cat(
                [kwargs["attention_mask"], torch.ones_like(token)], 1)
        if "cross_attention_mask" in kwargs:
            cam = kwargs["cross_attention_mask"]
            kwargs["cross_attention_mask"] = torch.cat([cam, cam[:, -1:]], 1)
    return ids, torch.stack(logits, 1)


def test_text_only_greedy_equals_hf_generate(vision_lens, hf_mllama):
    want = hf_greedy(hf_mllama, vision_lens, TEXT, None)
    got = vision_lens.generate(TEXT, N)
    assert got.path == "bridge"
    assert len(set(got.new_tokens[0].tolist())) > 3  # a varied continuation
    assert torch.equal(got.tokens, want)


@pytest.mark.parametrize(("w", "h", "n_tiles"), [(28, 28, 1), (56, 28, 2), (20, 80, 3),
                                                 (56, 56, 4)])
def test_one_image_greedy_equals_hf_generate(vision_lens, hf_mllama, w, h, n_tiles):
    img = picture(w, h, seed=w * h)
    _, kwargs = vision_lens.inputs(CAPTION, [img])
    assert int(kwargs["aspect_ratio_mask"].sum()) == n_tiles
    want = hf_greedy(hf_mllama, vision_lens, CAPTION, [img])
    got = vision_lens.generate(CAPTION, N, images=[img], return_logits=True)
    assert torch.equal(got.tokens, want)
    # and the picture matters: another one changes the next-token distribution
    white = Image.new("RGB", (w, h), (255, 255, 255))
    other = vision_lens.generate(CAPTION, 1, images=[white], return_logits=True)
    assert (other.logits[:, 0] - got.logits[:, 0]).abs().max() > 1e-3


def test_cross_attention_pattern_each_step_equals_uncached(vision_lens):
    """The hook sees [batch, head, 1, image_tokens] at every later step with the step's
    absolute position, and the values are the last row of an uncached full forward."""
    lens = vision_lens
    img = picture(56, 28, seed=3)
    seen = []

    def record(t, ctx):
        seen.append((ctx.step, ctx.cross_attention, ctx.positions.tolist(),
                     ctx.key_positions.shape[-1], t.detach().clone()))

    out = lens.generate(CAPTION, 5, images=[img], hooks=[("blocks.1.attn.hook_pattern", record)])
    n = out.prompt_lengths[0]
    image_tokens = 4 * 5  # max_tiles * (1 + 2 * 2) patches per tile
    assert [s[0] for s in seen] == [0, 1, 2, 3, 4]
    for step, cross, positions, n_keys, t in seen:
        assert cross and n_keys == image_tokens
        q = n if step == 0 else 1
        assert t.shape == (1, lens.n_heads, q, image_tokens)
        assert positions == ([list(range(n))] if step == 0 else [[n + step - 1]])
    full = []
    toks, _ = uncached(lens, CAPTION, [img], 5, [("blocks.1.attn.hook_pattern",
                                                  lambda t, hook: full.append(t[:, :, -1]))])
    assert torch.equal(toks, out.tokens)
    for (*_, t), want in zip(seen, full, strict=True):
        torch.testing.assert_close(t[:, :, -1], want, atol=1e-5, rtol=1e-4)


def test_image_encoded_once_and_cross_keys_reused(vision_lens):
    calls: dict[str, list[int]] = {}

    def count(name):
        return (name, lambda t, ctx: calls.setdefault(name, []).append(ctx.step))

    names = ["vision_projector.hook_out", "blocks.1.attn.hook_k", "blocks.3.attn.hook_v",
             "blocks.1.attn.hook_q", "blocks.0.attn.hook_k"]
    vision_lens.generate(CAPTION, 4, images=[picture(40, 30)], hooks=[count(n) for n in names])
    assert calls["vision_projector.hook_out"] == [0]
    assert calls["blocks.1.attn.hook_k"] == calls["blocks.3.attn.hook_v"] == [0]
    assert calls["blocks.1.attn.hook_q"] == calls["blocks.0.attn.hook_k"] == [0, 1, 2, 3]


def test_text_only_prompt_skips_cross_attention_layers(vision_lens):
    fired = []
    out = vision_lens.generate(TEXT, 3, hooks=[("blocks.1.*", lambda t, ctx: fired.append(1)),
                                               ("blocks.3.*", lambda t, ctx: fired.append(3))])
    assert out.new_tokens.shape == (1, 3) and not fired


@pytest.mark.parametrize(("hook", "layer", "position"), [
    ("hook_resid_post", 0, 3),  # a self-attention layer, before the image is read
    ("attn.hook_pattern", 1, -1),  # the cross-attention pattern of the last prompt token
])
def test_patched_cached_equals_uncached(vision_lens, hook, layer, position):
    lens = vision_lens
    img = picture(56, 56, seed=7)
    torch.manual_seed(0)
    name = lens.hook_name(hook, layer)
    _, cache = lens.run_with_cache(CAPTION, images=[img], names=[name])
    n = cache[name].shape[2 if "pattern" in hook else 1]
    pos = position % n
    if "pattern" in hook:  # all of the last prompt token's cross-attention on image token 0
        value = torch.zeros_like(cache[name][0, :, pos])
        value[:, 0] = 1.0
    else:
        value = torch.randn_like(cache[name][0, pos]) * 3
    p = lensnb.patch(layer, hook, position=position, value=value, every_generated=True)
    got = lens.generate(CAPTION, 6, images=[img], hooks=[p], return_logits=True)

    def manual(t, hook):
        t = t.clone()
        if t.ndim == 4:  # pattern [batch, head, query, key]
            t[:, :, pos] = value
            t[:, :, n:] = value[:, None]
        else:
            t[:, pos] = value
            t[:, n:] = value
        return t

    toks, logits = uncached(lens, CAPTION, [img], 6, [(name, manual)])
    plain = lens.generate(CAPTION, 6, images=[img], return_logits=True)
    assert (plain.logits - logits).abs().max() > 1e-3  # the patch matters
    assert torch.equal(got.tokens, toks)
    assert (got.logits - logits).abs().max() < 1e-4


def test_unpatched_cached_equals_uncached_loop(vision_lens):
    img = picture(20, 80, seed=2)
    got = vision_lens.generate(CAPTION, 6, images=[img], return_logits=True)
    toks, logits = uncached(vision_lens, CAPTION, [img], 6)
    assert torch.equal(got.tokens, toks)
    assert (got.logits - logits).abs().max() < 1e-4


def test_text_only_batch_equals_hf_generate(vision_lens, hf_mllama):
    """Left-padded text prompts on a vision lens: HF generate with the same padding."""
    texts = ["import os", "def add(a, b):\n    return a +"]
    got = vision_lens.generate(texts, 6)
    assert got.prompt_lengths[0] < got.prompt_lengths[1]
    width = got.tokens.shape[1] - 6
    mask = torch.stack([torch.arange(width) >= width - n for n in got.prompt_lengths]).long()
    with torch.no_grad():
        want = hf_mllama.generate(input_ids=got.tokens[:, :width], attention_mask=mask,
                                  max_new_tokens=6, do_sample=False,
                                  pad_token_id=vision_lens.tokenizer.eos_token_id)
    assert torch.equal(got.tokens, want)


def test_batch_with_images_equals_each_row_alone(vision_lens):
    texts = ["<|image|>one picture, then some more", "<|image|>two"]
    images = [[picture(30, 50, 1)], [picture(56, 28, 2)]]
    batch = vision_lens.generate(texts, 5, images=images, return_logits=True)
    assert len(set(batch.prompt_lengths)) == 2
    for i in range(2):
        alone = vision_lens.generate(texts[i], 5, images=images[i], return_logits=True)
        assert torch.equal(batch.new_tokens[i], alone.new_tokens[0])
        assert (batch.logits[i] - alone.logits[0]).abs().max() < 1e-4


def test_steps_with_logit_lens_and_cached_cross_pattern(vision_lens, hf_mllama):
    """``steps`` on a vision lens: each step keeps the cross-attention row of the predicting
    position ([batch, heads, image_tokens]); the logit lens covers every layer, also the
    cross-attention ones that a text-only prompt skips (they pass the residual on)."""
    img = picture(40, 30)
    steps = list(vision_lens.steps(CAPTION, 3, images=[img], cache="blocks.1.attn.hook_pattern",
                                   logit_lens=2))
    for s in steps:
        row = s.cache["blocks.1.attn.hook_pattern"]
        assert row.shape == (1, vision_lens.n_heads, 20)
        torch.testing.assert_close(row.sum(-1), torch.ones(1, vision_lens.n_heads))
        assert s.logit_lens.top_ids.shape == (1, vision_lens.n_layers, 2)
    text_steps = list(vision_lens.steps(TEXT, 2, logit_lens=2))
    ll = text_steps[0].logit_lens.top_probs[0]  # layer 1 (cross, skipped) == layer 0
    torch.testing.assert_close(ll[1], ll[0])


def test_no_warnings_and_clear_errors(vision_lens):
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*(past_key_values|cache).*")
        vision_lens.generate(CAPTION, 2, images=[picture(28, 28)])
    with pytest.raises(ValueError, match="fast path"):
        vision_lens.generate(TEXT, 2, path="fast")
    with pytest.raises(ValueError, match="image"):
        vision_lens.generate(CAPTION, 2)  # an <|image|> without an image
