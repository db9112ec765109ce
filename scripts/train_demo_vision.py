"""Train the embedded vision demo: a tiny Llama-3.2-Vision-style (Mllama) model that captions
synthetic pictures of one coloured shape ("a red circle at the top left").

    .venv/bin/python scripts/train_demo_vision.py            # writes lensnb/assets/demo_vision/

Deterministic (fixed seeds, one CPU thread by default), about 10 minutes on a free CPU core.
The model keeps the real architecture (tiles, local + gated global vision layers, projector,
gated cross-attention layers interleaved with GQA self-attention layers, llama3 RoPE) at toy
sizes; the tokenizer is word-level over the caption vocabulary plus Llama 3's special tokens.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "lensnb" / "assets" / "demo_vision"

COLOURS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220),
           "yellow": (235, 200, 20)}
SHAPES = ("circle", "square", "triangle")
ROWS = ("top", "middle", "bottom")
COLS = ("left", "centre", "right")
IMAGE = 56   # picture side in pixels: 2 x 2 tiles of 28 px, each 2 x 2 patches of 14 px
TILE = 28
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>"]
GATES = ("gate", "gate_attn", "gate_ffn", "cross_attn_attn_gate", "cross_attn_mlp_gate")
WORDS = ["a", "at", "the", *COLOURS, *SHAPES, *ROWS, *COLS]


def place_words(row: str, col: str) -> str:
    """``"top left"``, ``"top"`` (centre column), ``"left"`` (middle row), ``"centre"``."""
    if row == "middle" and col == "centre":
        return "centre"
    if row == "middle":
        return col
    if col == "centre":
        return row
    return f"{row} {col}"


def caption(colour: str, shape: str, row: str, col: str) -> str:
    return f"a {colour} {shape} at the {place_words(row, col)}"


def draw(colour: str, shape: str, row: str, col: str, rng: random.Random) -> tuple[Image.Image,
                                                                                     tuple]:
    """A picture and the shape's box ``(x0, y0, x1, y1)`` in pixels."""
    bg = tuple(rng.randint(200, 255) for _ in range(3))
    img = Image.new("RGB", (IMAGE, IMAGE), bg)
    cell = IMAGE / 3
    size = rng.randint(11, 15)
    cx = (COLS.index(col) + 0.5) * cell + rng.uniform(-2, 2)
    cy = (ROWS.index(row) + 0.5) * cell + rng.uniform(-2, 2)
    box = (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
    d = ImageDraw.Draw(img)
    fill = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in COLOURS[colour])
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(box[0], box[3]), (box[2], box[3]), (cx, box[1])], fill=fill)
    return img, box


def sample(rng: random.Random) -> tuple[Image.Image, str, tuple]:
    c, s = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    r, k = rng.choice(ROWS), rng.choice(COLS)
    img, box = draw(c, s, r, k, rng)
    return img, caption(c, s, r, k), box


def build_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    vocab["<|image|>"] = len(vocab)  # id == text vocab_size, as in Llama 3.2 Vision
    tok = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
        pad_token="<|end_of_text|>", extra_special_tokens={"image_token": "<|image|>"},
    )
    fast.add_special_tokens({"additional_special_tokens": ["<|image|>"]})
    return fast


def build_processor(tok):
    from transformers import MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    ip = MllamaImageProcessorPil(size={"height": TILE, "width": TILE}, max_image_tiles=4)
    return MllamaProcessor(image_processor=ip, tokenizer=tok)


def build_model(vocab_size: int, tok):
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    cfg = MllamaConfig(
        vision_config=dict(hidden_size=64, num_hidden_layers=2, num_global_layers=1,
                           attention_heads=4, intermediate_size=128, vision_output_dim=128,
                           image_size=TILE, patch_size=14, max_num_tiles=4,
                           intermediate_layers_indices=[0]),
        text_config=dict(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                         cross_attention_layers=[1, 3], max_position_embeddings=128,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
                         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0,
                                              factor=8.0, low_freq_factor=1.0,
                                              high_freq_factor=4.0,
                                              original_max_position_embeddings=32)),
        image_token_index=vocab_size,
    )
    cfg.architectures = ["MllamaForConditionalGeneration"]
    model = MllamaForConditionalGeneration(cfg)
    # HF starts every tanh gate at 0 (right when adding vision to a trained text model). From
    # scratch that blocks learning: a closed gate passes no gradient to what is behind it, and
    # the tile-position embeddings (which say where a tile sits) would stay off. Open them half.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1] in GATES:
                p.fill_(0.55)  # tanh(0.55) ~ 0.5
    return model


def batch(proc, rng: random.Random, n: int, *, with_caption: bool = True):
    imgs, caps, boxes = zip(*(sample(rng) for _ in range(n)), strict=True)
    texts = [f"<|image|>{c}<|end_of_text|>" if with_caption else "<|image|>" for c in caps]
    enc = proc(text=texts, images=[[i] for i in imgs], return_tensors="pt", padding=True,
               add_special_tokens=False)
    return enc, list(caps), list(boxes)


@torch.no_grad()
def greedy_captions(model, proc, enc, max_new: int = 9) -> list[str]:
    """Greedy decoding from ``<|image|><|begin_of_text|>`` (full forward each step; tiny)."""
    tok = proc.tokenizer
    ids = enc["input_ids"]
    done = torch.zeros(ids.shape[0], dtype=torch.bool)
    for _ in range(max_new):
        n = ids.shape[1]
        cam = enc["cross_attention_mask"][:, :1].expand(-1, n, -1, -1)
        logits = model(input_ids=ids, pixel_values=enc["pixel_values"],
                       aspect_ratio_ids=enc["aspect_ratio_ids"],
                       aspect_ratio_mask=enc["aspect_ratio_mask"],
                       cross_attention_mask=cam).logits[:, -1]
        nxt = logits.argmax(-1)
        nxt[done] = tok.eos_token_id
        done |= nxt == tok.eos_token_id
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if done.all():
            break
    out = []
    for row in ids[:, 2:].tolist():
        words = [tok.convert_ids_to_tokens(t) for t in row]
        if "<|end_of_text|>" in words:
            words = words[: words.index("<|end_of_text|>")]
        out.append(" ".join(words))
    return out


def evaluate(model, proc, seed: int, n: int = 300) -> float:
    rng = random.Random(seed)
    model.eval()
    right = 0
    for start in range(0, n, 100):
        enc, caps, _ = batch(proc, rng, min(100, n - start), with_caption=False)
        right += sum(p == c for p, c in zip(greedy_captions(model, proc, enc), caps,
                                            strict=True))
    model.train()
    return right / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a busy 2-core machine)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    np.random.seed(0)
    rng = random.Random(0)
    tok = build_tokenizer()
    proc = build_processor(tok)
    vocab_size = tok.convert_tokens_to_ids("<|image|>")
    model = build_model(vocab_size, tok)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = 100

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warm) / (args.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t0 = time.time()
    # a fixed pool of processed pictures (drawing + processing every step would dominate)
    pool = [batch(proc, rng, 250)[0] for _ in range(args.pool // 250)]
    print(f"pool of {args.pool} pictures ready in {time.time() - t0:.0f}s", flush=True)
    for step in range(args.steps):
        chunk = pool[step % len(pool)]
        idx = torch.randperm(chunk["input_ids"].shape[0])[: args.batch]
        enc = {k: v[idx] for k, v in chunk.items()}
        labels = enc["input_ids"].clone()
        labels[:, :2] = -100  # <|image|> and <|begin_of_text|> are given, not predicted
        labels[enc["attention_mask"] == 0] = -100
        # pad tokens equal EOS: keep the first EOS of each row as a target
        loss = model(**enc, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  {time.time() - t0:6.0f}s", flush=True)
    train_s = time.time() - t0
    acc = evaluate(model, proc, seed=12345)
    print(f"caption accuracy on 300 fresh pictures: {acc:.3f}  (trained {train_s:.0f}s)")

    args.out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(args.out)
    proc.save_pretrained(args.out)
    (args.out / "training.json").write_text(json.dumps({
        "script": "scripts/train_demo_vision.py", "steps": args.steps, "batch": args.batch,
        "lr": args.lr, "train_seconds": round(train_s), "caption_accuracy_fresh_300": acc,
        "task": "caption one coloured shape: 'a <colour> <shape> at the <place>'",
        "colours": list(COLOURS), "shapes": list(SHAPES), "image_px": IMAGE, "tile_px": TILE,
    }, indent=2) + "\n")
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
