"""Benchmarks at real shapes on SmolLM2-135M (30 layers x 9 heads on 3 KV heads), one run:

- AttentionExplorer build vs one plain Hugging Face forward pass (sdpa) and vs CircuitsVis's
  ``attention_patterns`` for one layer, at 1k / 2k tokens;
- ``lens.generate`` (64 new tokens, greedy) vs Hugging Face ``generate``: no hook, one cached
  hook, one patch;
- ``run_with_cache`` of every layer's ``hook_pattern`` vs TransformerBridge's own.

    python bench/real_models.py [--lengths 1024 2048] [--write BENCHMARKS.md]

Times are the best of ``--repeat`` runs (wall clock, seconds); ratios are against the named
peer measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

import lensnb


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def random_ids(lens: lensnb.Lens, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    half = torch.randint(1000, lens.facts.vocab_size, (n // 2,), generator=g)
    return torch.cat([half, half]).unsqueeze(0)  # repeated: the induction heads have work


def plain_hf(lens: lensnb.Lens, attn: str = "sdpa") -> torch.nn.Module:
    """A separate, plain Hugging Face model from the same directory: the bridge rewires (and
    switches to eager attention) the model it wraps, so ``lens.hf_model`` is no baseline."""
    from transformers import AutoModelForCausalLM

    from lensnb.core.sources import NAMED, converted_path

    return AutoModelForCausalLM.from_pretrained(converted_path(NAMED[lens.name]),
                                                dtype=torch.float32,
                                                attn_implementation=attn).eval()


def explorer_rows(lens: lensnb.Lens, lengths: list[int], repeat: int) -> list[str]:
    import circuitsvis

    hf = plain_hf(lens)
    rows = ["| tokens | HF forward (sdpa) s | explorer build s | explorer / forward | "
            "CircuitsVis, 1 layer s | CircuitsVis / explorer |", "|---|---|---|---|---|---|"]
    for n in lengths:
        ids = random_ids(lens, n)
        with torch.no_grad():
            forward = best(lambda ids=ids: hf(ids), repeat)
        build = best(lambda ids=ids: lensnb.AttentionExplorer(lens, ids), repeat)

        def cv(ids=ids):
            _, cache = lens.run_with_cache(ids, names="blocks.18.attn.hook_pattern")
            strs = lens.to_str_tokens(ids)
            return str(circuitsvis.attention.attention_patterns(
                tokens=strs, attention=cache["blocks.18.attn.hook_pattern"][0]))

        circ = best(cv, 1)
        rows.append(f"| {n} | {forward:.2f} | {build:.2f} | {build / forward:.2f} | "
                    f"{circ:.1f} | {circ / build:.1f} |")
        print(rows[-1], flush=True)
    return rows


def generation_rows(lens: lensnb.Lens, repeat: int, n_new: int = 64) -> list[str]:
    hf = plain_hf(lens)
    prompt = "The capital of France is Paris. The capital of Japan is"
    ids = lens.to_tokens(prompt)
    keep: list[torch.Tensor] = []
    value = torch.zeros(lens.facts.d_model)
    cases = {
        "no hook": dict(),
        "one cached hook": dict(cache="blocks.10.hook_resid_post"),
        "one patch": dict(hooks=[lensnb.patch(10, "hook_resid_post", position=2, value=value)]),
    }

    def hf_generate() -> None:
        with torch.no_grad():
            hf.generate(ids, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False)

    def hf_hook() -> None:  # the peer for a cached hook / a patch: a plain forward hook
        def fn(module, args, out):
            keep.append(out[0][:, -1].detach())
        handle = hf.model.layers[10].register_forward_hook(fn)
        try:
            hf_generate()
        finally:
            handle.remove()

    peer = {"no hook": hf_generate, "one cached hook": hf_hook, "one patch": hf_hook}
    rows = [f"| {n_new} new tokens | HF generate s | lens.generate s | ratio |",
            "|---|---|---|---|"]
    for name, kw in cases.items():
        theirs = best(peer[name], repeat)
        ours = best(lambda kw=kw: lens.generate(ids, n_new, stop_at_eos=False, **kw), repeat)
        rows.append(f"| {name} | {theirs:.2f} | {ours:.2f} | {ours / theirs:.2f} |")
        print(rows[-1], flush=True)
    return rows


def cache_rows(lens: lensnb.Lens, n: int, repeat: int) -> list[str]:
    ids = random_ids(lens, n)
    names = "blocks.*.attn.hook_pattern"
    ours = best(lambda: lens.run_with_cache(ids, names=names, progress=False), repeat)

    def bridge() -> None:
        with torch.no_grad():
            lens.bridge.run_with_cache(ids, names_filter=lambda s: s.endswith("hook_pattern"))

    theirs = best(bridge, repeat)
    return ["| every layer's hook_pattern | TransformerBridge.run_with_cache s | "
            "lens.run_with_cache s | ratio |", "|---|---|---|---|",
            f"| {n} tokens | {theirs:.2f} | {ours:.2f} | {ours / theirs:.2f} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lens = lensnb.load("smollm2-135m")
    rows = ["### AttentionExplorer build vs one forward pass and CircuitsVis (SmolLM2-135M)", "",
            *explorer_rows(lens, args.lengths, args.repeat), "",
            "### Generation (SmolLM2-135M, greedy)", "", *generation_rows(lens, args.repeat), "",
            "### run_with_cache of every layer's pattern (SmolLM2-135M)", "",
            *cache_rows(lens, args.lengths[0], args.repeat)]
    text = "\n".join(rows)
    print(text)
    if args.write:
        marker = "## Real models (SmolLM2-135M)"
        old = args.write.read_text() if args.write.is_file() else ""
        head, _, rest = old.partition(marker)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else ""  # the sections after it
        args.write.write_text(f"{head.rstrip()}\n\n{marker}\n\n`python bench/real_models.py` "
                              "(2 CPU cores shared with other jobs: ratios are what to read; "
                              f"best of {args.repeat} runs, CircuitsVis 1 run).\n\n" + text
                              + "\n" + tail)


if __name__ == "__main__":
    main()
