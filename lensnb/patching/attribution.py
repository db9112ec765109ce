"""Attribution patching (Nanda 2023; AtP*, Kramár et al. 2024): every cell of a site from one
forward pass and one backward pass.

The first-order estimate of patching activation ``a`` from the corrupted run to the clean run
is ``(a_clean - a_corrupted) . dM/da``, the gradient taken at the corrupted run. One pass holds
the clean prompt (row 0) and the corrupted prompt (row 1); the metric is read from row 1, and
one ``torch.autograd.grad`` gives ``dM/da`` at every swept hook (no weight gradients).

AtP*'s QK fix: a linear estimate through an attention softmax misses what saturation does, so
where a site's patch goes through the softmax, the softmax is recomputed exactly instead and
only what follows it is linearised:

- ``"head"``/``"head_by_pos"`` patch the head's output ``z``, which the clean run computed
  with its own queries, keys and softmax: ``z_clean`` is already the recomputed output, and the
  estimate is linear from ``z`` onwards.
- ``"kv_group"`` patches a group's keys and values: one extra row (row 2) takes, at every
  swept layer, every group's clean keys and values with the corrupted queries, so its
  attention recomputes ``z'`` exactly for every query head (a query head reads its own KV
  group only, so one row serves all groups); the row's ``z`` is then reset to the corrupted
  row's, so each layer sees the corrupted residual stream. Where one norm spans every KV
  head's keys (``capabilities.shared_k_norm``, OLMo-2) groups are not independent, and each
  group gets a row of its own (rows 2...). The score is ``sum over the group's heads
  (z' - z_corrupted) . dM/dz``. ``qk_fix=False`` gives plain AtP through the keys and values,
  ``(k_clean - k) . dM/dk + (v_clean - v) . dM/dv``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from . import runner
from .metrics import Metric, apply_metric

if TYPE_CHECKING:
    from ..lens import Lens
    from .sites import Sweep

CLEAN, CORRUPTED, FIX = 0, 1, 2  # batch rows of the attribution pass


def _leaf(act: torch.Tensor, hook: Any) -> torch.Tensor:
    """Start the graph at the embedding (the weights need no gradient)."""
    return act.detach().requires_grad_(True)


def attribution_metric(lens: Lens, sweep: Sweep, clean: torch.Tensor, corrupted: torch.Tensor,
                       position: int, metric: Metric, *, qk_fix: bool = True
                       ) -> tuple[torch.Tensor, float, float]:
    """``(estimate [sweep.shape] of m - m_corrupted, m_clean, m_corrupted)``, float64 on the
    CPU, from one forward and one backward pass."""
    fix = sweep.site.name == "kv_group" and qk_fix
    # fix rows: one for every group at once, or one per group where their keys share a norm
    per_group = lens.capabilities.shared_k_norm
    n_fix = (lens.n_key_value_heads if per_group else 1) if fix else 0
    tokens = torch.cat([clean, corrupted, corrupted.expand(n_fix, -1)], dim=0)
    kept: dict[str, torch.Tensor] = {}  # hook name -> the activation in the graph
    recomputed: dict[str, torch.Tensor] = {}  # hook_z name -> z' of the fix rows
    hooks: list[tuple[str, Callable]] = [("hook_embed", _leaf)]

    def keep(name: str) -> Callable:
        def fn(act: torch.Tensor, hook: Any) -> torch.Tensor:
            # a new tensor in its place, as an exact patch writes one: its gradient covers
            # exactly the paths a patch there reaches (a reshaped view such as hook_z's goes
            # back into the model; the bridge's hook_resid_mid reaches the MLP's norm only)
            kept[name] = new = act.clone()
            return new
        return fn

    def clean_kv(act: torch.Tensor, hook: Any) -> torch.Tensor:
        new = act.clone()  # [batch, pos, n_kv, d_head]
        if per_group:  # row FIX + g: group g's clean keys/values, the others corrupted
            for g in range(n_fix):
                new[FIX + g, :, g] = act[CLEAN, :, g]
        else:  # row FIX: every group's clean keys/values
            new[FIX] = act[CLEAN]
        return new

    def z_reset(name: str) -> Callable:
        def fn(act: torch.Tensor, hook: Any) -> torch.Tensor:
            kept[name] = act
            recomputed[name] = act[FIX:].detach()  # [n_fix, pos, n_heads, d_head]
            new = act.clone()
            new[FIX:] = act[CORRUPTED].detach()
            return new
        return fn

    for layer in sweep.layers:
        if fix:
            z = lens.hook_name("attn.hook_z", layer)
            hooks += [(lens.hook_name("attn.hook_k", layer), clean_kv),
                      (lens.hook_name("attn.hook_v", layer), clean_kv), (z, z_reset(z))]
        else:
            hooks += [(name, keep(name)) for name in sweep.hook_names(lens, layer)]
            if (carry := sweep.carry_name(lens, layer)) is not None:
                hooks.append((carry, keep(carry)))
    if lens.bridge.hook_dict.get("hook_embed") is None:  # pragma: no cover - every family has it
        hooks = hooks[1:]

    resid = runner.final_residual_grad(lens, tokens, hooks)
    values = apply_metric(metric, runner.logits_at(lens, resid[:FIX], position))  # [2]
    names = list(kept)
    grads = dict(zip(names, torch.autograd.grad(values[CORRUPTED], [kept[n] for n in names],
                                                allow_unused=True), strict=True))
    m_clean, m_corr = (float(v) for v in values.detach().double().cpu())

    out = torch.zeros(sweep.shape, dtype=torch.float64)
    with torch.no_grad():
        for li, layer in enumerate(sweep.layers):
            if fix:
                name = lens.hook_name("attn.hook_z", layer)
                out[li] = _kv_fix_scores(lens, recomputed[name], kept[name][CORRUPTED],
                                         grads[name])
                continue
            carry = sweep.carry_name(lens, layer)
            for name in sweep.hook_names(lens, layer):
                act = kept[name]
                # the gradient of the residual stream at a norm's input: through the norm
                # (this hook) and past it (the carrying hook)
                parts = [g for g in (grads[name], grads.get(carry)) if g is not None]
                if not parts:  # the hook does not reach the metric position
                    continue
                delta = (act[CLEAN] - act[CORRUPTED]) * sum(parts)[CORRUPTED]  # [pos, ...]
                out[li] += _reduce(sweep, delta).double().cpu()
    return out, m_clean, m_corr


def _reduce(sweep: Sweep, delta: torch.Tensor) -> torch.Tensor:
    """``delta`` ``[pos, d]`` or ``[pos, heads, d]`` summed to the site's cells of one layer."""
    site = sweep.site
    if site.heads is None:  # [pos, d] -> [n_positions]
        return delta.sum(-1)[sweep.positions]
    if site.by_position:  # [pos, heads, d] -> [n_positions, heads]
        return delta.sum(-1)[sweep.positions]
    return delta.sum((0, 2))  # [heads]


def _kv_fix_scores(lens: Lens, z_fix: torch.Tensor, z_corr: torch.Tensor,
                   grad: torch.Tensor | None) -> torch.Tensor:
    """``[n_kv]``: for each KV group g, ``sum over its query heads (z'_g - z) . dM/dz`` with
    ``z_fix [n_fix, pos, n_heads, d_head]`` the recomputed outputs of the fix rows (one row
    for all groups, or one per group)."""
    if grad is None:
        return torch.zeros(lens.n_key_value_heads, dtype=torch.float64)
    g_corr = grad[CORRUPTED]  # [pos, n_heads, d_head]
    out = torch.zeros(lens.n_key_value_heads, dtype=torch.float64)
    for g, heads in enumerate(lens.kv_groups.groups):
        z_g = z_fix[g if z_fix.shape[0] > 1 else 0]  # [pos, n_heads, d_head]
        delta = (z_g[:, heads] - z_corr[:, heads]) * g_corr[:, heads]
        out[g] = float(delta.double().sum())
    return out
