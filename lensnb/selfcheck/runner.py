"""Run every check on every layout; an exception inside one check becomes that cell's
failure, so ``check()`` never raises."""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Sequence

import torch

from .invariants import CHECKS
from .models import LAYOUTS, Built, build
from .models import versions as read_versions
from .result import FAIL, INVARIANTS, NA, PASS, CheckResult, CheckRow, NotApplicable, Unavailable


def _message(err: BaseException) -> str:
    where = traceback.extract_tb(err.__traceback__)
    at = f" (at {where[-1].filename.rsplit('/', 1)[-1]}:{where[-1].lineno})" if where else ""
    return f"{type(err).__name__}: {err}{at}"


def _run_one(invariant: str, layout: str, built: Built | None, build_error: str) -> CheckRow:
    start = time.perf_counter()
    row = CheckRow(invariant, layout, FAIL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if built is None:
                row.message = build_error
            else:
                err, tol, msg = CHECKS[invariant](built)
                row.max_error, row.tolerance, row.message = err, tol, msg
                numeric_ok = err is None or tol is None or err <= tol
                row.status = PASS if numeric_ok and not msg else FAIL
                if row.status == FAIL and not msg:
                    row.message = f"max error {err:.1e} is above the tolerance {tol:.0e}"
        except NotApplicable as na:
            row.status, row.message = NA, str(na)
        except Unavailable as un:
            row.message = str(un)
        except Exception as exc:  # never raise: the failure is the cell's
            row.message = _message(exc)
    row.warnings = list(dict.fromkeys(str(w.message).splitlines()[0][:200] for w in caught
                                      if issubclass(w.category, (DeprecationWarning,
                                                                 FutureWarning))))
    row.seconds = time.perf_counter() - start
    return row


def check(layouts: Sequence[str] | None = None, *, verbose: bool = True) -> CheckResult:
    """Self-test the installed stack on tiny random models of every supported layout; offline,
    a few seconds. Prints the table (unless ``verbose=False``) and returns a ``CheckResult``
    (``.ok``, ``.rows``, ``.to_frame()``). Never raises, and leaves torch's random state and
    thread count as it found them (it runs on one thread: the models are tiny).

    Args:
        layouts: a subset of ``models.LAYOUTS``: ``"llama-gqa"``, ``"mistral"``,
            ``"qwen2-bias"``, ``"gemma-mqa"``, ``"gpt2"``, ``"gpt-neox"``, ``"phi3"``,
            ``"qwen3"``, ``"olmo2"``, ``"gemma2"``, ``"mllama"`` (default: all).
        verbose: print the table.
    """
    start = time.perf_counter()
    rows: list[CheckRow] = []
    try:
        versions = read_versions()
    except Exception as exc:  # pragma: no cover - a broken installation
        versions = {k: f"unknown ({exc})" for k in ("python", "lensnb", "torch", "transformers",
                                                    "transformer-lens")}
    chosen = (list(LAYOUTS) if layouts is None else
              [layouts] if isinstance(layouts, str) else list(layouts))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest, more only contend
    try:
        with torch.random.fork_rng(devices=[]):  # the builders seed torch; the caller's RNG
            for layout in chosen:               # stays as it was
                rows += _check_layout(layout)
    finally:
        torch.set_num_threads(threads)
    result = CheckResult(rows, versions, time.perf_counter() - start)
    if verbose:
        print(result)
    return result


def _check_layout(layout: str) -> list[CheckRow]:
    """Every invariant on one layout (every cell fails with the reason if it cannot be built)."""
    built, build_error = None, ""
    if layout not in LAYOUTS:
        build_error = f"unknown layout {layout!r}: choose from {', '.join(LAYOUTS)}"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                built = build(layout)
            except Exception as exc:
                build_error = f"could not build the model: {_message(exc)}"
    return [_run_one(invariant, layout, built, build_error) for invariant in INVARIANTS]
