"""Llama 3.2 Vision through lensnb equals Hugging Face's MllamaForConditionalGeneration (eager),
hooks mean what they say, and bad inputs fail clearly. Unit tier: tiny random configs."""

from __future__ import annotations

import pytest
import torch
from mllama_fixtures import picture

TOL = 1e-4


def hf_logits(hf, lens, text, images=None):
    """Reference logits from HF on the same processor inputs lensnb builds."""
    ids, kwargs = lens.inputs(text, images)
    with torch.no_grad():
        return hf(input_ids=ids, **kwargs).logits


def test_loads_as_vision_lens(vision_lens):
    from lensnb.backends.mllama.hooked import HookedMllama

    assert isinstance(vision_lens.bridge, HookedMllama)
    assert vision_lens.n_layers == 4 and vision_lens.facts.cross_attention_layers == (1, 3)
    assert vision_lens.n_heads == 4 and vision_lens.n_key_value_heads == 2
    assert "MllamaForConditionalGeneration" in __import__("lensnb").supported_architectures()


def test_text_only_logits_equal_hf(vision_lens, hf_mllama):
    text = "def f(x):\n    return x"
    ours = vision_lens(text)
    ref = hf_logits(hf_mllama, vision_lens, text)
    assert ours.shape == ref.shape
    assert (ours - ref).abs().max() <= TOL


def test_one_image_logits_equal_hf_and_depend_on_the_image(vision_lens, hf_mllama):
    text = "<|image|>a picture of"
    img = picture(40, 30)
    ours = vision_lens(text, images=[img])
    ref = hf_logits(hf_mllama, vision_lens, text, [img])
    assert (ours - ref).abs().max() <= TOL
    other = vision_lens(text, images=[picture(40, 30, seed=1)])
    assert (ours - other)[0, 2:].abs().max() > 1e-3  # text after <|image|> sees the picture


@pytest.mark.parametrize(("w", "h", "tiles"), [(28, 28, (1, 1)), (56, 28, (1, 2)),
                                              (20, 80, (3, 1)), (56, 56, (2, 2))])
def test_tiles_and_aspect_ratios_equal_hf(vision_lens, hf_mllama, w, h, tiles):
    from lensnb.backends.mllama.images import image_layout

    img = picture(w, h, seed=w + h)
    layout = image_layout(vision_lens.bridge.processor.image_processor, 14, img)
    assert (layout.tiles_h, layout.tiles_w) == tiles
    _, kwargs = vision_lens.inputs("<|image|>tiles", [img])
    assert int(kwargs["aspect_ratio_mask"].sum()) == tiles[0] * tiles[1]
    ours = vision_lens("<|image|>tiles", images=[img])
    assert (ours - hf_logits(hf_mllama, vision_lens, "<|image|>tiles", [img])).abs().max() <= TOL


def test_batch_with_different_image_counts_equals_hf(vision_lens, hf_mllama):
    texts = ["<|image|>one picture, then some more text", "<|image|>two<|image|>pictures"]
    images = [[picture(30, 50, 1)], [picture(56, 28, 2), picture(28, 28, 3)]]
    ours = vision_lens(texts, images=images)
    ref = hf_logits(hf_mllama, vision_lens, texts, images)
    assert ours.shape[0] == 2
    assert (ours - ref).abs().max() <= TOL
    # each row equals that text run alone (up to its own length)
    alone = vision_lens(texts[1], images=images[1])
    assert (ours[1, : alone.shape[1]] - alone[0]).abs().max() <= TOL


def test_cross_attention_pattern_equals_hand_computation(vision_lens):
    lens = vision_lens
    img = picture(56, 28, seed=5)
    names = ["blocks.1.attn.hook_q_normed", "blocks.1.attn.hook_k_normed",
             "blocks.1.attn.hook_pattern", "vision_projector.hook_out"]
    _, cache = lens.run_with_cache("ab<|image|>cd efg", images=[img], names=names)
    q = cache["blocks.1.attn.hook_q_normed"]  # [1, pos, n_heads, d_head]
    k = cache["blocks.1.attn.hook_k_normed"]  # [1, image_tokens, n_kv, d_head]
    pattern = cache["blocks.1.attn.hook_pattern"]  # [1, n_heads, pos, image_tokens]
    n_tokens = 4 * 5  # max tiles x (1 class + 2x2 patches)
    assert pattern.shape == (1, 4, q.shape[1], n_tokens)
    assert cache["vision_projector.hook_out"].shape == (1, n_tokens, 64)
    _, kw = lens.inputs("ab<|image|>cd efg", [img])
    tiles_used = kw["aspect_ratio_mask"][0, 0]  # [max_tiles]
    seen = kw["cross_attention_mask"][0, :, 0]  # [pos, max_tiles]: token sees tile
    d = q.shape[-1]
    for h in range(4):
        kv = h // 2  # GQA: 4 query heads over 2 KV heads
        scores = q[0, :, h] @ k[0, :, kv].T / d ** 0.5  # [pos, image_tokens]
        allowed = seen.repeat_interleave(5, dim=1).bool()  # [pos, image_tokens]
        expected = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        rows = allowed.any(-1)
        assert (pattern[0, h][rows] - expected[rows]).abs().max() < 1e-5
    # tokens before <|image|> see no tile; padding tiles are never attended
    assert not seen[:2].any() and seen[3:, tiles_used.bool()].all()
    assert pattern[0, :, 3:, 10:].abs().max() < 1e-6  # a 1x2 image uses tiles 0-1 only


def test_gate_zero_through_hook_makes_layer_identity(vision_lens, hf_mllama):
    img = picture(28, 28, 7)
    text = "<|image|>gated layers"

    def zero(t, hook):
        return torch.zeros_like(t)

    _, cache = vision_lens.run_with_cache(
        text, images=[img], names=["blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"])
    assert (cache["blocks.1.hook_resid_post"] - cache["blocks.1.hook_resid_pre"]).abs().max() > 1e-3
    hooks = [("blocks.1.hook_attn_gate", zero), ("blocks.1.hook_mlp_gate", zero)]
    with vision_lens.bridge.hooks(fwd_hooks=hooks):
        _, cache = vision_lens.run_with_cache(
            text, images=[img], names=["blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"])
    assert torch.equal(cache["blocks.1.hook_resid_post"], cache["blocks.1.hook_resid_pre"])
    # same as Hugging Face with that layer's gate parameters set to 0 (tanh(0) = 0)
    gated = vision_lens.run_with_hooks(text, hooks, images=[img])
    layer = hf_mllama.model.language_model.layers[1]
    saved = layer.cross_attn_attn_gate.data.clone(), layer.cross_attn_mlp_gate.data.clone()
    try:
        layer.cross_attn_attn_gate.data.zero_()
        layer.cross_attn_mlp_gate.data.zero_()
        ref = hf_logits(hf_mllama, vision_lens, text, [img])
    finally:
        layer.cross_attn_attn_gate.data.copy_(saved[0])
        layer.cross_attn_mlp_gate.data.copy_(saved[1])
    assert (gated - ref).abs().max() <= TOL


def test_gate_hooks_report_tanh_of_the_parameters(vision_lens, hf_mllama):
    _, cache = vision_lens.run_with_cache("<|image|>x", images=[picture(28, 28)],
                                          names="blocks.*.hook_*_gate")
    for i in (1, 3):
        layer = hf_mllama.model.language_model.layers[i]
        assert torch.allclose(cache[f"blocks.{i}.hook_attn_gate"],
                              layer.cross_attn_attn_gate.tanh())
        assert torch.allclose(cache[f"blocks.{i}.hook_mlp_gate"], layer.cross_attn_mlp_gate.tanh())


def test_vision_and_projector_hooks(vision_lens, hf_mllama):
    img = picture(56, 56, 9)
    names = ["vision_encoder.hook_out", "vision_encoder.blocks.0.hook_out",
             "vision_encoder.global_blocks.0.hook_out",
             "vision_encoder.blocks.1.attn.hook_pattern", "vision_projector.hook_out"]
    _, cache = vision_lens.run_with_cache("<|image|>x", images=[img], names=names)
    _, kw = vision_lens.inputs("<|image|>x", [img])
    with torch.no_grad():
        ref = hf_mllama.model.vision_model(kw["pixel_values"], kw["aspect_ratio_ids"],
                                           kw["aspect_ratio_mask"]).last_hidden_state
    assert torch.allclose(cache["vision_encoder.hook_out"], ref, atol=1e-6)
    assert cache["vision_encoder.blocks.0.hook_out"].shape == (1, 4 * 8, 32)  # 5 -> 8 padded
    assert cache["vision_encoder.blocks.1.attn.hook_pattern"].shape == (1, 2, 32, 32)
    # replacing the projector output is the same as HF given those cross-attention states
    zeros = torch.zeros_like(cache["vision_projector.hook_out"])
    ours = vision_lens.run_with_hooks("<|image|>x", [("vision_projector.hook_out",
                                                      lambda t, hook: zeros)], images=[img])
    ids = kw["input_ids"] if "input_ids" in kw else vision_lens.inputs("<|image|>x", [img])[0]
    with torch.no_grad():
        ref = hf_mllama(input_ids=ids, cross_attention_states=zeros,
                        cross_attention_mask=kw["cross_attention_mask"],
                        attention_mask=kw["attention_mask"]).logits
    assert (ours - ref).abs().max() <= TOL


def test_self_attention_pattern_from_rotated_q_k(vision_lens):
    _, cache = vision_lens.run_with_cache("a b c d", names=["blocks.2.attn.hook_rot_q",
                                                            "blocks.2.attn.hook_rot_k",
                                                            "blocks.2.attn.hook_pattern"])
    q, k = cache["blocks.2.attn.hook_rot_q"][0], cache["blocks.2.attn.hook_rot_k"][0]
    p = q.shape[0]
    for h in range(4):
        scores = q[:, h] @ k[:, h // 2].T / q.shape[-1] ** 0.5
        causal = torch.ones(p, p, dtype=torch.bool).tril()
        expected = torch.softmax(scores.masked_fill(~causal, float("-inf")), -1)
        assert (cache["blocks.2.attn.hook_pattern"][0, h] - expected).abs().max() < 1e-5


def test_layout_maps_image_tokens_back_to_pixels(vision_lens):
    """A bright square at a known place: the brightest patch of the per-token mean pixel,
    mapped back by ImageLayout, lies over the square."""
    from PIL import Image, ImageDraw

    from lensnb.backends.mllama.images import image_layout

    img = Image.new("RGB", (56, 84), (0, 0, 0))  # tall: 3 x 2 canvas? (up to 4 tiles)
    ImageDraw.Draw(img).rectangle((36, 60, 50, 74), fill=(255, 255, 255))
    layout = image_layout(vision_lens.bridge.processor.image_processor, 14, img)
    _, kw = vision_lens.inputs("<|image|>", [img])
    px = kw["pixel_values"][0, 0]  # [tiles, 3, 28, 28]
    per_patch = px.mean(1).unfold(1, 14, 14).unfold(2, 14, 14).mean((-1, -2))  # [t, 2, 2]
    tokens = torch.cat([torch.zeros(4, 1), per_patch.reshape(4, 4)], dim=1).reshape(-1)
    grid, pw, ph = layout.picture_grid(tokens)
    r, c = divmod(int(grid.argmax()), grid.shape[1])
    cx, cy = (c + 0.5) * pw, (r + 0.5) * ph  # centre of that patch in original pixels
    assert 36 - pw / 2 <= cx <= 50 + pw / 2 and 60 - ph / 2 <= cy <= 74 + ph / 2


# ---------------------------------------------------------------------------- bad input
def test_image_without_image_token(vision_lens):
    from lensnb.backends.mllama.hooked import ImageTokenError

    with pytest.raises(ImageTokenError, match=r"no <\|image\|> token but 1 image"):
        vision_lens("a picture of", images=[picture(28, 28)])


def test_image_token_without_image(vision_lens):
    from lensnb.backends.mllama.hooked import ImageTokenError

    with pytest.raises(ImageTokenError, match=r"1 <\|image\|> token\(s\) but no image"):
        vision_lens("<|image|>a picture of")
    with pytest.raises(ImageTokenError, match=r"2 <\|image\|> token\(s\) but 1 image"):
        vision_lens("<|image|>a<|image|>b", images=[picture(28, 28)])


def test_wrong_image_mode(vision_lens):
    from PIL import Image

    from lensnb.backends.mllama.images import ImageInputError

    with pytest.raises(ImageInputError, match=r"mode 'I;16' is not supported.*RGB"):
        vision_lens("<|image|>x", images=[Image.new("I;16", (28, 28))])
    with pytest.raises(ImageInputError, match=r"expected a PIL.Image.Image"):
        vision_lens("<|image|>x", images=[torch.zeros(3, 28, 28)])


def test_corrupt_file(vision_lens, tmp_path):
    from lensnb.backends.mllama.images import ImageInputError

    bad = tmp_path / "broken.png"
    good = tmp_path / "good.png"
    picture(28, 28).save(good)
    bad.write_bytes(good.read_bytes()[:40] + b"\x00garbage" * 20)
    with pytest.raises(ImageInputError, match=r"broken.png.*not a readable image"):
        vision_lens("<|image|>x", images=[bad])
    with pytest.raises(ImageInputError, match=r"no image file"):
        vision_lens("<|image|>x", images=[tmp_path / "missing.png"])
    # a good file path works like the picture itself
    assert torch.equal(vision_lens("<|image|>x", images=[good]),
                       vision_lens("<|image|>x", images=[picture(28, 28)]))


def test_batch_needs_one_list_per_text(vision_lens):
    from lensnb.backends.mllama.images import ImageInputError

    with pytest.raises(ImageInputError, match="one list of images per text"):
        vision_lens(["<|image|>a", "<|image|>b"], images=[picture(28, 28)])


# ---------------------------------------------------------------------------- catalogue facts
@pytest.mark.parametrize(("name", "layers", "d", "heads", "cross"), [
    ("meta-llama/Llama-3.2-11B-Vision", 40, 4096, 32, 8),
    ("meta-llama/Llama-3.2-90B-Vision", 100, 8192, 64, 20),
])
def test_catalogue_facts_of_llama32_vision(name, layers, d, heads, cross):
    import lensnb

    f = lensnb.facts(name)
    assert (f.n_layers, f.d_model, f.n_heads, f.n_key_value_heads) == (layers, d, heads, 8)
    assert f.architecture == "MllamaForConditionalGeneration"
    assert len(f.cross_attention_layers) == cross and f.cross_attention_layers[0] == 3
    assert f.rope_scaling["rope_type"] == "llama3" and f.rope_theta == 500000.0
    v = f.vision
    assert (v["n_layers"], v["n_global_layers"], v["d_model"], v["n_heads"]) == (32, 8, 1280, 16)
    assert (v["image_size"], v["patch_size"], v["max_num_tiles"]) == (560, 14, 4)
    # vision_output_dim = d_vision x (1 + number of intermediate layers taken)
    assert v["vision_output_dim"] == 1280 * (1 + len(v["intermediate_layers_indices"]))


def test_load_from_a_model_object(hf_mllama, mllama_dir, vision_lens):
    """A loaded HF model (no processor files): tiles sized from its vision_config."""
    from transformers import AutoTokenizer

    import lensnb

    lens = lensnb.load(hf_mllama, tokenizer=AutoTokenizer.from_pretrained(mllama_dir))
    ip = lens.bridge.processor.image_processor
    assert (ip.size["height"], ip.max_image_tiles) == (28, 4)
    img = picture(50, 30, 4)
    # its own processor (Llama 3.2's CLIP mean/std, resized to 28 px tiles) feeds HF the same
    assert (lens("<|image|>x y", images=[img]) - hf_logits(
        hf_mllama, lens, "<|image|>x y", [img])).abs().max() <= TOL
    with pytest.raises(ValueError, match="compatibility mode"):
        lensnb.load(hf_mllama, tokenizer=lens.tokenizer, compatibility=True)
