"""``patch`` and ``patchscope``: position-aware hooks (``hook_context``) and the Patchscopes
procedure built on generation.

``patchscope`` moves a hidden state from one run into another while generating. ``HookContext``
lives in ``hook_context``, ``patch`` and ``Patch`` in ``patch`` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..core.errors import InputError, InputTypeError
from ..core.indices import check_index
from .generation import Generation, generate
from .hook_context import ATTENTION_MAP_HOOKS, HookContext, HookFn, PatchValue, position_axis
from .patch import Patch, patch

if TYPE_CHECKING:
    from ..lens import Lens

__all__ = ["ATTENTION_MAP_HOOKS", "IDENTITY_PROMPT", "HookContext", "HookFn", "Patch",
           "PatchValue", "PatchscopeResult", "patch", "patchscope", "position_axis"]

#: The Patchscopes paper's "identity" target prompt ("cat -> cat; 1135 -> 1135; hello -> hello; ?"),
#: code-flavoured for a model trained on Python: a few "self.name = name" lines whose last token
#: "x" is overwritten by the patched hidden state, so the model continues with " = <what it
#: encodes>". On the demo model, block 0-1 states of "path" come back as " = path".
IDENTITY_PROMPT = ("        self.name = name\n        self.value = value\n"
                   "        self.path = path\n        self.x")


@dataclass
class PatchscopeResult:
    """What a patchscope produced: the target's continuation and what was moved."""

    text: str
    source_vector: torch.Tensor  # [d_model] as read from the source run
    injected: torch.Tensor  # [d_model_target] after the mapping
    generation: Generation
    source_name: str
    target_name: str

    def __repr__(self) -> str:
        return (f"PatchscopeResult({self.source_name} -> {self.target_name}: "
                f"{self.text!r})")


Mapping = Callable[[torch.Tensor], torch.Tensor] | torch.Tensor


def _check_prompt_position(lens: Lens, prompt: str, position: int, what: str) -> int:
    n = lens.to_tokens(prompt).shape[-1]
    return check_index(position, n, what, plural="positions", from_end=True,
                       why=f"it is outside the prompt: {prompt!r} has {n} tokens (BOS is 0)")


def patchscope(
    lens: Lens,
    source_prompt: str,
    source_layer: int,
    source_position: int,
    target_prompt: str = IDENTITY_PROMPT,
    target_layer: int = 0,
    target_position: int = -1,
    *,
    max_new_tokens: int = 8,
    hook: str = "hook_resid_post",
    target_lens: Lens | None = None,
    mapping: Mapping | None = None,
    **generate_kwargs: Any,
) -> PatchscopeResult:
    """Read ``hook`` of ``source_layer`` at ``source_position`` on ``source_prompt``, write it into
    ``target_prompt`` at ``target_layer``/``target_position`` and generate (Patchscopes,
    Ghandeharioun et al. 2024). The default target is the identity prompt ``IDENTITY_PROMPT``.

    Cross-model: pass ``target_lens`` (another model) and ``mapping``, a function
    ``[d_source] -> [d_target]`` or a matrix ``[d_source, d_target]`` (``h @ mapping``); without a
    mapping the widths must agree.
    """
    target_lens = lens if target_lens is None else target_lens
    source_name = lens.hook_name(hook, source_layer)
    target_name = target_lens.hook_name(hook, target_layer)
    src_pos = _check_prompt_position(lens, source_prompt, source_position, "source_position")
    _check_prompt_position(target_lens, target_prompt, target_position, "target_position")
    _, cache = lens.run_with_cache(source_prompt, names=[source_name])
    source = cache[source_name][0, src_pos].detach().clone()  # [d_model]
    injected = _apply_mapping(source, mapping, target_lens, target_lens is not lens)
    scope = patch(target_layer, hook, position=target_position, value=injected)
    out = generate(target_lens, target_prompt, max_new_tokens, hooks=[scope], **generate_kwargs)
    return PatchscopeResult(text=out.text, source_vector=source, injected=injected,
                            generation=out, source_name=source_name, target_name=target_name)


def _apply_mapping(h: torch.Tensor, mapping: Mapping | None, target: Lens,
                   cross: bool) -> torch.Tensor:
    d_target = target.facts.d_model
    if mapping is None:
        out = h
    elif isinstance(mapping, torch.Tensor):
        if mapping.ndim != 2 or mapping.shape[0] != h.shape[-1]:
            raise InputError(
                f"mapping matrix must be [d_source={h.shape[-1]}, d_target={d_target}], "
                f"got {tuple(mapping.shape)}"
            )
        out = h.to(mapping.dtype) @ mapping.to(h.device)
    elif callable(mapping):
        out = mapping(h)
    else:
        raise InputTypeError(f"mapping must be a callable or a matrix, got "
                             f"{type(mapping).__name__}")
    if out.shape[-1] != d_target:
        hint = " (pass mapping=...)" if cross and mapping is None else ""
        raise InputError(
            f"the injected vector has width {out.shape[-1]} but the target model's d_model is "
            f"{d_target}{hint}"
        )
    return out.to(target.device, target.dtype)
