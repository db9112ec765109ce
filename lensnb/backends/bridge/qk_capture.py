"""Queries and keys as each layer's attention uses them, on every TransformerLens attention bridge.

``KeptQK`` (``lensnb.attention_patterns``, the explorer, ``long_context_profile``) recomputes
patterns from q and k exactly as the softmax sees them: rotated where the model rotates (all of
each head, or the first ``rotary_dim`` dims with the rest passed through), after q/k norms, and
as they are where positions are absolute (GPT-2). ``layer_qk`` declares, per layer, the two hook
names that carry them and the rest of the softmax (scaling, soft-cap, sliding window):

- a rotary bridge: ``hook_rot_q`` / ``hook_rot_k`` (after RoPE, after q/k norms);
- a bridge without rotary (GPT-2): ``hook_q`` / ``hook_k`` (q and k are used as projected).

Both must fire on every path a forward pass can take; this module makes them:

- the memory-efficient path (``attention_mode``: Hugging Face's own attention module with
  sdpa) runs ``fire_qkv_hooks`` inside the attention function, on the query/key/value the
  module hands it: ``hook_rot_q/k`` where the bridge has them, and ``hook_q/k/v`` where the
  bridge splits a fused projection itself (GPT-2's ``c_attn``, NeoX's ``query_key_value``,
  Phi-3's ``qkv_proj``), so those hooks exist only in the bridge;
- the bridge's own attention (``hook_pattern`` hooked, split QKV on, soft-capped scores):
  TransformerLens's ``PositionEmbeddingsAttentionBridge`` fires ``hook_rot_q/k`` itself; its
  joint-QKV bridge with rotary (NeoX, Phi-3) declares them but never fires them, so
  ``fire_rotary_hooks`` wraps that bridge's RoPE step to fire them there too.

``silent_hooks`` lists the hooks of a bridge that the memory-efficient path cannot fire (the
pattern, the scores, split q/k/v inputs, and the parts of a fused projection HF's module never
calls): hooking one of them runs that layer through the bridge's own attention instead.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch

from ..qk import LayerQK, hooked_layer_qk

_SUBMODULES = ("q", "k", "v", "o", "qkv", "q_norm", "k_norm")  # an attention bridge's parts
# q/k norms see [batch, n_heads, pos, d_head] in the bridge's own attention, but whatever layout
# the HF module gives them natively (Qwen3: [batch, pos, n_heads, d_head]): hooked, they run the
# bridge's attention, so a hook sees one shape whichever path runs
_BRIDGE_LAYOUT = ("q_norm", "k_norm")
_QKV = ("q", "k", "v")
_ROPE_HOOKS = {"q": "hook_rot_q", "k": "hook_rot_k"}
_silent: weakref.WeakKeyDictionary[Any, list[tuple[str, Any]]] = weakref.WeakKeyDictionary()


def native_kinds() -> tuple[type, ...]:
    """TransformerLens attention bridges whose Hugging Face module computes attention through
    transformers' attention interface, which the memory-efficient path swaps for sdpa."""
    from transformer_lens.model_bridge.generalized_components import (
        joint_qkv_attention,
        position_embeddings_attention,
    )

    return (position_embeddings_attention.PositionEmbeddingsAttentionBridge,
            joint_qkv_attention.JointQKVAttentionBridge)


def runs_natively(attn: Any) -> bool:
    """Whether attention bridge ``attn`` can run its Hugging Face module memory-efficiently: a
    native kind, with no attention sinks (a logit soft-cap runs blockwise: ``softcap.py``), and
    computing with the weights the bridge does. A joint-QKV bridge keeps its own copies of the
    q/k/v parts of the fused projection, which compatibility mode processes (folded norms,
    centred weights) while HF's fused module keeps the raw ones: there it runs its own
    attention."""
    from transformer_lens.model_bridge.generalized_components import joint_qkv_attention

    hf = getattr(attn, "original_component", None)
    copies = isinstance(attn, joint_qkv_attention.JointQKVAttentionBridge)
    return (isinstance(attn, native_kinds()) and hf is not None
            and not (copies and getattr(attn, "compatibility_mode", False))
            and getattr(hf, "sinks", None) is None)


def _called_by_hf(attn: Any, part: Any) -> bool:
    """Whether the HF attention module calls bridge component ``part`` itself (it replaced one
    of the module's children), so the part's hooks fire on the memory-efficient path."""
    hf = getattr(attn, "original_component", None)
    return hf is not None and any(child is part for child in hf.children())


def _parts(attn: Any) -> dict[str, Any]:
    return {n: p for n in _SUBMODULES if (p := getattr(attn, n, None)) is not None}


def _fired_by_attention_function(attn: Any) -> dict[str, str]:
    """``{"q"|"k"|"v": hook attribute}`` that ``fire_qkv_hooks`` fires for ``attn``:
    ``hook_rot_q/k`` on a rotary bridge, else the part's ``hook_out`` where HF's module does
    not call that part (a projection the bridge split off a fused one)."""
    out = {}
    parts = _parts(attn)
    for which in _QKV:
        if which in _ROPE_HOOKS and hasattr(attn, _ROPE_HOOKS[which]):
            out[which] = _ROPE_HOOKS[which]
        elif which in parts and not _called_by_hf(attn, parts[which]):
            out[which] = f"{which}.hook_out"
    return out


def silent_hooks(attn: Any) -> list[tuple[str, Any]]:
    """``(name, HookPoint)`` of the hooks of attention bridge ``attn`` (names relative to it)
    that the memory-efficient path never fires: hooking one runs the bridge's own attention."""
    if attn in _silent:
        return _silent[attn]
    from transformer_lens.hook_points import HookPoint

    fired = {"hook_in", "hook_out", "hook_cos", "hook_sin",
             *_fired_by_attention_function(attn).values()}
    hooks = [(n, m) for n, m in vars(attn)["_modules"].items() if isinstance(m, HookPoint)]
    for name, part in _parts(attn).items():
        every = [(f"{name}.{n}", m) for n, m in part.named_modules() if isinstance(m, HookPoint)]
        hooks += [] if _called_by_hf(attn, part) and name not in _BRIDGE_LAYOUT else every
    silent = [(n, m) for n, m in hooks if n not in fired]
    _silent[attn] = silent
    return silent


def hooked_silent(attn: Any) -> list[str]:
    """The silent hooks of ``attn`` with a hook on them right now."""
    if attn is None:
        return []
    return [n for n, hp in silent_hooks(attn) if len(hp._forward_hooks)]


def _fire(hook: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor, n_new: int,
          flat: bool) -> torch.Tensor:
    """Run ``hook`` on the last ``n_new`` positions of ``t`` ``[batch, heads, pos, d_head]``
    (with a KV cache the earlier ones were hooked when they were new), as the hook point
    expects it: per head (``hook_rot_*``: its own conversion transposes) or, for a
    projection's ``hook_out``, flat ``[batch, pos, heads * d_head]``."""
    new = t[..., -n_new:, :]
    if flat:
        b, h, p, d = new.shape
        new = hook(new.transpose(1, 2).reshape(b, p, h * d)).view(b, p, h, d).transpose(1, 2)
    else:
        new = hook(new)
    return new if new.shape[-2] == t.shape[-2] else torch.cat([t[..., :-n_new, :], new], dim=-2)


def fire_qkv_hooks(attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inside the memory-efficient attention function: fire the q/k/v hooks of ``attn`` that
    exist only in the bridge, on what HF's module hands the attention (query ``[batch,
    n_heads, q_pos, d_head]``, key/value ``[batch, n_kv, kv_pos, d_head]``, keys including
    cached positions), and return what the hooks made of them."""
    n_new = query.shape[-2]
    tensors = {"q": query, "k": key, "v": value}
    for which, name in _fired_by_attention_function(attn).items():
        owner, _, attr = name.rpartition(".")
        point = getattr(getattr(attn, owner) if owner else attn, attr)
        tensors[which] = _fire(point, tensors[which], n_new, flat=bool(owner))
    return tensors["q"], tensors["k"], tensors["v"]


def fire_rotary_hooks(attn: Any) -> None:
    """Make a joint-QKV rotary bridge (GPT-NeoX, Phi-3) fire ``hook_rot_q``/``hook_rot_k`` in
    its own attention, after its RoPE step, as TransformerLens's position-embedding bridge
    does (it declares them but never fires them). Idempotent; other bridges are left alone."""
    from transformer_lens.model_bridge.generalized_components import (
        joint_qkv_position_embeddings_attention as joint_rope,
    )

    if (not isinstance(attn, joint_rope.JointQKVPositionEmbeddingsAttentionBridge)
            or "_apply_rotary_pos_emb" in vars(attn) or not hasattr(attn, "hook_rot_q")):
        return
    rotate = type(attn)._apply_rotary_pos_emb.__get__(attn)

    def rotate_and_hook(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor,
                        sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k = rotate(q, k, cos, sin)  # [batch, heads, pos, d_head], new positions only
        return attn.hook_rot_q(q), attn.hook_rot_k(k)

    object.__setattr__(attn, "_apply_rotary_pos_emb", rotate_and_hook)  # not a submodule


# ---------------------------------------------------------------------------- declaration
def layer_qk(model: Any, layer: int) -> LayerQK:
    """How layer ``layer`` of a bridge turns queries and keys into its pattern: the hooks that
    carry q ``[batch, pos, n_heads, d_head]`` and k ``[batch, pos, n_kv, d_head]`` as the
    softmax uses them (``hook_rot_q/k`` with RoPE, else ``hook_q/k``), and its scaling,
    soft-cap and sliding window (``qk.read_layer_attention``)."""
    attn = model.blocks[layer].attn
    fire_rotary_hooks(attn)
    if hasattr(attn, "hook_rot_q"):
        return hooked_layer_qk(model, layer)
    return hooked_layer_qk(model, layer, "hook_q", "hook_k")
