"""What a user passes as hooks, checked once and turned into what a run installs.

A hook spec is a ``Patch`` (``lensnb.patch(...)``) or a pair ``(names, fn)``: ``names`` a hook
name, a glob (``"blocks.*.hook_resid_post"``), a list of those, or a predicate over names; ``fn``
a lensnb hook ``fn(activation, ctx)`` or a TransformerLens-style ``fn(tensor, hook)`` (the rule is
``hook_context.is_transformer_lens_hook``). The same specs go to ``lens.run_with_hooks``,
``lens.run_with_cache(hooks=...)``, ``lens.generate``/``lens.steps`` and ``GenerationStepper``.

A spec that names a split-QKV input (``hook_q_input``/``hook_k_input``/``hook_v_input``) by name
or glob, or a ``Patch`` on one, turns split QKV on for that run (``needs_split_qkv``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..backends.gating import gated_hooks
from ..core import hooks as hooknames
from ..core.errors import InputTypeError
from .hook_context import HookFn, as_context_hook, forward_hook, is_transformer_lens_hook
from .patch import Patch
from .split_qkv import PER_HEAD_INPUTS

if TYPE_CHECKING:
    from ..lens import Lens

HookSpec = Patch | tuple[str | Sequence[str] | Callable[[str], bool], Callable]
_GLOB = re.compile(r"[*?\[]")


def _pair(spec: Any) -> tuple[Any, Callable]:
    if not (isinstance(spec, tuple) and len(spec) == 2 and callable(spec[1])):
        raise InputTypeError(
            "a hook is lensnb.patch(...) or a pair (name, fn(activation, ctx)) (or a "
            f"TransformerLens-style (name, fn(tensor, hook))), got {spec!r}"
        )
    return spec


def resolve_hooks(lens: Lens, specs: Sequence[HookSpec], prompt_lengths: Sequence[int],
                  max_new_tokens: int = 0) -> list[tuple[str, HookFn]]:
    """Every spec as ``(hook name, fn(activation, ctx))`` pairs, one per matching hook
    (globs and predicates expanded); names, layers, heads and patch positions checked here,
    before anything runs."""
    points = lens.bridge.hook_dict
    out: list[tuple[str, HookFn]] = []
    for spec in specs:
        if isinstance(spec, Patch):
            spec.resolve(lens).check_positions(prompt_lengths, max_new_tokens)
            out.append((spec.name, spec))
            continue
        names, fn = _pair(spec)
        if isinstance(fn, Patch):
            fn.resolve(lens).check_positions(prompt_lengths, max_new_tokens)
        keep = hooknames.name_filter(names, points)
        ctx_fn = as_context_hook(fn, points)
        out += [(n, ctx_fn) for n in points if keep(n)]
    return out


def forward_hooks(lens: Lens, specs: Sequence[HookSpec],
                  tokens: torch.Tensor) -> list[tuple[str | Callable[[str], bool], Callable]]:
    """``specs`` as TransformerLens ``fwd_hooks`` for one forward pass over ``tokens
    [batch, pos]``: names, globs and lists resolved to hook names (one per hook point, skipping
    hooks a bridge flag switches off; ``ctx.name`` is the name asked for), predicates passed on
    (``ctx.name``: the first name the predicate accepts for that hook point), lensnb hooks
    wrapped to receive the plain-forward ``HookContext``; TransformerLens-style hooks pass
    through unchanged. Call with split QKV already as the run will have it."""
    cross = lens.cross_attention_layers
    points = lens.bridge.hook_dict
    dead = gated_hooks(lens.bridge)  # hooks a bridge flag switches off never fire
    lengths = [int(tokens.shape[-1])] * (tokens.shape[0] if tokens.ndim == 2 else 1)
    out: list[tuple[str | Callable[[str], bool], Callable]] = []

    def add(target: str | Callable[[str], bool], fn: Callable, said: Any) -> None:
        out.append((target, fn if is_transformer_lens_hook(fn)
                    else forward_hook(fn, cross_layers=cross, name=said)))

    for spec in specs:
        if isinstance(spec, Patch):
            spec.resolve(lens).check_positions(lengths)
            add(spec.name, spec, spec.name)
            continue
        names, fn = _pair(spec)
        if isinstance(fn, Patch):
            fn.resolve(lens).check_positions(lengths)
        if callable(names):
            add(names, fn, _first_name(points, names))
        elif isinstance(names, str) and not _GLOB.search(names):
            add(lens.hook_name(names), fn, lens.hook_name(names))
        else:
            keep = hooknames.name_filter(names, points)
            seen: set[int] = set()
            for n, point in points.items():
                if keep(n) and id(point) not in seen and n not in dead:
                    seen.add(id(point))
                    add(n, fn, n)
    return out


def _first_name(points: Any, pred: Callable[[str], bool]) -> Callable[[Any], str]:
    """``hook point -> the first of its names that pred accepts`` (TransformerLens hooks a
    predicate at the first such name)."""
    names: dict[int, str] = {}
    for n, point in points.items():
        if id(point) not in names and pred(n):
            names[id(point)] = n
    return lambda point: names.get(id(point), point.name)


def needs_split_qkv(lens: Lens, specs: Sequence[HookSpec]) -> bool:
    """Whether a spec names a split-QKV input (by name, glob or list; predicates do not count:
    they see whatever fires) or is a ``Patch`` on one."""
    for spec in specs:
        if isinstance(spec, Patch):  # by what was asked, so a model without them says why
            if (spec.name or spec.hook).endswith(PER_HEAD_INPUTS):
                return True
            continue
        names = _pair(spec)[0]
        if callable(names):
            continue
        asked = [names] if isinstance(names, str) else list(names)
        if any(isinstance(n, str) and n.endswith(PER_HEAD_INPUTS) for n in asked):
            return True
        keep = hooknames.name_filter(names, lens.bridge.hook_dict)
        if any(keep(n) for n in lens.bridge.hook_dict if n.endswith(PER_HEAD_INPUTS)):
            return True
    return False


def hooked_names(lens: Lens, fwd: Sequence[tuple[str | Callable[[str], bool], Callable]]
                 ) -> Callable[[str], bool]:
    """A predicate: whether a hook name gets one of the ``forward_hooks`` ``fwd``."""
    exact = {n for n, _fn in fwd if isinstance(n, str)}
    preds = [n for n, _fn in fwd if not isinstance(n, str)]
    return lambda name: name in exact or any(p(name) for p in preds)
