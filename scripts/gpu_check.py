"""The measurements of scripts/gpu_check.sh, each step writing one JSON file into OUT, and the
summary that joins them (with the shell script's step log) into OUT/summary.md.

    python scripts/gpu_check.py env OUT
    python scripts/gpu_check.py acceptance OUT --dtype bfloat16        # and float32
    python scripts/gpu_check.py long-context OUT --lengths 8192 32768 131072
    python scripts/gpu_check.py summary OUT

Acceptance: each real model (SmolLM2-135M, Gemma 3 270M: those whose weights are here) through
lensnb and through transformers' own model of the same converted directory, in the same dtype,
on the same device (eager attention, the reference lensnb's patterns are checked against):
logits, every layer's pattern, top-1 agreement and a 16-token greedy continuation. Float32 must
meet the CPU suite's bounds (tests/test_real_models.py); bfloat16, whose 8-bit mantissa makes
two correct implementations differ by rounding, must agree on the top-1 token at 95 % of the
positions and on the greedy continuation, and its logit and pattern differences are recorded.

Long context: on the demo model (a 131,072-token context), ``lens(tokens)`` and an
``AttentionExplorer`` of the last layer (its kept q/k, one exact row and the overview the view
draws) at each length: seconds, peak device memory, and whether the results are finite and the
row sums to 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEXT = ("In 1879 the physicist wrote to his sister about the lake, the mountains and the long "
        "winter evenings spent reading by the fire. ") * 8
PROMPT = "The capital of France is"
# float32: the bounds of tests/test_real_models.py (LOGIT_TOL; SDPA_PATTERN_TOL)
FLOAT32_LOGITS, FLOAT32_PATTERNS = 1e-4, 5e-5
BF16_TOP1 = 0.95


def _device(arg: str | None) -> str:
    import torch

    return arg or ("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_gb(device: str) -> float | None:
    import torch

    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 1e9, 2)
    return None


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def env(out: Path) -> dict:
    import torch

    sys.path.insert(0, str(REPO / "scripts"))
    from versions import versions

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cuda_available": torch.cuda.is_available(),
            "cuda": torch.version.cuda, "packages": versions()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 1e9, 1)
    return info


def acceptance(out: Path, dtype_name: str, device: str | None) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    import lensnb
    from lensnb.core.sources import NAMED, converted_path, is_converted
    from lensnb.core.sources.gguf import check_installed

    device = _device(device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    rows = []
    for name, model in NAMED.items():
        row: dict[str, Any] = {"model": name, "dtype": dtype_name, "device": device}
        try:
            if not is_converted(model):
                check_installed(model)  # converts below, else says what to install
        except Exception as err:  # noqa: BLE001 (a missing model is a row, not a crash)
            rows.append({**row, "status": "skipped", "why": str(err).splitlines()[0]})
            continue
        start = time.perf_counter()
        lens = lensnb.load(name, dtype=dtype, device=device)
        hf = AutoModelForCausalLM.from_pretrained(converted_path(model), dtype=dtype,
                                                  attn_implementation="eager").to(device).eval()
        ids = lens.to_tokens(TEXT)
        with torch.no_grad():
            ref = hf(ids, output_attentions=True)
        logits, cache = lens.run_with_cache(ids, names="blocks.*.attn.hook_pattern")
        row["positions"] = ids.shape[1]
        row["max_logit_diff"] = float((logits.float() - ref.logits.float()).abs().max())
        row["logit_range"] = float(ref.logits.float().abs().max())
        row["top1_agreement"] = float((logits.argmax(-1) == ref.logits.argmax(-1)).float().mean())
        row["max_pattern_diff"] = max(
            float((cache[f"blocks.{i}.attn.hook_pattern"].float() - a.float()).abs().max())
            for i, a in enumerate(ref.attentions))
        prompt = lens.to_tokens(PROMPT)
        ours = lens.generate(PROMPT, 16).new_tokens[0].tolist()
        with torch.no_grad():
            theirs = hf.generate(prompt, max_new_tokens=16, do_sample=False,
                                 attention_mask=torch.ones_like(prompt))[0, prompt.shape[1]:]
        row["greedy_16_equal"] = ours == theirs.tolist()  # both stop at EOS, or at 16
        row["greedy_text"] = lens.tokenizer.decode(ours)
        _sync(device)
        row["seconds"] = round(time.perf_counter() - start, 1)
        if dtype_name == "float32":
            ok = (row["max_logit_diff"] <= FLOAT32_LOGITS
                  and row["max_pattern_diff"] <= FLOAT32_PATTERNS and row["greedy_16_equal"])
            row["criteria"] = (f"logits <= {FLOAT32_LOGITS:g}, patterns <= "
                               f"{FLOAT32_PATTERNS:g}, greedy equal")
        else:
            ok = row["top1_agreement"] >= BF16_TOP1 and row["greedy_16_equal"]
            row["criteria"] = f"top-1 agreement >= {BF16_TOP1:.0%}, greedy equal"
        row["status"] = "pass" if ok else "FAIL"
        rows.append(row)
        del lens, hf, ref, logits, cache
    return {"acceptance": rows}


def long_context(out: Path, lengths: list[int], device: str | None) -> dict:
    import torch

    import lensnb

    device = _device(device)
    lens = lensnb.load("demo", device=device)
    layer = lens.n_layers - 1
    rows = []
    for n in lengths:
        row: dict[str, Any] = {"model": "demo", "tokens": n, "device": device}
        try:
            tokens = lensnb.stdlib_tokens(lens, n)
            _reset_peak(device)
            start = time.perf_counter()
            with torch.no_grad():
                logits = lens(tokens)  # [1, n, d_vocab]
            _sync(device)
            row["forward_seconds"] = round(time.perf_counter() - start, 2)
            row["forward_peak_gb"] = _peak_gb(device)
            row["logits_finite"] = bool(torch.isfinite(logits).all())
            del logits
            _reset_peak(device)
            start = time.perf_counter()
            view = lensnb.AttentionExplorer(lens, tokens, layers=[layer], layer=layer,
                                            progress=False)
            row_sum = float(view.kept.row(layer, 0, n - 1).sum())
            figure = view.figure()  # the overview the view draws (max-pooled)
            _sync(device)
            row["explorer_seconds"] = round(time.perf_counter() - start, 2)
            row["explorer_peak_gb"] = _peak_gb(device)
            row["kept_mb"] = round(view.kept.nbytes / 1e6)
            row["last_row_sum"] = round(row_sum, 6)
            row["overview_cells"] = int(len(figure.data[0].z) * len(figure.data[0].z[0]))
            ok = row["logits_finite"] and abs(row_sum - 1) < 1e-3
            row["status"] = "pass" if ok else "FAIL"
            del view, figure
        except Exception as err:  # noqa: BLE001 (the summary says what broke, at which length)
            row["status"] = "FAIL"
            row["error"] = f"{type(err).__name__}: {err}"[:500]
        rows.append(row)
    return {"long_context": rows}


def summary(out: Path) -> str:
    """OUT/summary.md from OUT/*.json and OUT/steps.tsv (the shell script's step log)."""
    parts = ["# lensnb GPU check", ""]
    env_file = out / "env.json"
    if env_file.is_file():
        info = json.loads(env_file.read_text())
        gpu = info.get("gpu", "no GPU (CPU run)")
        parts += [f"- machine: {gpu}, {info.get('gpu_memory_gb', '-')} GB; python "
                  f"{info['python']}; torch {info['torch']} (CUDA {info['cuda']})",
                  "- " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()), ""]
    steps = out / "steps.tsv"
    if steps.is_file():
        parts += ["## Steps", "", "| step | result | seconds | note |", "|---|---|---|---|"]
        for line in steps.read_text().splitlines():
            name, result, seconds, *note = line.split("\t")
            parts.append(f"| {name} | {result} | {seconds} | {' '.join(note)} |")
        parts.append("")
    for kind in ("acceptance-float32", "acceptance-bfloat16"):
        file = out / f"{kind}.json"
        if file.is_file():
            rows = json.loads(file.read_text())["acceptance"]
            parts += [f"## Real models, {kind.split('-')[1]}", "",
                      "| model | status | max logit diff | top-1 agree | max pattern diff | "
                      "greedy 16 equal | s | criteria / why |", "|---|---|---|---|---|---|---|---|"]
            for r in rows:
                if r["status"] == "skipped":
                    parts.append(f"| {r['model']} | skipped | | | | | | {r['why']} |")
                    continue
                parts.append(
                    f"| {r['model']} | {r['status']} | {r['max_logit_diff']:.2e} (of "
                    f"{r['logit_range']:.0f}) | {r['top1_agreement']:.1%} | "
                    f"{r['max_pattern_diff']:.2e} | {r['greedy_16_equal']} | {r['seconds']} | "
                    f"{r['criteria']} |")
            parts.append("")
    file = out / "long-context.json"
    if file.is_file():
        rows = json.loads(file.read_text())["long_context"]
        parts += ["## Long context (demo model, last layer's explorer)", "",
                  "| tokens | status | lens(tokens) s | peak GB | explorer s | peak GB | kept MB "
                  "| last row sum |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "error" in r:
                parts.append(f"| {r['tokens']:,} | FAIL | {r['error']} | | | | | |")
                continue
            parts.append(
                f"| {r['tokens']:,} | {r['status']} | {r['forward_seconds']} | "
                f"{r['forward_peak_gb']} | {r['explorer_seconds']} | {r['explorer_peak_gb']} | "
                f"{r['kept_mb']} | {r['last_row_sum']} |")
        parts.append("")
    times = REPO / "test-output" / "notebooks" / "times.json"
    if times.is_file():
        parts += ["## Tutorial run times (last notebook test run)", ""]
        for name, t in sorted(json.loads(times.read_text()).items()):
            parts.append(f"- {name}: {t['seconds']} s")
        parts.append("")
    text = "\n".join(parts)
    (out / "summary.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["env", "acceptance", "long-context", "summary"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 32768, 131072])
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "summary":
        print(summary(args.out))
        return 0
    import torch

    torch.set_num_threads(min(os.cpu_count() or 1, 8))
    if args.step == "env":
        result, name = env(args.out), "env"
    elif args.step == "acceptance":
        result, name = acceptance(args.out, args.dtype, args.device), f"acceptance-{args.dtype}"
    else:
        result, name = long_context(args.out, args.lengths, args.device), "long-context"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    rows = next(iter(result.values())) if name != "env" else []
    return 1 if any(r.get("status") == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
