"""ImageAttention: the grid it shows is the hooked cross-attention pattern (itself tested against
Hugging Face and a hand computation in tests/backend/vision/), mapped back onto the picture; the
gate chart is tanh of the HF gate parameters; bad input fails clearly. Unit tier: a tiny random
Mllama (tests/mllama_fixtures.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mllama_fixtures import hf_mllama, mllama_dir, picture, vision_lens  # noqa: F401

import lensnb
from lensnb.backends.mllama.images import image_layout

TEXT = "<|image|>a picture of a cat"


@pytest.fixture(scope="module")
def widget(vision_lens):  # noqa: F811
    return lensnb.ImageAttention(vision_lens, TEXT, picture(56, 40, seed=3), token=-1)


def _pattern(lens, layer, img):
    _, cache = lens.run_with_cache(TEXT, images=[img], names=f"blocks.{layer}.attn.hook_pattern")
    return cache[f"blocks.{layer}.attn.hook_pattern"][0]  # [n_heads, pos, image_tokens]


def test_weights_are_the_hooked_pattern(widget, vision_lens):  # noqa: F811
    img = picture(56, 40, seed=3)
    for layer in (1, 3):
        p = _pattern(vision_lens, layer, img)
        t = widget.token
        assert torch.allclose(widget.weights(layer=layer, mode="head", head=2), p[2, t])
        # KV group 1 = query heads 2 and 3 (4 heads over 2 KV heads)
        assert torch.allclose(widget.weights(layer=layer, mode="kv_group", kv_group=1),
                              (p[2, t] + p[3, t]) / 2)
        assert torch.allclose(widget.weights(layer=layer, mode="mean"), p[:, t].mean(0))


def test_grid_is_the_layout_of_the_weights_and_mass_adds_up(widget, vision_lens):  # noqa: F811
    img = picture(56, 40, seed=3)
    lay = image_layout(vision_lens.bridge.processor.image_processor, 14, img)
    w = widget.weights(layer=3, mode="head", head=1)
    grid, summary = widget.grid(layer=3, mode="head", head=1)
    np.testing.assert_allclose(grid, lay.picture_grid(w)[0])
    # 56x40 -> a 2x2 canvas of 28 px tiles; the picture covers 4 x 3 patches after resizing
    assert (lay.tiles_h, lay.tiles_w) == (2, 2) and grid.shape == (3, 4)
    padding_patches = float(w.sum()) - summary["on_picture"] - summary["on_class_tokens"]
    assert summary["total"] == pytest.approx(1.0, abs=1e-5)
    assert padding_patches >= -1e-6


def test_answer_sends_the_grid_as_float32(widget):
    widget.layer, widget.mode, widget.head = 1, "head", 0
    got = widget.ask("grid", layer=1, token=3, mode="kv_group", kv_group=0)
    grid = got.buffers["grid"]
    assert grid.dtype == np.float32
    np.testing.assert_allclose(grid, widget.grid(layer=1, token=3, mode="kv_group",
                                                 kv_group=0)[0], rtol=1e-6)
    assert len(widget.export_requests()) == 2 * len(widget.tokens)
    with pytest.raises(ValueError, match="unknown request"):
        widget.ask("nope")


def test_gates_are_tanh_of_hf_parameters(widget, hf_mllama):  # noqa: F811
    for (attn, mlp), layer in zip(widget.gates, widget.cross_layers, strict=True):
        hf_layer = hf_mllama.model.language_model.layers[layer]
        assert attn == pytest.approx(float(hf_layer.cross_attn_attn_gate.detach().tanh()), abs=1e-6)
        assert mlp == pytest.approx(float(hf_layer.cross_attn_mlp_gate.detach().tanh()), abs=1e-6)


def test_figure_shows_picture_heatmap_and_gates(widget):
    widget.layer, widget.token, widget.mode, widget.head = 3, 5, "head", 2
    fig = widget.figure(style="paper")
    heat = [t for t in fig.data if t.type == "heatmap"][0]
    np.testing.assert_allclose(np.asarray(heat.z), widget.grid()[0])
    assert [t.type for t in fig.data].count("image") == 1
    bars = {t.name: list(t.y) for t in fig.data if t.type == "bar"}
    assert bars["attention gate"] == [g[0] for g in widget.gates]
    assert bars["MLP gate"] == [g[1] for g in widget.gates]
    # patch centres in original pixels: 4 columns over 56 px
    assert list(heat.x) == pytest.approx([7.0, 21.0, 35.0, 49.0])


def test_bad_input(vision_lens, widget, make_tiny_model):  # noqa: F811
    with pytest.raises(ValueError, match=r"exactly one <\|image\|>"):
        lensnb.ImageAttention(vision_lens, "no image token", picture(28, 28))
    with pytest.raises(TypeError, match="needs a Llama 3.2 Vision model"):
        lensnb.ImageAttention(lensnb.load(make_tiny_model("llama")), TEXT, picture(28, 28))
    with pytest.raises(Exception, match=r"not a cross-attention layer.*\[1, 3\]"):
        widget.layer = 2
    with pytest.raises(Exception, match="expected any of"):
        widget.mode = "all"
    with pytest.raises(Exception, match="out of range"):
        widget.token = 99


def test_standalone_html_carries_every_token_of_the_current_choice(widget, tmp_path):
    from lensnb.export.html import widget_payload

    widget.layer, widget.mode, widget.head = 1, "head", 1
    payload = widget_payload(widget)
    asked = {(r["request"]["params"]["layer"], r["request"]["params"]["token"])
             for r in payload["replies"]}
    assert asked == {(layer, t) for layer in (1, 3) for t in range(len(widget.tokens))}
    path = widget.save(tmp_path / "image_attention.html")
    assert path.stat().st_size > 1000 and "lensnb-imgattn" in path.read_text()
