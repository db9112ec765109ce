"""Integration tier: the embedded demo-vision model (scripts/train_demo_vision.py) captions fresh
pictures, and its cross-attention looks at the shape it names. Ground truth: the caption the
picture was drawn from."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import lensnb

REPO = Path(__file__).resolve().parents[3]
pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def task():
    """The picture generator the demo was trained on (drawing + captions)."""
    spec = importlib.util.spec_from_file_location("train_demo_vision",
                                                  REPO / "scripts" / "train_demo_vision.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo():
    return lensnb.load("demo-vision")


def greedy(lens, image, max_words: int = 8) -> str:
    words: list[str] = []
    for _ in range(max_words):
        logits = lens("<|image|>" + " ".join(words), images=[image])
        word = lens.tokenizer.decode([int(logits[0, -1].argmax())])
        if word == lens.tokenizer.eos_token:
            break
        words.append(word)
    return " ".join(words)


def test_demo_captions_fresh_pictures(demo, task):
    rng = random.Random(2024)  # not the training (0) or the script's evaluation (12345) seed
    samples = [task.sample(rng) for _ in range(20)]
    said = [greedy(demo, img).split() for img, _, _ in samples]
    truth = [cap.split() for _, cap, _ in samples]
    # "a <colour> <shape> at the <place...>": colour and place are nearly always right (measured
    # 60/60 and 59/60), the shape less often (46/60; chance is 1/3)
    colour = sum(s[1:2] == t[1:2] for s, t in zip(said, truth, strict=True))
    shape = sum(s[2:3] == t[2:3] for s, t in zip(said, truth, strict=True))
    place = sum(s[3:] == t[3:] for s, t in zip(said, truth, strict=True))
    assert colour >= 18 and place >= 17 and shape >= 11, (colour, shape, place, said)


def test_demo_cross_attention_looks_at_the_shape(demo, task):
    """At the colour word (which predicts the shape), the last cross-attention layer puts far
    more of its picture attention on the patches under the shape than their share of the
    picture (measured: 84% of it on 23% of the patches)."""
    rng = random.Random(99)
    layer = demo.facts.cross_attention_layers[-1]
    ratios = []
    for _ in range(10):
        img, cap, box = task.sample(rng)
        w = lensnb.ImageAttention(demo, "<|image|>" + cap, img, layer=layer, mode="mean")
        grid, _ = w.grid(token=3)
        g = w.geometry
        ys = (np.arange(g["rows"])[:, None] + np.array([0, 1])) * g["patch_h"]
        xs = (np.arange(g["cols"])[:, None] + np.array([0, 1])) * g["patch_w"]
        over_y = (ys[:, 1] > box[1]) & (ys[:, 0] < box[3])
        over_x = (xs[:, 1] > box[0]) & (xs[:, 0] < box[2])
        under = over_y[:, None] & over_x[None, :]
        ratios.append((grid[under].sum() / grid.sum()) / under.mean())
    assert float(torch.tensor(ratios).median()) > 2.0, ratios


def test_demo_generate_with_image_equals_hf_generate(demo, task):
    """``lens.generate(..., images=[img])`` (KV cache, cross-attention keys computed once) gives
    Hugging Face ``generate``'s greedy tokens on the trained demo, caption by caption."""
    from transformers import MllamaForConditionalGeneration

    hf = MllamaForConditionalGeneration.from_pretrained(
        REPO / "lensnb" / "assets" / "demo_vision", attn_implementation="eager").eval()
    rng = random.Random(7)
    for _ in range(4):
        img, caption, _ = task.sample(rng)
        ids, kwargs = demo.inputs("<|image|>", [img])
        with torch.no_grad():
            want = hf.generate(input_ids=ids, **kwargs, max_new_tokens=8, do_sample=False,
                               pad_token_id=demo.tokenizer.eos_token_id)
        got = demo.generate("<|image|>", 8, images=[img])
        n = min(got.tokens.shape[1], want.shape[1])  # both stop at EOS
        assert torch.equal(got.tokens[:, :n], want[:, :n]), (got.text, caption)
        assert got.stop_reason == "eos"
        said, truth = got.text.split(), caption.split()
        assert said[:2] == truth[:2] and said[3:] == truth[3:]  # colour and place (see above)
