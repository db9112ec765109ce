"""Activation patching on SmolLM2-135M: lensnb (batched) vs TransformerLens's patching loop vs
nnsight batched invokes; head and KV-group sweeps; attribution vs exact; peak memory.

The prompt pair is the indirect-object pair of issue 22 and the tutorial (14 tokens, the two
names swapped in the second clause); the metric is the logit difference `` Mary`` - `` John`` at
the last position, normalised (corrupted 0, clean 1). Everything runs in one process, in
interleaved rounds (every variant once per round, order rotated); medians are reported as
ratios. Each variant includes its own clean run. Variants of the residual sweep (420 cells):

* ``tl``: TransformerLens's ``patching.get_act_patch_resid_pre`` on ``lens.bridge`` (one
  forward pass per cell; its tqdm bar, which cannot be turned off, goes to /dev/null).
* ``lensnb``: ``lensnb.activation_patching(lens, clean, corrupted, site="resid_pre")``.
* ``nnsight``: ``nnsight.LanguageModel`` over the same weights (a Hugging Face model, sdpa
  attention), one trace with one invoke per cell (``layers[l].input[:, p] = clean``), saving
  the last position's logits; ``nnsight_chunked``: traces of ``--nnsight-chunk`` invokes.

Then the per-head sweep (``get_act_patch_attn_head_out_all_pos`` vs lensnb), the KV-group sweep
(lensnb vs a loop of ``lens.run_with_hooks`` with ``lensnb.patch(kv_group=...)``: no peer
patches a GQA key/value head), attribution vs exact for every site (time in single forward
passes of the clean prompt, and the Pearson correlation of the scores), and the peak resident
memory each variant adds (sampled every 5 ms; CUDA: ``max_memory_allocated``).

    .venv/bin/python bench/patching.py [--model smollm2-135m] [--rounds 2] [--threads 2]
        [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from benchmarks_md import write_section  # bench/ is on the path of a bench script

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Mary and John went to the store, Mary gave a drink to"
ANSWER, WRONG = " Mary", " John"
SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "head", "head_by_pos",
         "kv_group")
SECTION = "## Activation patching vs TransformerLens and nnsight (`bench/patching.py`)"


# ---------------------------------------------------------------------------- measuring
class PeakMemory:
    """Peak memory a block adds: resident set size sampled every 5 ms (CPU), or CUDA's
    ``max_memory_allocated``."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        import psutil

        self.proc = psutil.Process()
        self.start = self.top = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.top = max(self.top, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.start
            return
        self.running = False
        self.thread.join()
        self.peak = max(0, self.top - self.start)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, int, Any]:
    """``(seconds, peak bytes added, result)`` of one call."""
    import gc

    gc.collect()
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, mem.peak, out


def rounds(runs: dict[str, Callable[[], Any]], n: int, device: torch.device, *,
           warm: tuple[str, ...] = ()) -> tuple[dict[str, float], dict[str, int], dict[str, Any]]:
    """Median seconds, max peak memory and the last result of each run, over ``n``
    interleaved rounds (order rotated); the runs named in ``warm`` run once untimed first
    (first-call set-up: autograd, allocator)."""
    names = list(runs)
    for k in warm:
        runs[k]()
    times: dict[str, list[float]] = {k: [] for k in names}
    peaks: dict[str, int] = dict.fromkeys(names, 0)
    results: dict[str, Any] = {}
    for r in range(n):
        for k in names[r % len(names):] + names[:r % len(names)]:
            seconds, peak, results[k] = timed(runs[k], device)
            if k == "forward":  # five passes per round
                seconds /= 5
            times[k].append(seconds)
            peaks[k] = max(peaks[k], peak)
            print(f"  round {r + 1}: {k} {seconds:.2f} s, +{peak / 2**20:.0f} MiB", flush=True)
    return {k: statistics.median(v) for k, v in times.items()}, peaks, results


# ---------------------------------------------------------------------------- the peers
def setup(model: str, clean: str, corrupted: str, answer: str, wrong: str) -> dict[str, Any]:
    from nnsight import LanguageModel
    from transformers import AutoModelForCausalLM

    import lensnb

    lens = lensnb.load(model, dtype=torch.float32)
    path = lens.hf_model.name_or_path or model
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=lens.dtype,
                                              attn_implementation="sdpa").to(lens.device).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LanguageModel's deprecation notice (nnsight 0.8)
        nn = LanguageModel(hf, tokenizer=lens.tokenizer)
    ids = [lens.tokenizer.encode(t, add_special_tokens=False)[0] for t in (answer, wrong)]
    return dict(lens=lens, hf=hf, nn=nn, answer=ids[0], wrong=ids[1],
                clean=lens.to_tokens(clean), corrupted=lens.to_tokens(corrupted))


def tl_metric(s: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    lens, a, w = s["lens"], s["answer"], s["wrong"]

    def diff(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1, a] - logits[:, -1, w]

    with torch.no_grad():
        c = float(diff(lens.bridge(s["clean"]))[0])
        r = float(diff(lens.bridge(s["corrupted"]))[0])
    return lambda logits: (diff(logits)[0] - r) / (c - r)


def run_tl(s: dict[str, Any], fn_name: str) -> Callable[[], torch.Tensor]:
    from transformer_lens import patching

    fn = getattr(patching, fn_name)

    def go() -> torch.Tensor:
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            _, cache = s["lens"].bridge.run_with_cache(s["clean"])
            return fn(s["lens"].bridge, s["corrupted"], cache, tl_metric(s))

    return go


def run_lensnb(s: dict[str, Any], site: str, method: str = "exact",
               **kw: Any) -> Callable[[], torch.Tensor]:
    import lensnb

    return lambda: lensnb.activation_patching(
        s["lens"], s["clean"], s["corrupted"], answer=s["answer"], wrong=s["wrong"], site=site,
        method=method, progress=False, **kw).scores


def run_nnsight(s: dict[str, Any], chunk: int | None) -> Callable[[], torch.Tensor]:
    """The residual sweep as nnsight batched invokes: each invoke writes one clean
    ``layers[l].input`` position and saves the last position's logits."""
    nn, a, w = s["nn"], s["answer"], s["wrong"]
    n_layers, n_pos = s["lens"].n_layers, s["clean"].shape[1]
    cells = [(la, p) for la in range(n_layers) for p in range(n_pos)]

    def sweep(part: list[tuple[int, int]], clean: list[Any]) -> list[Any]:
        saves: list[Any] = []
        with nn.trace() as tracer:
            for la, p in part:
                with tracer.invoke(s["corrupted"]):
                    hs = nn.model.layers[la].input
                    hs[:, p] = clean[la][:, p]
                    saves.append(nn.lm_head.output[:, -1].save())
        return saves

    def go() -> torch.Tensor:
        clean: list[Any] = []
        with torch.no_grad():
            with nn.trace(s["clean"]):
                for la in range(n_layers):
                    clean.append(nn.model.layers[la].input.save())
                c = nn.lm_head.output[:, -1].save()
            with nn.trace(s["corrupted"]):
                r = nn.lm_head.output[:, -1].save()
            size = chunk or len(cells)
            saves = [x for i in range(0, len(cells), size)
                     for x in sweep(cells[i:i + size], clean)]
        cv, rv = float(c[0, a] - c[0, w]), float(r[0, a] - r[0, w])
        return torch.tensor([(float(x[0, a] - x[0, w]) - rv) / (cv - rv)
                             for x in saves]).reshape(n_layers, n_pos)

    return go


def run_kv_loop(s: dict[str, Any]) -> Callable[[], torch.Tensor]:
    """The KV-group sweep one cell per forward pass, with ``lensnb.patch(kv_group=...)``."""
    import lensnb

    lens, a, w = s["lens"], s["answer"], s["wrong"]

    def go() -> torch.Tensor:
        names = [f"blocks.{la}.attn.hook_{x}" for la in range(lens.n_layers) for x in "kv"]
        _, cache = lens.run_with_cache(s["clean"], names=names)

        def diff(tokens: torch.Tensor, hooks: list = ()) -> float:
            logits = lens.run_with_hooks(tokens, fwd_hooks=list(hooks))
            return float(logits[0, -1, a] - logits[0, -1, w])

        c, r = diff(s["clean"]), diff(s["corrupted"])
        return torch.tensor([[(diff(s["corrupted"], [
            lensnb.patch(la, f"attn.hook_{x}", kv_group=g, every_position=True,
                         value=cache[f"blocks.{la}.attn.hook_{x}"][:, :, g]) for x in "kv"])
            - r) / (c - r) for g in range(lens.n_key_value_heads)] for la in range(lens.n_layers)])

    return go


def run_forward(s: dict[str, Any]) -> Callable[[], Any]:
    """Five plain forward passes of the clean prompt (``lens(tokens)``); ``rounds`` reports one."""

    def go() -> None:
        with torch.no_grad():
            for _ in range(5):
                s["lens"](s["clean"])

    return go


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten().double(), b.flatten().double()]))[0, 1])


# ---------------------------------------------------------------------------- report
def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def report(args: argparse.Namespace, s: dict[str, Any], load: tuple[float, float],
           main: tuple, heads: tuple, kv: tuple, attribution: dict, forward: float) -> str:
    import importlib.metadata as md

    lens = s["lens"]
    t, peaks, res = main
    label = {"tl": "TransformerLens `get_act_patch_resid_pre` (one pass per cell)",
             "lensnb": "`lensnb.activation_patching(site=\"resid_pre\")` (batched)",
             "nnsight": f"nnsight, one trace of {lens.n_layers * s['clean'].shape[1]} invokes",
             "nnsight_chunked": f"nnsight, traces of {args.nnsight_chunk} invokes"}
    lines = [
        f"{args.model} ({sum(p.numel() for p in lens.hf_model.parameters()) / 1e6:.0f}M "
        f"parameters, {lens.dtype}, {lens.device}), {args.clean!r} / {args.corrupted!r} "
        f"({s['clean'].shape[1]} tokens; logit difference {args.answer!r} - {args.wrong!r}: clean "
        f"{res['lensnb_value'][0]:+.2f}, corrupted {res['lensnb_value'][1]:+.2f}); "
        f"{args.rounds} interleaved rounds, medians; {torch.get_num_threads()} torch threads, "
        f"{platform.machine()}; load average {load[0]:.1f} before, {load[1]:.1f} after; "
        f"torch {md.version('torch')}, transformers {md.version('transformers')}, "
        f"transformer-lens {md.version('transformer-lens')}, nnsight {md.version('nnsight')}.",
        "",
        f"Residual sweep (`resid_pre`, {lens.n_layers} layers × {s['clean'].shape[1]} positions "
        f"= {lens.n_layers * s['clean'].shape[1]} cells):",
        "",
        "| variant | median s | × lensnb | peak memory added | max \\|score − lensnb\\| |",
        "|---|---|---|---|---|",
    ]
    base = t["lensnb"]
    for k in ("lensnb", "tl", "nnsight", "nnsight_chunked"):
        diff = float((res[k].float() - res["lensnb"]).abs().max())
        lines.append(f"| {label[k]} | {t[k]:.2f} | {t[k] / base:.2f}× | {mib(peaks[k])} | "
                     f"{diff:.1e} |")
    best_nn = min(t["nnsight"], t["nnsight_chunked"])
    lines += [
        "",
        f"- Target exact ≥ 5× faster than TransformerLens's loop: **{t['tl'] / base:.1f}×**.",
        f"- Target no slower than nnsight batched invokes: lensnb {base:.2f} s vs nnsight "
        f"{best_nn:.2f} s (best of the two) = **{best_nn / base:.2f}×**.",
        "",
    ]
    ht, hp, hr = heads
    kt, kp, kr = kv
    lines += [
        "Head and KV-group sweeps:",
        "",
        "| sweep | lensnb s | peer | peer s | × | peak memory lensnb / peer | max \\|diff\\| |",
        "|---|---|---|---|---|---|---|",
        f"| `head` ({lens.n_layers} × {lens.n_heads} heads) | {ht['lensnb']:.2f} | "
        f"TL `get_act_patch_attn_head_out_all_pos` | {ht['tl']:.2f} | "
        f"{ht['tl'] / ht['lensnb']:.1f}× | {mib(hp['lensnb'])} / {mib(hp['tl'])} | "
        f"{float((hr['lensnb'] - hr['tl'].float()).abs().max()):.1e} |",
        f"| `kv_group` ({lens.n_layers} × {lens.n_key_value_heads} KV groups) | "
        f"{kt['lensnb']:.2f} | a loop of `lens.run_with_hooks` + `lensnb.patch(kv_group=)` | "
        f"{kt['loop']:.2f} | {kt['loop'] / kt['lensnb']:.1f}× | "
        f"{mib(kp['lensnb'])} / {mib(kp['loop'])} | "
        f"{float((kr['lensnb'] - kr['loop'].float()).abs().max()):.1e} |",
        "",
        f"Attribution vs exact, every site, {args.attribution_rounds} rounds (one plain forward "
        f"pass of the clean prompt, `lens(tokens)`, timed in the same rounds: "
        f"{forward * 1000:.0f} ms):",
        "",
        "| site | cells | exact s | attribution s | attribution in forward passes | "
        "Pearson r (attribution, exact) |",
        "|---|---|---|---|---|---|",
    ]
    for site, row in attribution.items():
        lines.append(f"| `{site}` | {row['cells']} | {row['exact']:.2f} | "
                     f"{row['attribution']:.2f} | {row['attribution'] / forward:.1f} | "
                     f"{row['r']:+.3f} |")
    within = [k for k, r in attribution.items() if r["attribution"] <= 3 * forward]
    above = {k: r["attribution"] / forward for k, r in attribution.items()
             if r["attribution"] > 3 * forward}
    lines += [
        "",
        "- Target attribution ≤ 3 forward passes' time (one pass holds the clean and corrupted "
        "prompts, plus, for `kv_group`, one row whose attention is recomputed with every "
        "group's clean keys and values, and one backward "
        f"pass): within it {', '.join(f'`{k}`' for k in within) or 'none'}"
        + (f"; above it {', '.join(f'`{k}` ({v:.1f})' for k, v in above.items())}"
           if above else "") + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--attribution-rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nnsight-chunk", type=int, default=128)
    ap.add_argument("--clean", default=CLEAN)
    ap.add_argument("--corrupted", default=CORRUPTED)
    ap.add_argument("--answer", default=ANSWER)
    ap.add_argument("--wrong", default=WRONG)
    ap.add_argument("--write", type=Path, default=None, help="update this BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    s = setup(args.model, args.clean, args.corrupted, args.answer, args.wrong)
    device = s["lens"].device
    import lensnb

    value = lensnb.activation_patching(s["lens"], s["clean"], s["corrupted"], answer=s["answer"],
                                       wrong=s["wrong"], site="resid_pre", layers=[0],
                                       positions=[0], progress=False)
    print("residual sweep", flush=True)
    main_runs = rounds({"tl": run_tl(s, "get_act_patch_resid_pre"),
                        "lensnb": run_lensnb(s, "resid_pre"),
                        "nnsight": run_nnsight(s, None),
                        "nnsight_chunked": run_nnsight(s, args.nnsight_chunk)},
                       args.rounds, device, warm=("lensnb", "nnsight_chunked"))
    main_runs[2]["lensnb_value"] = (value.clean_value, value.corrupted_value)
    print("head sweep", flush=True)
    heads = rounds({"tl": run_tl(s, "get_act_patch_attn_head_out_all_pos"),
                    "lensnb": run_lensnb(s, "head")}, args.rounds, device, warm=("lensnb",))
    print("KV-group sweep", flush=True)
    kv = rounds({"loop": run_kv_loop(s), "lensnb": run_lensnb(s, "kv_group")}, args.rounds,
                device, warm=("lensnb",))
    print("attribution vs exact", flush=True)
    forwards: list[float] = []
    attribution: dict[str, dict] = {}
    for site in SITES:
        variants = {"exact": run_lensnb(s, site), "attribution": run_lensnb(s, site,
                                                                           "attribution"),
                    "forward": run_forward(s)}
        if site == "kv_group":
            variants["plain"] = run_lensnb(s, site, "attribution", qk_fix=False)
        t, _, r = rounds(variants, args.attribution_rounds, device,
                         warm=tuple(k for k in variants if k != "exact"))
        forwards.append(t["forward"])
        attribution[site] = dict(cells=r["exact"].numel(), exact=t["exact"],
                                 attribution=t["attribution"], r=pearson(r["attribution"],
                                                                         r["exact"]))
        if site == "kv_group":
            attribution["kv_group, plain AtP (qk_fix=False)"] = dict(
                cells=r["exact"].numel(), exact=t["exact"], attribution=t["plain"],
                r=pearson(r["plain"], r["exact"]))
        print(f"  {site}: r = {attribution[site]['r']:+.3f}", flush=True)
    forward = statistics.median(forwards)
    body = report(args, s, (load_before, os.getloadavg()[0]), main_runs, heads, kv,
                  attribution, forward)
    print(body)
    if args.write:
        write_section(args.write, SECTION, body)


if __name__ == "__main__":
    main()
