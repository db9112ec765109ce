"""``lensnb.ablation``: switch heads or KV groups off, as ``lensnb.Patch`` objects.

A head is ablated at ``attn.hook_z`` (that head's output before ``W_O``, every position), a KV
group at ``attn.hook_k`` and ``attn.hook_v`` (that key/value head, every position, so exactly
the query heads ``lens.heads_of_kv(g)`` read the change). ``how="zero"`` writes zeros;
``how="mean"`` writes the activation's mean over every position of ``reference`` (one text or
several). The patches work wherever a ``Patch`` does: ``lens.run_with_hooks(text,
fwd_hooks=patches)``, ``lens.run_with_cache(text, hooks=patches)``, ``lens.generate(...,
hooks=patches)``, the stepper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..core.errors import InputError, InputTypeError
from ..core.indices import check_layer
from ..interventions.patch import Patch, patch

if TYPE_CHECKING:
    from ..lens import Lens

HOWS = ("zero", "mean")
HEAD_HOOK = "attn.hook_z"
KV_HOOKS = ("attn.hook_k", "attn.hook_v")


def _pairs(lens: Lens, items: Any, what: str, check: Any) -> list[tuple[int, int]]:
    if isinstance(items, tuple) and len(items) == 2 and all(isinstance(i, int) for i in items):
        items = [items]  # one (layer, index) pair
    out: list[tuple[int, int]] = []
    for item in items:
        if not (isinstance(item, Sequence) and len(item) == 2):
            raise InputTypeError(f"{what} are (layer, index) pairs, e.g. [(9, 3), (10, 7)]; got "
                                 f"{item!r}")
        pair = (check_layer(item[0], lens.n_layers), check(item[1]))
        if pair not in out:
            out.append(pair)
    return sorted(out)


def _means(lens: Lens, reference: Any, names: list[str]) -> dict[str, torch.Tensor]:
    """The mean of each hook's activation over every position of every reference text
    (``[heads, d_head]`` per name)."""
    texts = [reference] if isinstance(reference, str) or (
        isinstance(reference, torch.Tensor)) else list(reference)
    if not texts:
        raise InputError("reference is empty: pass a text or a list of texts to average over")
    sums: dict[str, torch.Tensor] = {}
    count = 0
    for text in texts:
        tokens = lens.to_tokens(text)
        _, cache = lens.run_with_cache(tokens, names=names)
        count += tokens.shape[0] * tokens.shape[1]
        for n in names:
            part = cache[n].double().sum((0, 1))
            sums[n] = part if n not in sums else sums[n] + part
    return {n: (s / count).to(lens.dtype) for n, s in sums.items()}


def ablation(lens: Lens, *, heads: Sequence[tuple[int, int]] = (),
             kv_groups: Sequence[tuple[int, int]] = (), how: str = "zero",
             reference: Any = None) -> list[Patch]:
    """``Patch`` objects that ablate ``heads`` and ``kv_groups``.

    Args:
        heads: ``[(layer, head), ...]``: query heads, ablated at ``attn.hook_z``.
        kv_groups: ``[(layer, kv_group), ...]``: key/value heads, ablated at ``attn.hook_k`` and
            ``attn.hook_v``.
        how: ``"zero"`` or ``"mean"`` (the mean over ``reference``'s positions).
        reference: for ``how="mean"``: a text (or token ids), or a list of them.

    Returns ``list[lensnb.Patch]``, one per head and two per KV group, layer by layer:
    ``lens.run_with_hooks(text, fwd_hooks=lensnb.ablation(lens, heads=[(9, 3)]))``.
    """
    if how not in HOWS:
        raise InputError(f"how must be one of {', '.join(map(repr, HOWS))}, got {how!r}")
    if how == "mean" and reference is None:
        raise InputError("how='mean' needs reference= (a text or texts whose mean activation "
                         "replaces the ablated ones)")
    if how == "zero" and reference is not None:
        raise InputError("reference= is the text of how='mean'; how='zero' writes zeros")
    head_pairs = _pairs(lens, heads, "heads", lens.kv_groups.check_head)
    group_pairs = _pairs(lens, kv_groups, "kv_groups", lens.kv_groups.check_kv_head)
    if not head_pairs and not group_pairs:
        raise InputError("nothing to ablate: pass heads=[(layer, head), ...] and/or "
                         "kv_groups=[(layer, kv_group), ...]")
    names = sorted({lens.hook_name(HEAD_HOOK, la) for la, _ in head_pairs}
                   | {lens.hook_name(h, la) for la, _ in group_pairs for h in KV_HOOKS})
    means = _means(lens, reference, names) if how == "mean" else {}

    def value(layer: int, hook: str, index: int) -> Any:
        if how == "zero":
            return 0.0
        return means[lens.hook_name(hook, layer)][index]  # [d_head]

    out: list[Patch] = []
    for layer, head in head_pairs:
        out.append(patch(layer, HEAD_HOOK, head=head, every_position=True,
                         value=value(layer, HEAD_HOOK, head)).resolve(lens))
    for layer, group in group_pairs:
        out += [patch(layer, hook, kv_group=group, every_position=True,
                      value=value(layer, hook, group)).resolve(lens) for hook in KV_HOOKS]
    return sorted(out, key=lambda p: p.layer)
