"""Split-QKV memory on an 8B-shaped layer at 4k context.

Builds one decoder layer with Llama-3.1-8B's shapes (d_model 4096, 32 query heads, 8 KV heads,
d_head 128, d_mlp 14336; config from ``assets/configs/meta-llama--Llama-3.1-8B.json``, random
bf16 weights, vocabulary cut to the demo tokenizer's 4096 ids, which touches no layer shape) and
runs 4096 tokens through it twice, each in a fresh process: split QKV off, then on, caching the
residual stream and, when on, the per-head inputs ``hook_q_input``/``hook_k_input``/
``hook_v_input``. Reports the bytes of the actual cached tensors, their ratio to the residual
stream (the peer: what the same layer holds with split QKV off), the peak resident memory each
run added over the loaded model, and the 32-layer total (per-layer bytes x 32: arithmetic).

    .venv/bin/python bench/split_qkv_memory.py            # print the table
    .venv/bin/python bench/split_qkv_memory.py --write    # also update BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks_md import write_section  # bench/ is on the path of a bench script

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "lensnb" / "assets" / "configs" / "meta-llama--Llama-3.1-8B.json"
SECTION = "## Split-QKV memory (`bench/split_qkv_memory.py`)"
GiB = 2**30


def rss_bytes() -> int:
    """Current resident memory of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def child(split: bool, n_pos: int) -> dict:
    """One measurement in this process: build the layer, run it, report bytes."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    import lensnb

    torch.set_num_threads(2)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(REPO / "lensnb" / "assets" / "demo")
    cfg = json.loads(CONFIG.read_text())
    cfg.update(num_hidden_layers=1, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
               eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    config = LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures",)})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16,
                                             attn_implementation="eager").eval()
    lens = lensnb.load(model, tokenizer=tok)
    tokens = torch.randint(0, len(tok), (1, n_pos))
    tokens[0, 0] = tok.bos_token_id
    names = ["blocks.0.hook_resid_pre"]
    if split:
        names += [f"blocks.0.attn.hook_{w}_input" for w in "qkv"]
    base_rss, base_peak = rss_bytes(), peak_rss_bytes()
    start = time.perf_counter()
    with lens.split_qkv(split):
        _, cache = lens.run_with_cache(tokens, names=names, progress=False)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    tensors = {n.rsplit(".", 1)[-1]: cache[n] for n in names}
    return {
        "split": split, "n_pos": n_pos, "seconds": seconds,
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "bytes": {k: v.numel() * v.element_size() for k, v in tensors.items()},
        "dtype": str(tensors["hook_resid_pre"].dtype),
        "peak_added": peak - base_rss if peak > base_peak else None,
        "layout": dict(d_model=config.hidden_size, n_heads=config.num_attention_heads,
                       n_kv=config.num_key_value_heads, d_mlp=config.intermediate_size,
                       n_layers_full=json.loads(CONFIG.read_text())["num_hidden_layers"]),
    }


def run_child(split: bool, n_pos: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "on" if split else "off", "--pos", str(n_pos)],
        check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(off: dict, on: dict) -> str:
    lay, b = on["layout"], on["bytes"]
    resid = b["hook_resid_pre"]
    per_layer = b["hook_q_input"] + b["hook_k_input"] + b["hook_v_input"]
    n_layers = lay["n_layers_full"]

    def gib(x: float) -> str:
        return f"{x / GiB:.3f} GiB"

    def peak(r: dict) -> str:
        return gib(r["peak_added"]) if r["peak_added"] else "n/a (below load peak)"

    rows = [
        ("residual stream `hook_resid_pre` (peer)", on["shapes"]["hook_resid_pre"], resid),
        ("`hook_q_input`", on["shapes"]["hook_q_input"], b["hook_q_input"]),
        ("`hook_k_input`", on["shapes"]["hook_k_input"], b["hook_k_input"]),
        ("`hook_v_input`", on["shapes"]["hook_v_input"], b["hook_v_input"]),
        ("q + k + v inputs, one layer", None, per_layer),
    ]
    lines = [
        f"One Llama-3.1-8B-shaped layer (d_model {lay['d_model']}, {lay['n_heads']} heads, "
        f"{lay['n_kv']} KV heads, d_mlp {lay['d_mlp']}), {on['n_pos']} tokens, {on['dtype']}, "
        "CPU (2 cores), random weights, vocabulary cut to 4096. Bytes are of the cached tensors "
        "themselves (`numel * element_size`), measured in one run.",
        "",
        "| tensor | shape | bytes | x residual |",
        "|---|---|---|---|",
    ]
    for label, shape, n in rows:
        lines.append(f"| {label} | {'' if shape is None else tuple(shape)} | {gib(n)} | "
                     f"{n / resid:.0f}x |")
    lines += [
        "",
        f"- All {n_layers} layers of Llama 3.1 8B (per-layer bytes x {n_layers}, arithmetic): "
        f"per-head inputs {gib(per_layer * n_layers)} vs residual stream "
        f"{gib(resid * n_layers)} at {on['n_pos']} tokens.",
        f"- Peak resident memory a forward pass added over the loaded layer: split QKV off "
        f"{peak(off)} ({off['seconds']:.1f} s), on with the inputs cached {peak(on)} "
        f"({on['seconds']:.1f} s; seconds are wall time on a shared machine, indicative only).",
        "- Hence lensnb caches per-head inputs only when named: with split QKV on, "
        "`lens.run_with_cache(text)` (names=None) leaves `hook_q_input`/`hook_k_input`/"
        "`hook_v_input` out and warns; `names=\"blocks.3.attn.hook_k_input\"` caches one.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pos", type=int, default=4096, help="tokens (default 4096)")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "on", args.pos)))
        return
    off, on = run_child(False, args.pos), run_child(True, args.pos)
    text = report(off, on)
    print(text)
    if args.write:
        write_section(REPO / "BENCHMARKS.md", SECTION, text)


if __name__ == "__main__":
    main()
