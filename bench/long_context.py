"""Long context on the demo model: lensnb's forward and explorer vs a plain Hugging Face forward.

Model: the embedded demo (Llama 3.1-style, 4 layers, 8 query / 2 KV heads of 32, context
131,072). Text: held-out standard-library source (``longcontext.stdlib_tokens``). Each case runs
in its own subprocess; peak memory is that process's RSS high-water mark during the case
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``) minus its RSS just before.

Cases per length N:
- ``hf``: ``AutoModelForCausalLM(attn_implementation="sdpa")(tokens)``, the peer;
- ``lens``: ``lens(tokens)`` (memory-efficient attention since this issue);
- ``explorer``: ``AttentionExplorer(lens, tokens)`` (keeps rotated q/k of all 4 layers and
  computes the first view's overview); then ``first view``: answering the frontend's first
  request (that overview, cached) and ``head switch``: an uncached head's overview;
- ``lens (eager)`` / ``explorer (eager)`` at 8k only: the code before this issue (every layer
  materialises its patterns), for the before/after comparison.

The cores are shared with other jobs, so timings swing by 3x over minutes: every case also times
one HF forward in its own process right after its measurement ("x HF time (same process)"), the
fairer ratio; peak memory is always against the HF case's own process.

    .venv/bin/python bench/long_context.py            # 8k and 32k, ~8 min on 2 cores
    .venv/bin/python bench/long_context.py --n 8192   # one length
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "lensnb" / "assets" / "demo"


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


@contextlib.contextmanager
def measured(out: dict, key: str):
    """Time and peak RSS growth of the block: ``out[key] = s``, ``out[key + "_mb"] = MB``
    (a repeat keeps the shortest time and the largest peak)."""
    base = rss()
    reset_peak()
    t = time.perf_counter()
    yield
    dt, mb = time.perf_counter() - t, (peak() - base) / 1e6
    out[key] = min(dt, out.get(key, dt))
    out[key + "_mb"] = max(mb, out.get(key + "_mb", mb))


def repeats(n: int) -> int:
    """Shorter cases run 3 times (the cores are shared; the best time is kept), 32k once."""
    return 3 if n <= 8192 else 1


def run_case(case: str, n: int) -> dict:
    import torch

    torch.set_num_threads(2)
    import lensnb
    from lensnb.analysis.longcontext import stdlib_tokens

    lens = lensnb.load("demo")
    tokens = stdlib_tokens(lens, n)
    out: dict = {"case": case, "n": n}
    if case.endswith("(eager)"):  # the code before this issue: no attention switch
        from lensnb.backends.bridge import attention_mode

        noop = contextlib.nullcontext
        lensnb.Lens.attention_for = lambda self, *a, **k: noop()  # every forward pass asks it
        assert attention_mode  # the switch itself stays importable
    warm = tokens[:, :64]  # one short pass first: lazy imports and first-call set-up
    if case == "hf":
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(DEMO, attn_implementation="sdpa").eval()
        with torch.no_grad():
            model(warm)
        for _ in range(repeats(n)):
            with torch.no_grad(), measured(out, "time"):
                model(tokens)
    elif case.startswith("lens"):
        lens(warm)
        for _ in range(repeats(n)):
            with measured(out, "time"):
                lens(tokens)
    elif case.startswith("explorer"):
        lensnb.AttentionExplorer(lens, warm, progress=False)
        for _ in range(repeats(n)):
            with measured(out, "time"):
                ex = lensnb.AttentionExplorer(lens, tokens, progress=False)
            with measured(out, "first_view"):
                ex.answer({"name": "tile", "params": {"layer": ex.layer, "head": ex.head}})
            with measured(out, "head_switch"):
                ex.answer({"name": "tile", "params": {"layer": ex.layer, "head": 5}})
    else:
        raise ValueError(case)
    if case != "hf":  # the peer again, in this process right after: same load on shared cores
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(DEMO, attn_implementation="sdpa").eval()
        with torch.no_grad():
            model(warm)
            t = time.perf_counter()
            model(tokens)
            out["hf_here"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="*", default=[8192, 32768])
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case here
    ap.add_argument("--json", type=Path, help="write the raw results here")
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.n[0])))
        return
    results = []
    for n in args.n:
        cases = ["hf", "lens", "explorer"] + (["lens (eager)", "explorer (eager)"]
                                              if n <= 8192 else [])
        for case in cases:
            proc = subprocess.run([sys.executable, __file__, "--case", case, "--n", str(n)],
                                  capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
            if proc.returncode:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                results.append({"case": case, "n": n, "error": tail[:160]})
            else:
                results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results: list[dict]) -> str:
    """Markdown: time and peak memory against the HF forward at the same N."""
    hf = {r["n"]: r for r in results if r["case"] == "hf" and "error" not in r}
    lines = ["| N | case | time (s) | × HF time (own run) | × HF time (same process) "
             "| peak RSS (MB) | × HF peak | first view (s) | head switch (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['n']:,} | {r['case']} | failed: {r['error']} | | | | | | |")
            continue
        ref = hf.get(r["n"])
        ratio_t = f"{r['time'] / ref['time']:.2f}" if ref else ""
        ratio_m = f"{r['time_mb'] / max(ref['time_mb'], 1):.2f}" if ref else ""
        fv = f"{r['first_view']:.3f}" if "first_view" in r else ""
        hs = f"{r['head_switch']:.2f}" if "head_switch" in r else ""
        here = f"{r['time'] / r['hf_here']:.2f}" if "hf_here" in r else ""
        lines.append(f"| {r['n']:,} | {r['case']} | {r['time']:.1f} | {ratio_t} | {here} | "
                     f"{r['time_mb']:.0f} | {ratio_m} | {fv} | {hs} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
