"""Position-aware hooks: ``HookContext`` and ``patch``.

With a KV cache the prompt pass shows a hook ``[batch, prompt_len, d]`` and every later step
``[batch, 1, d]``; with left padding each row's tokens sit at different indices. A lensnb hook is
``fn(activation, ctx) -> activation | None`` where ``ctx`` (a ``HookContext``) says which step
this is and the absolute position of every index along the activation's position axis, per row.
``patch`` builds such a hook that writes a value at "absolute position p" on whichever step holds
it (``patching.patchscope`` builds on it).

Positions are counted per row from its first real token (BOS is 0), exactly like the
``position_ids`` the model sees, so they do not move with padding or with the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ..lens import Lens


# Hooks whose activation is [batch, n_heads, query_pos, key_pos]: the position axis is 2.
ATTENTION_MAP_HOOKS = ("hook_pattern", "hook_attn_scores")


def position_axis(name: str) -> int:
    """Axis of ``name``'s activation that runs over (query) positions."""
    return 2 if name.endswith(ATTENTION_MAP_HOOKS) else 1


@dataclass
class HookContext:
    """What a hook sees besides the tensor. It also stands in for TransformerLens's ``hook``
    argument (``ctx.name`` works the same).

    Attributes:
        name: the hook name (TransformerLens's, e.g. ``blocks.2.hook_resid_post``).
        layer: the block index, or ``None`` outside the blocks.
        step: 0 for the prompt pass, ``k`` for the pass that feeds the ``k``-th generated token.
        positions: ``[batch, n]`` absolute position of each index along the position axis,
            ``-1`` for left padding.
        key_positions: ``[batch, n_keys]`` absolute positions of every key (cache + new), ``-1``
            for padding; the last axis of ``hook_pattern``/``hook_attn_scores``. In a
            cross-attention layer (Llama 3.2 Vision) the keys are image tokens and this is
            their index ``0..image_tokens-1``.
        prompt_lengths: ``[batch]`` real (unpadded) prompt length of each row.
        pos_axis: the activation's position axis (1, or 2 for attention maps).
        cross_attention: whether this is a cross-attention map (text queries, image keys).
    """

    name: str
    layer: int | None
    step: int
    positions: torch.Tensor  # [batch, n]
    key_positions: torch.Tensor  # [batch, n_keys]
    prompt_lengths: torch.Tensor  # [batch]
    pos_axis: int = 1
    cross_attention: bool = False

    @property
    def is_prompt(self) -> bool:
        return self.step == 0

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
PatchValue = torch.Tensor | float | Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Patch:
    """A hook that overwrites one hook's activation at chosen absolute positions.

    Build with ``lensnb.patch``; pass in ``hooks=[...]`` to ``lens.generate``/``lens.steps``.
    """

    layer: int | None
    hook: str
    value: PatchValue
    position: int | Sequence[int] | None = None
    every_generated: bool = False
    name: str = field(default="", init=False)

    def positions(self) -> list[int]:
        if self.position is None:
            return []
        if isinstance(self.position, int):
            return [self.position]
        return [int(p) for p in self.position]

    def resolve(self, lens: Lens) -> Patch:
        """Check the hook name and layer against ``lens`` (raises with suggestions)."""
        self.name = lens.hook_name(self.hook, self.layer)
        return self

    def check_positions(self, prompt_lengths: Sequence[int], max_new_tokens: int) -> None:
        """Every position must be reachable: inside the prompt, or a generated position."""
        shortest = min(prompt_lengths)
        longest = max(prompt_lengths) + max_new_tokens
        for p in self.positions():
            if p < -shortest or p >= longest:
                raise IndexError(
                    f"patch position {p} is outside the sequence: the prompt has "
                    f"{shortest} tokens (positions 0..{shortest - 1}, or -1..-{shortest} from "
                    f"its end) and generation reaches position {longest - 1}"
                )

    def __call__(self, act: torch.Tensor, ctx: HookContext) -> torch.Tensor | None:
        mask = torch.zeros_like(ctx.positions, dtype=torch.bool)  # [batch, n]
        for p in self.positions():
            mask |= ctx.where(p)
        if self.every_generated:
            mask |= ctx.generated()
        if not bool(mask.any()):
            return None
        moved = act.movedim(ctx.pos_axis, 1).clone()  # [batch, n, ...]
        rows, idx = mask.nonzero(as_tuple=True)
        old = moved[rows, idx]  # [k, ...]
        # a value made elsewhere (CPU tensor, Colab GPU lens) lands on the activation's device
        moved[rows, idx] = self._new_value(old, rows, act.shape[0]).to(old.device, old.dtype)
        return moved.movedim(1, ctx.pos_axis)

    def _new_value(self, old: torch.Tensor, rows: torch.Tensor, batch: int) -> torch.Tensor:
        if callable(self.value) and not isinstance(self.value, torch.Tensor):
            return self.value(old)
        value = torch.as_tensor(self.value, device=old.device)
        if value.ndim == old.ndim and value.shape[0] == batch and batch > 1:
            value = value.to(old.device)[rows]  # one value per row
        try:
            return torch.broadcast_to(value, old.shape)
        except RuntimeError as err:
            raise ValueError(
                f"patch value of shape {tuple(value.shape)} does not fit {self.name!r} at one "
                f"position, shape {tuple(old.shape[1:])} (or [batch, ...] per row)"
            ) from err


def patch(layer: int | None, hook: str, *, value: PatchValue,
          position: int | Sequence[int] | None = None, every_generated: bool = False) -> Patch:
    """Overwrite ``hook`` of block ``layer`` at absolute ``position`` with ``value``.

    Args:
        layer: block index (negative from the end), or ``None`` with a full hook name.
        hook: ``"hook_resid_post"``, ``"attn.hook_z"``, ... or a full name.
        value: a tensor of the activation's shape at one position (``[d_model]`` for the
            residual stream, ``[n_heads, d_head]`` for ``hook_z``), or ``[batch, ...]`` one per
            row, or a scalar, or a function ``old -> new`` of the ``[k, ...]`` slice.
        position: absolute position(s) (BOS is 0; negative counts from the prompt's end). Patched
            on whichever step holds it: the prompt pass, or the step that feeds that token.
        every_generated: also patch every generated position (steering).

        ``lens.generate("def f(x):", 8, hooks=[lensnb.patch(2, "hook_resid_post", position=3,
        value=v)])``
    """
    if position is None and not every_generated:
        raise ValueError("patch needs a position, every_generated=True, or both")
    return Patch(layer=layer, hook=hook, value=value, position=position,
                 every_generated=every_generated)


# ---------------------------------------------------------------------------------- patchscopes
