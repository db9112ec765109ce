"""The one hook signature: ``fn(activation, ctx) -> activation | None``.

Every place that takes hooks (``lens.run_with_hooks``, ``lens.run_with_cache(hooks=...)``,
``lens.generate``/``lens.steps``, ``GenerationStepper``, the split-QKV patches) calls a hook with
the activation and a ``HookContext``: the hook name, the layer, which step of a generation this
is, and the absolute position of every index along the activation's position axis, per row.

With a KV cache the prompt pass shows a hook ``[batch, prompt_len, d]`` and every later step
``[batch, 1, d]``; with left padding each row's tokens sit at different indices. Positions are
counted per row from its first real token (BOS is 0), exactly like the ``position_ids`` the model
sees, so they do not move with padding or with the cache. A plain forward pass (no generation)
has ``step=None``, ``is_prompt=True`` and positions ``0..n-1``.

**TransformerLens-style hooks** ``fn(tensor, hook)`` are accepted everywhere too. The rule
(``is_transformer_lens_hook``): TransformerLens calls a hook as ``fn(tensor, hook=hook_point)``,
so a function whose second parameter is named ``hook`` (or is annotated ``HookPoint``, or that
takes ``**kwargs`` after the tensor) is called that way, with the model's ``HookPoint`` of that
name; every other function gets ``(activation, ctx)``. Annotating the second parameter as
``HookContext`` always selects the lensnb form.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..core.hooks import layer_of

# Hooks whose activation is [batch, n_heads, query_pos, key_pos]: the position axis is 2.
ATTENTION_MAP_HOOKS = ("hook_pattern", "hook_attn_scores")
# Hooks that see text positions (the rest, e.g. the vision tower's, index their own axes).
TEXT_HOOK_PREFIXES = ("blocks.", "hook_embed", "ln_final.", "unembed.", "hook_unembed", "embed.",
                      "rotary_emb.", "pos_embed.")

#: What a patch writes: a tensor (see ``lensnb.patch`` for its shapes), a scalar, or a function
#: ``old -> new`` of the part of the activation being replaced.
PatchValue = torch.Tensor | float | Callable[[torch.Tensor], torch.Tensor]


def position_axis(name: str) -> int:
    """Axis of ``name``'s activation that runs over (query) positions."""
    return 2 if name.endswith(ATTENTION_MAP_HOOKS) else 1


@dataclass
class HookContext:
    """What a hook sees besides the tensor.

    Attributes:
        name: the hook name (TransformerLens's, e.g. ``blocks.2.hook_resid_post``).
        layer: the block index, or ``None`` outside the blocks.
        step: ``None`` in a plain forward pass; in a generation 0 for the prompt pass and ``k``
            for the pass that feeds the ``k``-th generated token.
        positions: ``[batch, n]`` absolute position of each index along the position axis,
            ``-1`` for left padding.
        key_positions: ``[batch, n_keys]`` absolute positions of every key (cache + new), ``-1``
            for padding; the last axis of ``hook_pattern``/``hook_attn_scores``. In a
            cross-attention layer (Llama 3.2 Vision) the keys are image tokens and this is
            their index ``0..image_tokens-1``.
        prompt_lengths: ``[batch]`` real (unpadded) prompt length of each row (in a plain
            forward pass: the sequence length).
        pos_axis: the activation's position axis (1, or 2 for attention maps).
        cross_attention: whether this is a cross-attention map (text queries, image keys).
    """

    name: str
    layer: int | None
    step: int | None
    positions: torch.Tensor  # [batch, n]
    key_positions: torch.Tensor  # [batch, n_keys]
    prompt_lengths: torch.Tensor  # [batch]
    pos_axis: int = 1
    cross_attention: bool = False

    @property
    def is_prompt(self) -> bool:
        """The prompt pass of a generation, or a plain forward pass."""
        return self.step is None or self.step == 0

    def where(self, position: int) -> torch.Tensor:
        """``[batch, n]`` mask of the indices holding absolute ``position`` (negative: from the
        end of each row's prompt, ``-1`` = last prompt token)."""
        if position < 0:
            target = (self.prompt_lengths + position).unsqueeze(1)  # [batch, 1]
            return (self.positions == target) & (target >= 0)
        return self.positions == position

    def generated(self) -> torch.Tensor:
        """``[batch, n]`` mask of the indices holding generated (not prompt) tokens."""
        return self.positions >= self.prompt_lengths.unsqueeze(1)


HookFn = Callable[[torch.Tensor, HookContext], "torch.Tensor | None"]


# ---------------------------------------------------------------------------------- the rule
def is_transformer_lens_hook(fn: Callable) -> bool:
    """Whether ``fn`` is called TransformerLens's way, ``fn(tensor, hook=hook_point)``: its
    second parameter is named ``hook`` or annotated ``HookPoint``, or it takes ``**kwargs``
    after the tensor. A second parameter annotated ``HookContext`` (or any other name) means
    ``fn(activation, ctx)``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: the lensnb form
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2:
        second = positional[1]
        note = second.annotation
        if note is not inspect.Parameter.empty:
            text = note if isinstance(note, str) else getattr(note, "__name__", repr(note))
            if "HookContext" in text:
                return False
            if "HookPoint" in text:
                return True
        return second.name == "hook"
    return any(p.kind is p.VAR_KEYWORD for p in params)


def as_context_hook(fn: Callable, hook_points: Mapping[str, Any]) -> HookFn:
    """``fn`` in the lensnb form ``fn(activation, ctx)``: a TransformerLens-style function is
    called with the ``HookPoint`` named ``ctx.name`` (from ``hook_points``) instead."""
    if not is_transformer_lens_hook(fn):
        return fn

    def call(act: torch.Tensor, ctx: HookContext) -> torch.Tensor | None:
        return fn(act, hook=hook_points[ctx.name])

    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call


# ---------------------------------------------------------------------------- a plain forward
def forward_context(name: str, act: torch.Tensor, *,
                    cross_layers: Collection[int] = ()) -> HookContext:
    """The context of ``name`` in a plain forward pass: ``step=None``, positions ``0..n-1``
    along the position axis (keys ``0..n_keys-1`` for attention maps, image tokens in a
    cross-attention layer)."""
    axis = position_axis(name) if act.ndim > position_axis(name) else min(1, act.ndim - 1)
    batch, n = act.shape[0], act.shape[axis] if act.ndim > 1 else 1
    positions = torch.arange(n, device=act.device).expand(batch, n)
    keys = positions
    if axis == 2:
        keys = torch.arange(act.shape[-1], device=act.device).expand(batch, act.shape[-1])
    layer = layer_of(name)
    return HookContext(name=name, layer=layer, step=None, positions=positions,
                       key_positions=keys,
                       prompt_lengths=torch.full((batch,), n, device=act.device),
                       pos_axis=axis,
                       cross_attention=axis == 2 and layer in set(cross_layers))


def forward_hook(fn: HookFn, *, cross_layers: Collection[int] = (),
                 name: str | Callable[[Any], str] | None = None) -> Callable:
    """A TransformerLens hook ``(tensor, hook) -> tensor | None`` that calls the lensnb hook
    ``fn(activation, ctx)`` with the plain-forward ``forward_context``. ``name``: what
    ``ctx.name`` says (the name the hook was asked for, or a function of the ``HookPoint``);
    default the ``HookPoint``'s own name."""

    def hook(tensor: torch.Tensor, hook: Any) -> torch.Tensor | None:
        said = hook.name if name is None else name if isinstance(name, str) else name(hook)
        return fn(tensor, forward_context(said, tensor, cross_layers=cross_layers))

    return hook
