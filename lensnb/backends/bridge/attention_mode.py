"""Which attention a forward pass runs: the model's memory-efficient one unless a hook needs N².

TransformerLens's ``PositionEmbeddingsAttentionBridge`` re-implements attention step by step so
that ``hook_attn_scores`` and ``hook_pattern`` can fire: every layer builds its full
``[batch, n_heads, pos, pos]`` scores (34 GB for one layer of 8 heads at 32,768 tokens), even
when nobody asked for them. ``attention_for(model, names)`` is the one switch lensnb's forward
passes go through on a bridge (``Lens.attention``: ``Lens.__call__``, ``run_with_cache``,
``run_with_hooks``, ``KeptQK``):

- a call that hooks none of the N²-only hooks (``NEEDS_PATTERN``: patterns, scores, split
  q/k/v inputs, ...) runs each Hugging Face attention module itself with PyTorch's
  ``scaled_dot_product_attention`` (``"sdpa"``: logits equal HF's sdpa forward), firing
  ``hook_in``/``hook_out``, ``hook_cos``/``hook_sin``, the q/k/v/o projection hooks and
  ``hook_rot_q``/``hook_rot_k`` on the same tensors as the bridge would;
- a call that hooks one of them runs the bridge's eager re-implementation in every layer, as
  before, so those hooks see exactly what Hugging Face's eager attention computes (a hook
  added while the pass runs switches its layer back to eager too);
- before anything runs, a call whose hooks would build patterns too large for the free memory
  raises ``PatternMemoryError`` with the size it needs and the alternatives
  (``backends.attention_memory``, shared by every backend).

Logit soft-capping (Gemma 2), which sdpa cannot express, runs blockwise in the same memory
(``softcap.softcapped_attention``, HF eager's operations). Models with attention sinks, and
calls with split q/k/v inputs on, keep the eager path everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from ..attention_memory import attention_modules as attention_bridges
from ..attention_memory import check
from .qk_capture import fire_qkv_hooks, fire_rotary_hooks, hooked_silent, runs_natively
from .softcap import softcapped_attention

IMPLEMENTATION = "lensnb_sdpa"  # registered with transformers' attention + mask interfaces


_active: dict[int, Any] = {}  # id(HF attention module) -> its bridge, while a switch is on


def _sdpa_with_hooks(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, attention_mask: torch.Tensor | None,
                     **kwargs: Any) -> tuple[torch.Tensor, None]:
    """HF's sdpa attention, firing first the bridge's q/k/v hooks that only the bridge has
    (``qk_capture.fire_qkv_hooks``: ``hook_rot_q``/``hook_rot_k``, and ``hook_q/k/v`` of a
    bridge that splits a fused projection itself).

    query ``[batch, n_heads, q_pos, d_head]``, key/value ``[batch, n_kv, kv_pos, d_head]``
    (rotated; with a KV cache the keys include the cached positions, of which only the new
    ``q_pos`` ones are hooked, as in the bridge).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    bridge = _active.get(id(module))
    if bridge is not None:
        query, key, value = fire_qkv_hooks(bridge, query, key, value)
    if kwargs.get("softcap"):  # Gemma 2: sdpa has no soft-cap; HF eager's numbers, blockwise
        return softcapped_attention(module, query, key, value, attention_mask, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, _sdpa_with_hooks)
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


# ---------------------------------------------------------------------------- which layers
def _model_allows_sdpa(model: Any) -> bool:
    cfg = model.cfg
    if not attention_bridges(model) or any(getattr(cfg, flag, False) for flag in
           ("use_split_qkv_input", "use_attn_in", "use_attn_result")):
        return False
    return all(runs_natively(attn) for attn in attention_bridges(model))


def _hooked(attn: Any) -> list[str]:
    """The hooks of one attention bridge that only its own attention fires (the N²-only ones,
    and the parts of a fused projection HF's module never calls) with a hook on them now."""
    return hooked_silent(attn)


def _native_forward(attn: Any) -> Callable[..., Any]:
    """A forward for ``attn`` that runs HF's module with sdpa unless an N² hook is hooked."""
    eager = type(attn).forward.__get__(attn)

    def forward(*args: Any, **kwargs: Any) -> Any:
        if _hooked(attn):
            return eager(*args, **kwargs)
        if "hidden_states" in kwargs:
            hidden = kwargs.pop("hidden_states")
        else:
            hidden, args = args[0], args[1:]
        hidden = attn.hook_in(hidden)
        pos = kwargs.pop("position_embeddings", None)
        if pos is not None:
            pos = attn._apply_position_embedding_hooks(pos)
        out, weights = attn.original_component(hidden, *args, position_embeddings=pos, **kwargs)
        return attn.hook_out(out), weights

    return forward


# ---------------------------------------------------------------------------- the switch
@contextlib.contextmanager
def attention_for(model: Any, names: Callable[[str], bool] | Iterable[str] = (),
                  tokens: torch.Tensor | None = None, *, cache: bool = False) -> Iterator[None]:
    """Run the forward passes of the bridge ``model`` inside with memory-efficient attention
    where no hook needs N² (the bridge backend's ``Backend.attention``).

    ``names``: the hook names (or a predicate over them) this call will hook, for the
    up-front memory check of pattern hooks (``attention_memory.check``; hooks already on the
    bridge are checked too); ``tokens`` ``[batch, pos]``: the input, for that check; ``cache``:
    whether the named hooks keep their tensors (``run_with_cache``). Re-entrant: an inner
    switch does nothing.
    """
    keep = names if callable(names) else set(names).__contains__
    wanted, live = check(model, keep, tokens, cache)
    for attn in attention_bridges(model):  # joint-QKV rotary bridges fire hook_rot_q/k too
        fire_rotary_hooks(attn)
    config = model.original_model.config
    before = config._attn_implementation
    if wanted or live or before == IMPLEMENTATION or not _model_allows_sdpa(model):
        yield
        return
    _register()
    bridges = [a for a in attention_bridges(model) if a is not None]
    for attn in bridges:
        object.__setattr__(attn, "forward", _native_forward(attn))  # the bridge forwards setattr
        _active[id(attn.original_component)] = attn
    config._attn_implementation = IMPLEMENTATION
    try:
        yield
    finally:
        config._attn_implementation = before
        for attn in bridges:
            attn.__dict__.pop("forward", None)
            _active.pop(id(attn.original_component), None)
