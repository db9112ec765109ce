"""AttentionExplorer vs CircuitsVis ``attention_patterns``, measured in the same run.

Model: a random-weight Llama with 8B-shaped attention (32 query heads / 8 KV heads, d_head 128;
also 8 / 2 heads), d_model 512, 1 layer shown; random token ids. Per case (N tokens, heads):
time to build the view from the model (forward pass included for both), bytes sent to the browser
for the first view, peak Python memory (tracemalloc) and peak RSS growth, and, in Chromium through
JupyterLab (``--browser``), first view and head-switch times of the explorer.

CircuitsVis runs in a subprocess capped at ``--cap`` seconds ("did not finish in X s" above).

    .venv/bin/python bench/attention_explorer.py            # ~5 min on 2 cores
    .venv/bin/python bench/attention_explorer.py --quick    # N = 256 only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
CASES = [(256, 8), (1024, 8), (1024, 32), (4096, 32)]


def make_model(n_heads: int, root: Path) -> Path:
    """A random Llama with ``n_heads`` query heads (KV heads = n_heads / 4), d_head 128."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = root / f"llama-{n_heads}h"
    if (path / "config.json").exists():
        return path
    tok = AutoTokenizer.from_pretrained(REPO / "lensnb" / "assets" / "demo")
    cfg = AutoConfig.for_model(
        "llama", vocab_size=len(tok), hidden_size=512, intermediate_size=1024,
        num_hidden_layers=1, num_attention_heads=n_heads, num_key_value_heads=n_heads // 4,
        head_dim=128, max_position_embeddings=8192, rope_theta=500000.0,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def tokens_of(n: int):
    import torch

    g = torch.Generator().manual_seed(n)
    ids = torch.randint(10, 4000, (1, n), generator=g)
    ids[0, 0] = 1  # BOS-like first token
    return ids


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_explorer(model: Path, n: int) -> dict:
    """Build the explorer and answer its first-view requests (in this fresh process)."""
    import torch

    torch.set_num_threads(2)
    import lensnb

    lens = lensnb.load(str(model))
    tokens = tokens_of(n)
    lens(tokens[:, :8])  # warm up
    rss0 = peak_rss_mb()
    tracemalloc.start()
    t = time.perf_counter()
    ex = lensnb.AttentionExplorer(lens, tokens, layers=[0])
    build = time.perf_counter() - t
    state = json.dumps({k: v for k, v in ex.get_state().items() if not k.startswith("_")})
    sent = len(ex._esm) + len(ex._css) + len(state)
    t = time.perf_counter()
    first = ex.answer({"name": "tile", "params": {"layer": 0, "head": 0}})
    first_view = time.perf_counter() - t
    sent += len(json.dumps(first[0])) + sum(len(b) for b in first[1])
    t = time.perf_counter()
    for h in range(ex.n_heads):
        reply, bufs = ex.answer({"name": "thumb", "params": {"layer": 0, "head": h}})
        sent += len(json.dumps(reply)) + sum(len(b) for b in bufs)
    thumbs = time.perf_counter() - t
    t = time.perf_counter()
    # cached after the thumbnails
    ex.answer({"name": "tile", "params": {"layer": 0, "head": ex.n_heads - 1}})
    switch_py = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dict(build_s=build, first_view_py_s=first_view, thumbs_py_s=thumbs,
                switch_py_s=switch_py, bytes=sent, tracemalloc_mb=peak / 2**20,
                rss_growth_mb=peak_rss_mb() - rss0, kept_mb=ex.kept.nbytes / 2**20)


def run_circuitsvis(model: Path, n: int) -> dict:
    """CircuitsVis attention_patterns on the same layer (in this fresh process)."""
    import torch

    torch.set_num_threads(2)
    import circuitsvis as cv

    import lensnb

    lens = lensnb.load(str(model))
    tokens = tokens_of(n)
    lens(tokens[:, :8])
    rss0 = peak_rss_mb()
    tracemalloc.start()
    t = time.perf_counter()
    _, cache = lens.run_with_cache(tokens, names="blocks.0.attn.hook_pattern", progress=False)
    pattern = cache["blocks.0.attn.hook_pattern"][0]
    str_tokens = lens.to_str_tokens(tokens)
    html = cv.attention.attention_patterns(tokens=str_tokens, attention=pattern)
    build = time.perf_counter() - t
    shown = len(html.local_src)  # what an offline display sends (its object holds 2 copies)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dict(build_s=build, bytes=shown, tracemalloc_mb=peak / 2**20,
                rss_growth_mb=peak_rss_mb() - rss0)


def in_subprocess(kind: str, model: Path, n: int, cap: float) -> dict:
    cmd = [sys.executable, __file__, "--one", kind, str(model), str(n)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=cap, check=True)
    except subprocess.TimeoutExpired:
        return {"dnf": cap}
    except subprocess.CalledProcessError as err:
        if err.returncode == -9:
            return {"killed": "killed by the kernel (out of memory)"}
        return {"error": err.stderr[-800:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def browser_times(model: Path, n: int, switches: int = 6) -> dict:
    """First view and head-switch times of the explorer in JupyterLab + Debian chromium."""
    sys.path.insert(0, str(REPO / "tests" / "browser"))
    from jupyterlab_harness import (
        JupyterLabServer,
        launch_chromium,
        open_and_run,
        widget_output,
        write_notebook,
    )
    from playwright.sync_api import sync_playwright

    cells = [
        "import torch, sys\ntorch.set_num_threads(2)\nimport lensnb\n"
        f"sys.path.insert(0, {str(REPO / 'bench')!r})\n"
        "from attention_explorer import tokens_of\n"
        f"lens = lensnb.load({str(model)!r})",
        f"ex = lensnb.AttentionExplorer(lens, tokens_of({n}), layers=[0])\nex",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        server = JupyterLabServer(Path(tmp))
        try:
            write_notebook(server.notebooks / "bench.ipynb", cells)
            with sync_playwright() as p:
                browser = launch_chromium(p)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                open_and_run(page, server, "bench.ipynb", timeout_ms=600_000)
                root = widget_output(page, "lensnb-attn")
                page.wait_for_selector(".lensnb-attn[data-thumbs-ms]", timeout=600_000)
                first = float(root.get_attribute("data-first-view-ms"))
                thumbs = float(root.get_attribute("data-thumbs-ms"))
                times = []
                n_heads = root.locator(".lensnb-attn-thumb").count()
                for h in [n_heads - 1 - 5 * i for i in range(switches)]:
                    root.locator(f".lensnb-attn-thumb[data-head='{h}']").click()
                    page.wait_for_selector(f".lensnb-attn[data-shown-head='{h}']")
                    times.append(float(root.get_attribute("data-switch-ms")))
                browser.close()
        finally:
            server.stop()
    times.sort()
    return dict(first_view_ms=first, thumbs_ms=thumbs, switch_ms_median=times[len(times) // 2],
                switch_ms_max=times[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="N = 256 only")
    ap.add_argument("--cap", type=float, default=120.0, help="seconds per CircuitsVis run")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    ap.add_argument("--out", default=str(REPO / "test-output" / "bench_attention.json"))
    args = ap.parse_args()
    if args.one:
        kind, model, n = args.one
        fn = run_explorer if kind == "explorer" else run_circuitsvis
        print(json.dumps(fn(Path(model), int(n))))
        return
    root = Path(tempfile.mkdtemp(prefix="lensnb-bench-"))
    results = []
    for n, heads in CASES[:1] if args.quick else CASES:
        model = make_model(heads, root)
        row = {"n": n, "heads": heads,
               "explorer": in_subprocess("explorer", model, n, 600),
               "circuitsvis": in_subprocess("circuitsvis", model, n, args.cap)}
        if not args.no_browser and (n, heads) == (CASES[-1] if not args.quick else CASES[0]):
            try:
                row["browser"] = browser_times(model, n)
            except Exception as err:  # report, keep the other numbers
                row["browser"] = {"error": f"{type(err).__name__}: {err}"[:500]}
        results.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results: list[dict]) -> str:
    lines = ["| N × heads | build: explorer / CircuitsVis | bytes, first view: explorer / "
             "CircuitsVis | peak Python memory (tracemalloc): explorer / CircuitsVis |",
             "|---|---|---|---|"]
    for r in results:
        e, c = r["explorer"], r["circuitsvis"]
        if "build_s" in c:
            build = (f"{e['build_s']:.2f} s / {c['build_s']:.1f} s = "
                     f"**{c['build_s'] / e['build_s']:.0f}× faster**")
            size = (f"{e['bytes'] / 1e6:.2f} MB / {c['bytes'] / 1e6:.0f} MB = "
                    f"**{c['bytes'] / e['bytes']:.0f}× fewer**")
            mem = (f"{e['tracemalloc_mb']:.1f} MB / {c['tracemalloc_mb']:.0f} MB = "
                   f"{c['tracemalloc_mb'] / max(e['tracemalloc_mb'], 1e-3):.0f}× less")
        else:
            why = (f"did not finish in {c['dnf']:.0f} s" if "dnf" in c
                   else "out of memory" if "killed" in c else "failed")
            build = f"{e['build_s']:.2f} s / {why}"
            size = f"{e['bytes'] / 1e6:.2f} MB / {why}"
            mem = f"{e['tracemalloc_mb']:.1f} MB / {why}"
        lines.append(f"| {r['n']} × {r['heads']} | {build} | {size} | {mem} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
