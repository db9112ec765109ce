"""``lensnb.activation_patching``: which layer, position, head or KV group carries the answer.

Denoising, TransformerLens's convention: the clean prompt's activation at one cell goes into
the corrupted run, and the score says how much of the clean metric it brings back (0: the
corrupted run, 1: the clean run). ``method="exact"`` runs every cell (many patched copies per
forward pass); ``method="attribution"`` estimates every cell from one forward and one backward
pass (``refine=k`` then runs the ``k`` largest exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..core.errors import InputError, InputTypeError
from . import exact, runner
from .attribution import attribution_metric
from .metrics import (
    Metric,
    answer_token,
    apply_metric,
    check_metric_position,
    logit_difference,
    normaliser,
    prompt_pair,
)
from .results import PatchingResult
from .sites import resolve_sweep

if TYPE_CHECKING:
    from ..lens import Lens

METHODS = ("exact", "attribution")


def activation_patching(
    lens: Lens,
    clean: Any,
    corrupted: Any,
    *,
    answer: int | str | None = None,
    wrong: int | str | None = None,
    site: str = "resid_pre",
    method: str = "exact",
    metric: Metric | None = None,
    metric_position: int = -1,
    positions: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    refine: int = 0,
    batch_size: int | None = None,
    progress: runner.Progress = None,
    qk_fix: bool = True,
) -> PatchingResult:
    """Patch clean activations into the corrupted run, one cell per patched copy.

    Args:
        lens: the model.
        clean, corrupted: one prompt each (a text or token ids ``[1, pos]``) of the same token
            length (``InputError`` otherwise, naming both lengths and where they part).
        answer, wrong: the tokens of the default metric, ``logit[answer] - logit[wrong]`` at
            ``metric_position``: a token id or a string that is exactly one token.
        site: ``"resid_pre"``, ``"resid_mid"``, ``"resid_post"``, ``"attn_out"``,
            ``"mlp_out"`` (a layer and a position per cell), ``"head"`` (a head's ``hook_z`` at
            every position), ``"head_by_pos"`` (a head at one position), ``"kv_group"`` (a KV
            group's ``hook_k`` and ``hook_v`` at every position). A site the model lacks
            refuses up front (``UnsupportedFeatureError``) naming those it has.
        method: ``"exact"`` or ``"attribution"`` (AtP, with AtP*'s QK fix for ``"kv_group"``;
            ``qk_fix=False`` for plain AtP).
        metric: instead of the logit difference, ``metric(logits [batch, d_vocab]) -> [batch]``
            of the logits at ``metric_position`` (the only position unembedded).
        positions, layers: narrow the sweep (position sites / any site); ``None``: all.
        refine: with ``method="attribution"``, run the ``refine`` cells with the largest
            ``|score|`` exactly too (``result.exact``).
        batch_size: patched copies per forward pass (``None``: as many as the memory budget
            holds, ``$LENSNB_PATCHING_MEMORY`` bytes when set).
        progress: ``None`` (a bar when the sweep takes several passes), ``True``, ``False``,
            or ``fn(done, total)`` called after each pass.

    Returns a ``PatchingResult`` (``scores``, ``to_frame()``, ``figure()``, ``top()``).
    Interrupting (``KeyboardInterrupt``) leaves no hook on the model.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(map(repr, METHODS))}, got "
                         f"{method!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise InputTypeError(f"refine is a number of cells (int >= 0), got {refine!r}")
    if refine and method != "attribution":
        raise InputError("refine= re-runs the largest attribution estimates exactly: pass it "
                         "with method='attribution' (method='exact' is exact already)")
    runner.check_progress(progress)
    clean_tokens, corrupted_tokens = prompt_pair(lens, clean, corrupted)
    n_pos = clean_tokens.shape[1]
    sweep = resolve_sweep(lens, site, n_pos, layers=layers, positions=positions)
    position = check_metric_position(metric_position, n_pos)
    answer_id = wrong_id = None
    if metric is None:
        if answer is None or wrong is None:
            raise InputError("pass answer= and wrong= (the tokens of the logit difference "
                             "answer - wrong), or a metric=")
        answer_id = answer_token(lens, answer, "answer")
        wrong_id = answer_token(lens, wrong, "wrong")
        metric = logit_difference(answer_id, wrong_id)
    elif not callable(metric):
        raise InputTypeError(f"metric is a function of the logits [batch, d_vocab], got "
                             f"{type(metric).__name__}")

    refined: dict[tuple[int, ...], float] = {}
    if method == "exact":
        names = [n for la in sweep.layers for n in sweep.hook_names(lens, la)]
        with torch.no_grad():
            resid, clean_acts = exact.run_and_capture(lens, clean_tokens, names)
            m_clean = float(apply_metric(metric, runner.logits_at(lens, resid, position))[0])
            resid = runner.final_residual(lens, corrupted_tokens)
            m_corr = float(apply_metric(metric, runner.logits_at(lens, resid, position))[0])
        span = normaliser(m_clean, m_corr)
        size = runner.batch_size(lens, n_pos, batch_size, n_rows=len(sweep.cells))
        with runner.progress_bar(progress, len(sweep.cells), f"patching {sweep.site.name}",
                                 passes=len(runner.chunks(len(sweep.cells), size))) as advance:
            values = exact.exact_metric(lens, sweep, sweep.cells, clean_acts, corrupted_tokens,
                                        position, metric, size, advance)
        scores = ((values - m_corr) / span).reshape(sweep.shape)
    else:
        with runner.progress_bar(progress, 1 + refine, f"attribution {sweep.site.name}",
                                 passes=1 + (refine > 0)) as advance:
            estimate, m_clean, m_corr = attribution_metric(
                lens, sweep, clean_tokens, corrupted_tokens, position, metric, qk_fix=qk_fix)
            span = normaliser(m_clean, m_corr)
            scores = estimate / span
            advance(1)
            if refine:
                refined = _refine(lens, sweep, scores, refine, clean_tokens, corrupted_tokens,
                                  position, metric, m_corr, span, batch_size, advance)
    return PatchingResult(
        scores=scores.float(), dims=sweep.site.dims, site=sweep.site.name, method=method,
        layers=sweep.layers, positions=sweep.positions,
        str_tokens=lens.to_str_tokens(clean_tokens),
        corrupted_str_tokens=lens.to_str_tokens(corrupted_tokens),
        clean_value=m_clean, corrupted_value=m_corr, answer=answer_id, wrong=wrong_id,
        kv_groups=lens.kv_groups, exact=refined, metric_position=position)


def _refine(lens: Lens, sweep: Any, scores: torch.Tensor, k: int, clean_tokens: torch.Tensor,
            corrupted_tokens: torch.Tensor, position: int, metric: Metric, m_corr: float,
            span: float, batch_size: int | None, advance: Any) -> dict[tuple[int, ...], float]:
    """Exact scores of the ``k`` cells with the largest ``|estimate|``."""
    flat = scores.flatten()
    order = flat.abs().argsort(descending=True, stable=True)[:k].tolist()
    cells = [sweep.cells[i] for i in order]  # cells are listed in scores' row-major order
    names = sorted({n for c in cells for n in sweep.hook_names(lens, c[0])})
    with torch.no_grad():
        _, clean_acts = exact.run_and_capture(lens, clean_tokens, names)
    size = runner.batch_size(lens, clean_tokens.shape[1], batch_size, n_rows=len(cells))
    values = exact.exact_metric(lens, sweep, cells, clean_acts, corrupted_tokens, position,
                                metric, size, lambda n: None)
    advance(k)
    return {c: float((v - m_corr) / span) for c, v in zip(cells, values.tolist(), strict=True)}
