"""Generation with hooks: lensnb vs Hugging Face ``generate`` and nnsight ``generate``.

Same model, same prompt, same number of new tokens (EOS ignored), greedy, in one process.
Rounds are interleaved (every variant once per round, order rotated) and medians reported as
ratios to Hugging Face ``generate``. Variants:

* ``hf``: ``AutoModelForCausalLM.generate`` (eager attention, like lensnb).
* ``lensnb``: ``lens.generate`` with no hooks.
* ``lensnb_cache1``: caching ``blocks.1.hook_resid_post`` at every step.
* ``lensnb_patch``: patching ``blocks.1.hook_resid_post`` at one prompt position.
* ``lensnb_pattern``: a hook on ``blocks.1.attn.hook_pattern`` (exists only in the
  TransformerBridge, so the bridge path, with its KV cache): the hook checks each step's
  pattern has prompt + step keys, i.e. that the cache is used.
* ``nnsight_save1``: nnsight ``generate`` saving block 1's output at every step.
* ``nnsight_save1_first``: nnsight saving it on the first (prompt) step only.
* ``bridge``: TransformerBridge's own ``generate`` (context).

Then, on a Gemma 3 model (``--gemma-model gemma3-270m``, lensnb's converted copy in
``~/.cache/lensnb``; ``""`` to skip, skipped with a note when it is not there): Hugging Face
``generate`` vs ``lens.generate`` with no hooks, one cached hook and one patch; the fast path
(derived from the TransformerLens adapter's component mapping) serves Gemma since issue 16.

Then, on the vision demo (``--vision-model demo-vision``; ``""`` to skip): a caption up to EOS,
``lens.generate`` with one picture (KV cache, cross-attention keys/values computed once) vs
Hugging Face ``MllamaForConditionalGeneration.generate``, without and with a cross-attention
pattern hook.

    .venv/bin/python bench/generation.py [--model demo] [--tokens 64] [--rounds 15]
        [--gemma-model gemma3-270m] [--gemma-tokens 32] [--gemma-rounds 3]
        [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from benchmarks_md import write_section  # bench/ is on the path of a bench script

SECTION = "## Generation with hooks vs Hugging Face and nnsight (`bench/generation.py`)"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPT = "import os\n\n\ndef read_lines(path):\n    with open(path) as f:\n        return"
LAYER = 1


def variants(model: str, n: int) -> tuple[dict[str, Callable[[], torch.Tensor]], dict]:
    from nnsight import LanguageModel
    from transformers import AutoModelForCausalLM, GenerationConfig

    import lensnb

    lens = lensnb.load(model)
    path = lens.hf_model.name_or_path or model
    hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager",
                                              dtype=lens.dtype).to(lens.device).eval()
    ids = lens.to_tokens(PROMPT)
    pad = lens.tokenizer.pad_token_id or 0
    config = GenerationConfig(max_new_tokens=n, do_sample=False, eos_token_id=None,
                              pad_token_id=pad)
    nn_model = LanguageModel(hf, tokenizer=lens.tokenizer)
    name = f"blocks.{LAYER}.hook_resid_post"
    value = torch.zeros(lens.facts.d_model, device=lens.device, dtype=lens.dtype)

    def run_hf() -> torch.Tensor:
        with torch.no_grad():
            return hf.generate(ids, generation_config=config)

    def run_lens(**kw) -> Callable[[], torch.Tensor]:
        return lambda: lens.generate(ids, n, stop_at_eos=False, **kw).tokens

    def run_nnsight(every_step: bool) -> Callable[[], torch.Tensor]:
        def go() -> torch.Tensor:
            with nn_model.generate(ids, generation_config=config) as tracer:
                if every_step:
                    saved = []
                    for _step in tracer.iter[:n]:  # n forwards: the prompt, then n - 1
                        saved.append(nn_model.model.layers[LAYER].output.save())
                else:
                    saved = nn_model.model.layers[LAYER].output.save()
                out = tracer.result.save()
            return out

        return go

    def run_bridge() -> torch.Tensor:
        return lens.bridge.generate(ids, max_new_tokens=n, do_sample=False, stop_at_eos=False,
                                    verbose=False, return_type="tokens")

    keys: list[tuple[int, int]] = []

    def read_pattern(t: torch.Tensor, ctx) -> None:
        keys.append((ctx.step, t.shape[-1]))  # [batch, head, query, key]

    runs = {
        "hf": run_hf,
        "lensnb": run_lens(),
        "lensnb_cache1": run_lens(cache=name),
        "lensnb_patch": run_lens(hooks=[lensnb.patch(LAYER, "hook_resid_post", position=2,
                                                     value=value)]),
        "lensnb_pattern": run_lens(hooks=[(f"blocks.{LAYER}.attn.hook_pattern", read_pattern)]),
        "nnsight_save1": run_nnsight(True),
        "nnsight_save1_first": run_nnsight(False),
        "bridge": run_bridge,
    }
    facts = {"model": model, "params": sum(p.numel() for p in hf.parameters()),
             "prompt_tokens": ids.shape[1], "new_tokens": n, "dtype": str(lens.dtype),
             "device": str(lens.device)}
    # every variant generates the same tokens (the patch writes zeros, so not that one)
    want = run_hf()
    assert want.shape == (1, ids.shape[1] + n), f"hf stopped early: {tuple(want.shape)}"
    for key in ("lensnb", "lensnb_cache1", "lensnb_pattern"):
        got = runs[key]()
        assert torch.equal(got.cpu(), want.cpu()), f"{key} generated other tokens than hf"
    # TransformerBridge's own generate is context only (wrong on transformers 5.24: say so)
    facts["bridge_ok"] = torch.equal(runs["bridge"]().cpu(), want.cpu())
    p = ids.shape[1]
    assert keys == [(s, p + s) for s in range(n)], f"the pattern hook saw keys {keys[:4]}..."
    keys.clear()
    return runs, facts


def gemma_variants(model: str, n: int) -> tuple[dict[str, Callable[[], torch.Tensor]], dict]:
    """HF ``generate`` vs ``lens.generate`` on a Gemma 3 model: no hooks, one cached hook, one
    patch (tokens checked equal to HF's for the first two; the path each takes reported)."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    import lensnb

    lens = lensnb.load(model)
    hf = AutoModelForCausalLM.from_pretrained(lens.hf_model.name_or_path,
                                              attn_implementation="eager",
                                              dtype=lens.dtype).to(lens.device).eval()
    ids = lens.to_tokens(PROMPT)
    config = GenerationConfig(max_new_tokens=n, do_sample=False, eos_token_id=None,
                              pad_token_id=lens.tokenizer.pad_token_id or 0)
    name = f"blocks.{LAYER}.hook_resid_post"
    value = torch.zeros(lens.facts.d_model, device=lens.device, dtype=lens.dtype)
    paths: dict[str, str] = {}

    def run_hf() -> torch.Tensor:
        with torch.no_grad():
            return hf.generate(ids, generation_config=config)

    def run_lens(key: str, **kw) -> Callable[[], torch.Tensor]:
        def go() -> torch.Tensor:
            out = lens.generate(ids, n, stop_at_eos=False, **kw)
            paths[key] = out.path
            return out.tokens
        return go

    runs = {"hf": run_hf, "lensnb": run_lens("lensnb"),
            "lensnb_cache1": run_lens("lensnb_cache1", cache=name),
            "lensnb_patch": run_lens("lensnb_patch", hooks=[
                lensnb.patch(LAYER, "hook_resid_post", position=2, value=value)]),
            "lensnb_cache1_bridge": run_lens("lensnb_cache1_bridge", cache=name, path="bridge")}
    want = run_hf()
    for key in ("lensnb", "lensnb_cache1", "lensnb_cache1_bridge"):
        assert torch.equal(runs[key]().cpu(), want.cpu()), f"gemma {key} differs from hf"
    runs["lensnb_patch"]()
    facts = {"model": model, "params": sum(p.numel() for p in hf.parameters()),
             "prompt_tokens": ids.shape[1], "new_tokens": n, "paths": paths}
    return runs, facts


def gemma_report(medians: dict[str, float], facts: dict, rounds: int) -> str:
    label = {"hf": "Hugging Face `generate` (peer)", "lensnb": "`lens.generate`, no hooks",
             "lensnb_cache1": "`lens.generate`, caching one hook every step",
             "lensnb_patch": "`lens.generate`, one `lensnb.patch`",
             "lensnb_cache1_bridge": "… caching one hook, `path=\"bridge\"` (Gemma's only "
                                     "path before issue 16)"}
    lines = [
        "",
        f"Gemma 3: {facts['model']} ({facts['params'] / 1e6:.1f}M parameters), "
        f"{facts['prompt_tokens']}-token prompt, {facts['new_tokens']} new tokens, greedy, "
        f"{rounds} interleaved rounds, medians (tokens equal HF's checked, no hooks and cached).",
    ]
    label = {k: f"{v} ({facts['paths'][k]} path)" if k in facts["paths"] else v
             for k, v in label.items()}
    return "\n".join(lines + table(medians, label))


def table(medians: dict[str, float], label: dict[str, str]) -> list[str]:
    """A markdown table of ``medians`` with each one's ratio to ``medians["hf"]``."""
    rows = ["", "| variant | median s | × HF generate |", "|---|---|---|"]
    return rows + [f"| {label[k]} | {v:.4f} | {v / medians['hf']:.2f}× |"
                   for k, v in medians.items()]


def vision_variants(model: str, n: int) -> tuple[dict[str, Callable[[], torch.Tensor]], dict]:
    """HF Mllama ``generate`` vs ``lens.generate`` with one picture (a red disc)."""
    from PIL import Image, ImageDraw
    from transformers import GenerationConfig, MllamaForConditionalGeneration

    import lensnb

    lens = lensnb.load(model)
    hf = MllamaForConditionalGeneration.from_pretrained(
        lens.hf_model.name_or_path, attn_implementation="eager", dtype=lens.dtype
    ).to(lens.device).eval()
    img = Image.new("RGB", (56, 56), (235, 235, 235))
    ImageDraw.Draw(img).ellipse((4, 4, 17, 17), fill=(220, 30, 30))
    prompt = "<|image|>"
    ids, kwargs = lens.inputs(prompt, [img])
    # a caption ends at EOS (the demo's generation config): both sides stop there
    config = GenerationConfig(max_new_tokens=n, do_sample=False,
                              eos_token_id=lens.tokenizer.eos_token_id,
                              pad_token_id=lens.tokenizer.pad_token_id or 0)
    cross = lens.facts.cross_attention_layers[-1]

    def run_hf() -> torch.Tensor:
        with torch.no_grad():
            return hf.generate(input_ids=ids, **kwargs, generation_config=config)

    def run_lens(**kw) -> Callable[[], torch.Tensor]:
        return lambda: lens.generate(prompt, n, images=[img], **kw).tokens

    runs = {"hf": run_hf, "lensnb": run_lens(),
            "lensnb_cross": run_lens(cache=f"blocks.{cross}.attn.hook_pattern")}
    want = run_hf()
    for key in ("lensnb", "lensnb_cross"):
        assert torch.equal(runs[key]().cpu(), want.cpu()), f"vision {key} differs from hf"
    facts = {"model": model, "params": sum(p.numel() for p in hf.parameters()),
             "prompt_tokens": ids.shape[1], "new_tokens": want.shape[1] - ids.shape[1],
             "cross": cross, "caption": lens.tokenizer.decode(want[0, ids.shape[1]:],
                                                              skip_special_tokens=True)}
    return runs, facts


def measure(runs: dict[str, Callable], rounds: int) -> dict[str, float]:
    names = list(runs)
    times: dict[str, list[float]] = {k: [] for k in names}
    for fn in runs.values():  # warm up
        fn()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            runs[k]()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def report(medians: dict[str, float], facts: dict, rounds: int, threads: int) -> str:
    base = medians["hf"]
    label = {
        "hf": "Hugging Face `generate` (peer)",
        "lensnb": "`lens.generate`, no hooks",
        "lensnb_cache1": "`lens.generate`, caching one hook every step",
        "lensnb_patch": "`lens.generate`, one `lensnb.patch`",
        "lensnb_pattern": "`lens.generate`, a `hook_pattern` hook (bridge path, KV cache)",
        "nnsight_save1": "nnsight `generate`, saving one activation every step",
        "nnsight_save1_first": "nnsight `generate`, saving one activation on the first step",
        "bridge": "TransformerBridge `generate` (context)" if facts["bridge_ok"] else
                  "TransformerBridge `generate` (context; **its tokens differ from HF's**)",
    }
    where = (f"{facts['device']}, {threads} torch threads" if facts["device"] == "cpu"
             else facts["device"])
    lines = [
        f"{facts['model']} ({facts['params'] / 1e6:.1f}M parameters, {facts['dtype']}), "
        f"{facts['prompt_tokens']}-token prompt, {facts['new_tokens']} new tokens, greedy, "
        f"{rounds} interleaved rounds, medians; {where}, {platform.machine()}; "
        f"{versions()}.",
        *table(medians, label),
    ]
    lines += [
        "",
        f"- Target no hooks ≤ 1.1× HF: **{medians['lensnb'] / base:.2f}×**.",
        f"- Target one cached hook no slower than nnsight saving one activation: "
        f"lensnb {medians['lensnb_cache1'] / base:.2f}× vs nnsight "
        f"{medians['nnsight_save1'] / base:.2f}× (every step) / "
        f"{medians['nnsight_save1_first'] / base:.2f}× (first step only).",
        f"- Bridge path (a `hook_pattern` hook, KV cache; tokens equal HF's, pattern keys = "
        f"prompt + step checked): **{medians['lensnb_pattern'] / base:.2f}×** HF.",
    ]
    return "\n".join(lines)


def vision_report(medians: dict[str, float], facts: dict) -> str:
    label = {"hf": "Hugging Face Mllama `generate` (peer)",
             "lensnb": "`lens.generate(images=[img])`, no hooks",
             "lensnb_cross": f"… caching cross-attention layer {facts['cross']}'s pattern every "
                             "step"}
    lines = [
        "",
        f"Vision: {facts['model']} ({facts['params'] / 1e6:.1f}M parameters), one 56×56 "
        f"picture, {facts['prompt_tokens']}-token prompt, {facts['new_tokens']} new tokens up to "
        f"EOS (\"{facts['caption']}\", the same tokens as HF checked), same rounds.",
    ]
    return "\n".join(lines + table(medians, label))


def versions() -> str:
    import importlib.metadata as md

    return ", ".join(f"{p} {md.version(p)}" for p in ("torch", "transformers",
                                                      "transformer-lens"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gemma-model", default="gemma3-270m")
    ap.add_argument("--gemma-tokens", type=int, default=32)
    ap.add_argument("--gemma-rounds", type=int, default=3)
    ap.add_argument("--vision-model", default="demo-vision")
    ap.add_argument("--vision-tokens", type=int, default=16)
    ap.add_argument("--write", type=Path, default=None, help="update this BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    runs, facts = variants(args.model, args.tokens)
    medians = measure(runs, args.rounds)
    body = report(medians, facts, args.rounds, args.threads)
    if args.gemma_model:
        import lensnb

        try:
            gruns, gfacts = gemma_variants(args.gemma_model, args.gemma_tokens)
        except lensnb.ModelNotFoundError as err:
            body += f"\n\nGemma 3: skipped ({err})."
        else:
            body += "\n" + gemma_report(measure(gruns, args.gemma_rounds), gfacts,
                                         args.gemma_rounds)
    if args.vision_model:
        vruns, vfacts = vision_variants(args.vision_model, args.vision_tokens)
        body += "\n" + vision_report(measure(vruns, args.rounds), vfacts)
    body += (f"\n\nLoad average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
             f"the run, on {os.cpu_count()} cores (other jobs may share them).")
    print(body)
    if args.write:
        write_section(args.write, SECTION, body)


if __name__ == "__main__":
    main()
