"""Which attention a forward pass runs: the model's memory-efficient one unless a hook needs N².

TransformerLens's ``PositionEmbeddingsAttentionBridge`` re-implements attention step by step so
that ``hook_attn_scores`` and ``hook_pattern`` can fire: every layer builds its full
``[batch, n_heads, pos, pos]`` scores (34 GB for one layer of 8 heads at 32,768 tokens), even
when nobody asked for them. ``attention_for(lens, names)`` is the one switch lensnb's forward
passes go through (``Lens.__call__``, ``run_with_cache``, ``run_with_hooks``, ``KeptQK``):

- a call that hooks none of the N²-only hooks (``NEEDS_PATTERN``: patterns, scores, split
  q/k/v inputs, ...) runs each Hugging Face attention module itself with PyTorch's
  ``scaled_dot_product_attention`` (``"sdpa"``: logits equal HF's sdpa forward), firing
  ``hook_in``/``hook_out``, ``hook_cos``/``hook_sin``, the q/k/v/o projection hooks and
  ``hook_rot_q``/``hook_rot_k`` on the same tensors as the bridge would;
- a call that hooks one of them runs the bridge's eager re-implementation in every layer, as
  before, so those hooks see exactly what Hugging Face's eager attention computes (a hook
  added while the pass runs switches its layer back to eager too);
- before anything runs, a call whose hooks would build patterns too large for the free memory
  raises ``PatternMemoryError`` with the size it needs and the alternatives.

Logit soft-capping (Gemma 2), which sdpa cannot express, runs blockwise in the same memory
(``softcap.softcapped_attention``, HF eager's operations). Models with attention sinks, and
calls with split q/k/v inputs on, keep the eager path everywhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from ...core.errors import PatternMemoryError  # noqa: F401  (raised here)
from .qk_capture import fire_qkv_hooks, fire_rotary_hooks, hooked_silent, runs_natively
from .softcap import softcapped_attention

if TYPE_CHECKING:
    from ...lens import Lens

IMPLEMENTATION = "lensnb_sdpa"  # registered with transformers' attention + mask interfaces
# Hooks of an attention bridge that only its eager re-implementation fires.
NEEDS_PATTERN = ("hook_attn_scores", "hook_pattern", "hook_hidden_states", "hook_result",
                 "hook_attn_in", "hook_q_input", "hook_k_input", "hook_v_input",
                 "hook_q_normed", "hook_k_normed", "hook_q_gate", "hook_gate")
MEMORY_FRACTION = 0.8  # patterns may use at most this share of the memory free at call time
MEMORY_LIMIT_ENV = "LENSNB_PATTERN_MEMORY"  # bytes (or "none" for no check) instead of that
WORKING_COPIES = 3  # scores, masked scores and softmax of the layer being computed


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
def attention_bridges(lens: Lens) -> list[Any]:
    """The attention bridge of each layer ``[n_layers]`` (empty for a non-bridge model)."""
    return [getattr(block, "attn", None) for block in getattr(lens.bridge, "blocks", ())]


def _model_allows_sdpa(lens: Lens) -> bool:
    cfg = lens.bridge.cfg
    if not attention_bridges(lens) or any(getattr(cfg, flag, False) for flag in
           ("use_split_qkv_input", "use_attn_in", "use_attn_result")):
        return False
    return all(runs_natively(attn) for attn in attention_bridges(lens))


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


# ---------------------------------------------------------------------------- memory
def available_bytes(device: torch.device) -> int:
    """Memory free on ``device`` now (CUDA: ``mem_get_info``; CPU: available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil comes with ipython/accelerate
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def pattern_budget(device: torch.device) -> int | None:
    """Bytes patterns may take: ``$LENSNB_PATTERN_MEMORY`` if set (``none``: no limit), else
    ``MEMORY_FRACTION`` of the memory free now."""
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env:
        if env.strip().lower() == "none":
            return None
        try:
            return int(float(env))
        except ValueError:
            raise ValueError(f"${MEMORY_LIMIT_ENV} must be a number of bytes or 'none', "
                             f"got {env!r}") from None
    return int(available_bytes(device) * MEMORY_FRACTION)


def pattern_bytes(lens: Lens, batch: int, n_pos: int) -> int:
    """Bytes of one layer's full scores ``[batch, n_heads, pos, pos]`` in float32."""
    return batch * lens.n_heads * n_pos * n_pos * 4


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_pattern_memory(lens: Lens, names: Iterable[str], batch: int, n_pos: int,
                         cache: bool = False) -> None:
    """Raise ``PatternMemoryError`` if N²-only hooks ``names`` cannot run at this length.

    Need: ``WORKING_COPIES`` layers' ``[batch, n_heads, pos, pos]`` float32 (the layer being
    computed) plus, when ``cache``, one per cached ``hook_pattern``/``hook_attn_scores``.
    """
    names = sorted(names)
    if not names:
        return
    n_kept = sum(n.endswith(("hook_pattern", "hook_attn_scores")) for n in names) if cache else 0
    budget = pattern_budget(lens.device)
    one = pattern_bytes(lens, batch, n_pos)
    need = one * (WORKING_COPIES + n_kept)
    if budget is None or need <= budget:
        return
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise PatternMemoryError(
        f"{shown} need the full attention pattern at {n_pos:,} tokens: one layer's "
        f"[{batch}, {lens.n_heads}, {n_pos}, {n_pos}] float32 is {_gb(one)}, and this call "
        f"needs about {_gb(need)} ({WORKING_COPIES} working copies + {n_kept} kept), more "
        f"than the {_gb(budget)} it may use ({MEMORY_FRACTION:.0%} of the free memory; set "
        f"${MEMORY_LIMIT_ENV} to a number of bytes, or 'none', to change that). Instead: "
        f"lensnb.attention_patterns(lens, text, layers) gives exact rows, columns, blocks and "
        f"pooled overviews of any head without the full matrix, lensnb.AttentionExplorer shows "
        f"them, and residual-stream or q/k/v hooks run at any length."
    )


def pattern_hook_names(lens: Lens, keep: Callable[[str], bool]) -> list[str]:
    """The N²-only hook names ``keep`` selects."""
    return [n for n in lens.bridge.hook_dict
            if n.rsplit(".", 1)[-1] in NEEDS_PATTERN and keep(n)]


# ---------------------------------------------------------------------------- the switch
@contextlib.contextmanager
def attention_for(lens: Lens, names: Callable[[str], bool] | Iterable[str] = (),
                  tokens: torch.Tensor | None = None, *, cache: bool = False) -> Iterator[None]:
    """Run the forward passes inside with memory-efficient attention where no hook needs N².

    ``names``: the hook names (or a predicate over them) this call will hook, for the
    up-front memory check of pattern hooks (hooks already on the bridge are checked too);
    ``tokens`` ``[batch, pos]``: the input, for that check; ``cache``: whether the named
    hooks keep their tensors (``run_with_cache``). Re-entrant: an inner switch does nothing.
    """
    keep = names if callable(names) else set(names).__contains__
    wanted = pattern_hook_names(lens, keep)
    live = [f"blocks.{i}.attn.{n}" for i, a in enumerate(attention_bridges(lens))
            for n in _hooked(a)]
    if tokens is not None:
        batch, n_pos = tokens.shape[0], tokens.shape[-1]
        check_pattern_memory(lens, set(wanted) | set(live), batch, n_pos, cache)
    for attn in attention_bridges(lens):  # joint-QKV rotary bridges fire hook_rot_q/k too
        fire_rotary_hooks(attn)
    config = lens.hf_config
    before = config._attn_implementation
    if wanted or live or before == IMPLEMENTATION or not _model_allows_sdpa(lens):
        yield
        return
    _register()
    bridges = [a for a in attention_bridges(lens) if a is not None]
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
