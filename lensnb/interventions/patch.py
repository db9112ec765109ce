"""``Patch``: the one intervention object. ``lensnb.patch(layer, hook, value=..., position=...)``
overwrites a hook's activation at absolute positions, on whichever pass holds them.

A ``Patch`` is a lensnb hook (``fn(activation, ctx)``, see ``hook_context``), so the same object
works in ``lens.run_with_hooks(text, fwd_hooks=[p])``, ``lens.run_with_cache(text, hooks=[p])``,
``lens.generate(prompt, hooks=[p])``, ``lens.steps``, ``GenerationStepper.add_patch`` and, with
``head=``/``kv_group=``, on the split-QKV inputs (``lens.patch_kv_input`` is a ``Patch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..core.errors import InputError
from ..core.indices import check_index
from .hook_context import HookContext, PatchValue

if TYPE_CHECKING:
    from ..lens import Lens

# Hooks with a head axis (axis 2 once positions are moved to axis 1): per query head, or per
# key/value head (KV group). The split-QKV inputs are [batch, pos, heads, d_model].
QUERY_HEAD_HOOKS = ("hook_q_input", "hook_q", "hook_rot_q", "hook_z", "hook_pattern",
                    "hook_attn_scores", "q.hook_out", "o.hook_in")
KV_HEAD_HOOKS = ("hook_k_input", "hook_v_input", "hook_k", "hook_v", "hook_rot_k",
                 "k.hook_out", "v.hook_out")


def _ends(name: str, suffixes: Sequence[str]) -> bool:
    return name.endswith(tuple(f".{s}" for s in suffixes)) or name in suffixes


@dataclass
class Patch:
    """A hook that overwrites one hook's activation at chosen absolute positions (and, with
    ``head``/``kv_group``, one head's slice of it). Build with ``lensnb.patch``."""

    layer: int | None
    hook: str
    value: PatchValue
    position: int | Sequence[int] | None = None
    every_generated: bool = False
    every_position: bool = False
    head: int | None = None
    kv_group: int | None = None
    name: str = field(default="", init=False)
    _index: int | None = field(default=None, init=False, repr=False)
    _n_heads: int = field(default=0, init=False, repr=False)

    def positions(self) -> list[int]:
        if self.position is None:
            return []
        if isinstance(self.position, int):
            return [self.position]
        return [int(p) for p in self.position]

    def resolve(self, lens: Lens) -> Patch:
        """Check the hook name, layer and head/KV group against ``lens`` (raises with
        suggestions and the valid ranges)."""
        self.name = lens.hook_name(self.hook, self.layer)
        self._index = None
        if self.head is not None:
            if not _ends(self.name, QUERY_HEAD_HOOKS):
                hint = (" (its heads are KV groups: pass kv_group=)"
                        if _ends(self.name, KV_HEAD_HOOKS) else "")
                raise InputError(f"head= needs a hook with a query-head axis "
                                 f"({', '.join(QUERY_HEAD_HOOKS)}), got {self.name!r}{hint}")
            self._index = lens.kv_groups.check_head(self.head)
            self._n_heads = lens.n_heads
        elif self.kv_group is not None:
            if not _ends(self.name, KV_HEAD_HOOKS):
                hint = " (pass head= for a query head)" if _ends(
                    self.name, QUERY_HEAD_HOOKS) else ""
                raise InputError(f"kv_group= needs a hook with a key/value-head axis "
                                 f"({', '.join(KV_HEAD_HOOKS)}), got {self.name!r}{hint}")
            self._index = lens.kv_groups.check_kv_head(self.kv_group)
            self._n_heads = lens.n_key_value_heads
        return self

    def check_positions(self, prompt_lengths: Sequence[int], max_new_tokens: int = 0) -> None:
        """Every position must be reachable: inside the prompt, or a generated position."""
        shortest = min(prompt_lengths)
        longest = max(prompt_lengths) + max_new_tokens
        reach = (f"generation reaches position {longest - 1}" if max_new_tokens
                 else f"the longest row ends at position {longest - 1}")
        for p in self.positions():
            check_index(p, longest, "patch position", plural="positions", from_end=True,
                        n_back=shortest,
                        why=f"it is outside the sequence: the prompt has {shortest} tokens "
                            f"(positions 0..{shortest - 1}, or -1..-{shortest} from its end) "
                            f"and {reach}")

    # -------------------------------------------------------------------------- the hook
    def __call__(self, act: torch.Tensor, ctx: HookContext) -> torch.Tensor | None:
        if self.every_position:
            mask = ctx.positions >= 0  # [batch, n] every real (not padding) index
        else:
            mask = torch.zeros_like(ctx.positions, dtype=torch.bool)  # [batch, n]
            for p in self.positions():
                mask |= ctx.where(p)
            if self.every_generated:
                mask |= ctx.generated()
        if not bool(mask.any()):
            return None
        moved = act.movedim(ctx.pos_axis, 1).clone()  # [batch, n, ...]
        view = moved if self._index is None else self._head_view(moved)  # [batch, n, ...]
        rows, idx = mask.nonzero(as_tuple=True)
        if self.every_position:
            new = self._whole_value(view, ctx)[rows, idx]
        else:
            new = self._new_value(view[rows, idx], rows, view.shape[0])
        # a value made elsewhere (CPU tensor, Colab GPU lens) lands on the activation's device
        view[rows, idx] = new.to(view.device, view.dtype)
        return moved.movedim(1, ctx.pos_axis)

    def _head_view(self, moved: torch.Tensor) -> torch.Tensor:
        """``[batch, n, ...]`` view of head ``_index`` (heads on axis 2 of ``moved``)."""
        if moved.ndim < 3 or moved.shape[2] != self._n_heads:
            raise InputError(f"{self.name!r} has no axis of {self._n_heads} heads to pick "
                             f"{'head' if self.head is not None else 'KV group'} "
                             f"{self._index} from (activation {tuple(moved.shape)})")
        return moved.select(2, self._index)

    def _whole_value(self, view: torch.Tensor, ctx: HookContext) -> torch.Tensor:
        """The replacement of every index, ``[batch, n, ...]``: ``value(old)``, or a value
        broadcast to the activation; one with a position axis longer than this pass (a whole
        sequence's, during generation) is read at each index's absolute position."""
        if callable(self.value) and not isinstance(self.value, torch.Tensor):
            value = torch.as_tensor(self.value(view), device=view.device)
        else:
            value = torch.as_tensor(self.value, device=view.device)
        if value.ndim == view.ndim and value.shape[1] not in (1, view.shape[1]):
            at = ctx.positions.clamp(min=0)  # [batch, n]
            rows = torch.arange(view.shape[0], device=view.device)[:, None]
            value = value.expand(view.shape[0], *value.shape[1:])[rows, at]
        return self._fit(value, view.shape, f"shape {tuple(view.shape)} (anything broadcasting "
                                            "to it)")

    def _new_value(self, old: torch.Tensor, rows: torch.Tensor, batch: int) -> torch.Tensor:
        """The replacement of the chosen indices ``old [k, ...]``."""
        if callable(self.value) and not isinstance(self.value, torch.Tensor):
            return self.value(old)
        value = torch.as_tensor(self.value, device=old.device)
        if value.ndim == old.ndim and value.shape[0] == batch and batch > 1:
            value = value.to(old.device)[rows]  # one value per row
        return self._fit(value, old.shape, f"at one position, shape {tuple(old.shape[1:])} (or "
                                           "[batch, ...] per row)")

    def _fit(self, value: torch.Tensor, shape: torch.Size, allowed: str) -> torch.Tensor:
        """``value`` broadcast to ``shape``, or a ``ValueError`` saying what fits."""
        try:
            return torch.broadcast_to(value, shape)
        except RuntimeError as err:
            raise InputError(f"patch value of shape {tuple(value.shape)} does not fit "
                             f"{self.name!r}, {allowed}") from err


def patch(layer: int | None, hook: str, *, value: PatchValue,
          position: int | Sequence[int] | None = None, every_generated: bool = False,
          every_position: bool = False, head: int | None = None,
          kv_group: int | None = None) -> Patch:
    """Overwrite ``hook`` of block ``layer`` at absolute ``position`` with ``value``.

    The same ``Patch`` works in a forward pass and in generation::

        p = lensnb.patch(2, "hook_resid_post", position=3, value=v)
        lens.generate("def f(x):", 8, hooks=[p])
        lens.run_with_hooks("def f(x):", fwd_hooks=[p])

    Args:
        layer: block index (negative from the end), or ``None`` with a full hook name.
        hook: ``"hook_resid_post"``, ``"attn.hook_z"``, ``"attn.hook_k_input"``, ... or a full
            name.
        value: a tensor of the activation's shape at one position (``[d_model]`` for the
            residual stream, ``[n_heads, d_head]`` for ``hook_z``; ``[d_head]`` with
            ``head=``), or ``[batch, ...]`` one per row, or a scalar, or a function ``old -> new``
            of the ``[k, ...]`` stack of the chosen positions. With ``every_position=True``:
            anything broadcasting to the whole activation ``[batch, pos, ...]`` (a
            ``[batch, pos, ...]`` tensor is read at each absolute position), or a function of it.
        position: absolute position(s) (BOS is 0; negative counts from the prompt's end). Patched
            on whichever pass holds it: a forward pass, the prompt pass of a generation, or the
            step that feeds that token.
        every_generated: also patch every generated position (steering).
        every_position: patch the whole activation, every position of every pass.
        head: only query head ``head`` (hooks with a query-head axis: ``attn.hook_q_input``,
            ``attn.hook_z``, ``attn.hook_pattern``, ...).
        kv_group: only key/value head (KV group) ``kv_group`` (``attn.hook_k_input``,
            ``attn.hook_v_input``, ``attn.hook_k``, ``attn.hook_v``); exactly the query heads
            ``lens.heads_of_kv(kv_group)`` read it. Split-QKV inputs turn split QKV on for the run.
    """
    if position is None and not every_generated and not every_position:
        raise InputError("patch needs a position, every_generated=True, every_position=True, "
                         "or a position and every_generated=True")
    if every_position and (position is not None or every_generated):
        raise InputError("every_position=True already patches every position: drop position= "
                         "and every_generated=")
    if head is not None and kv_group is not None:
        raise InputError("pass head= (a query head) or kv_group= (a key/value head), not both")
    return Patch(layer=layer, hook=hook, value=value, position=position,
                 every_generated=every_generated, every_position=every_position, head=head,
                 kv_group=kv_group)
