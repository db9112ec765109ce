"""The fast generation path: a plain Hugging Face module tree sharing the bridge's weight tensors
(no copy), with TransformerLens hook names mapped onto torch forward hooks of its modules.

Hooks whose TransformerLens name maps onto a Hugging Face module (residual stream, attention/MLP
outputs, q/k/v/z, norms, embed, unembed; ``fast_site``) become plain torch forward hooks,
registered only where a hook was asked for. Anything else (``hook_pattern``, ``hook_rot_q``)
exists only in the bridge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ...lens import Lens

# Families whose Hugging Face layout (model.layers.{i}.self_attn.q_proj, ...) the table below
# describes; tests check every entry against the bridge's own hooks.
FAST_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2"})

# TransformerLens hook name (per block, after "blocks.{i}.") -> (Hugging Face module path,
# "in" = the module's first input | "out" = its output, whether to view it per head).
_L = "model.layers.{i}"
_BLOCK_SITES: dict[str, tuple[str, str, bool]] = {
    "hook_resid_pre": (_L, "in", False),
    "hook_in": (_L, "in", False),
    "hook_resid_post": (_L, "out", False),
    "hook_out": (_L, "out", False),
    "ln1.hook_in": (f"{_L}.input_layernorm", "in", False),
    "ln1.hook_out": (f"{_L}.input_layernorm", "out", False),
    "attn.hook_q": (f"{_L}.self_attn.q_proj", "out", True),
    "attn.q.hook_out": (f"{_L}.self_attn.q_proj", "out", True),
    "attn.hook_k": (f"{_L}.self_attn.k_proj", "out", True),
    "attn.k.hook_out": (f"{_L}.self_attn.k_proj", "out", True),
    "attn.hook_v": (f"{_L}.self_attn.v_proj", "out", True),
    "attn.v.hook_out": (f"{_L}.self_attn.v_proj", "out", True),
    "attn.hook_z": (f"{_L}.self_attn.o_proj", "in", True),
    "attn.o.hook_in": (f"{_L}.self_attn.o_proj", "in", True),
    "hook_attn_out": (f"{_L}.self_attn.o_proj", "out", False),
    "attn.hook_out": (f"{_L}.self_attn.o_proj", "out", False),
    "attn.o.hook_out": (f"{_L}.self_attn.o_proj", "out", False),
    "hook_resid_mid": (f"{_L}.post_attention_layernorm", "in", False),
    "ln2.hook_in": (f"{_L}.post_attention_layernorm", "in", False),
    "ln2.hook_out": (f"{_L}.post_attention_layernorm", "out", False),
    "mlp.hook_in": (f"{_L}.mlp", "in", False),
    "mlp.hook_pre": (f"{_L}.mlp.gate_proj", "out", False),
    "mlp.gate.hook_out": (f"{_L}.mlp.gate_proj", "out", False),
    "mlp.hook_pre_linear": (f"{_L}.mlp.up_proj", "out", False),
    "mlp.in.hook_out": (f"{_L}.mlp.up_proj", "out", False),
    "mlp.hook_post": (f"{_L}.mlp.down_proj", "in", False),
    "mlp.out.hook_in": (f"{_L}.mlp.down_proj", "in", False),
    "hook_mlp_out": (f"{_L}.mlp", "out", False),
    "mlp.hook_out": (f"{_L}.mlp", "out", False),
    "mlp.out.hook_out": (f"{_L}.mlp", "out", False),
}
_GLOBAL_SITES: dict[str, tuple[str, str, bool]] = {
    "hook_embed": ("model.embed_tokens", "out", False),
    "embed.hook_out": ("model.embed_tokens", "out", False),
    "ln_final.hook_in": ("model.norm", "in", False),
    "ln_final.hook_out": ("model.norm", "out", False),
    "unembed.hook_in": ("lm_head", "in", False),
    "unembed.hook_out": ("lm_head", "out", False),
    "hook_unembed": ("lm_head", "out", False),
}


def fast_site(name: str) -> tuple[str, str, bool] | None:
    """The Hugging Face module, side and per-head view that TransformerLens hook ``name`` is,
    or ``None`` when only the bridge has it."""
    if name in _GLOBAL_SITES:
        return _GLOBAL_SITES[name]
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit():
        site = _BLOCK_SITES.get(parts[2])
        if site:
            return site[0].format(i=parts[1]), site[1], site[2]
    return None


def layer_of(name: str) -> int | None:
    parts = name.split(".", 2)
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit() else None


# ---------------------------------------------------------------------------- the plain HF model
def plain_model(lens: Lens) -> tuple[torch.nn.Module | None, str]:
    """A plain Hugging Face module tree sharing ``lens``'s weights (built once, cached on the
    lens), or ``(None, why not)``."""
    cached = lens.__dict__.get("_lensnb_plain_model")
    if cached is not None:
        return cached
    result = _build_plain_model(lens)
    lens.__dict__["_lensnb_plain_model"] = result
    return result


def _build_plain_model(lens: Lens) -> tuple[torch.nn.Module | None, str]:
    import accelerate
    from transformers import AutoModelForCausalLM

    config = lens.hf_config
    if lens.compatibility:
        return None, "compatibility mode changes the weights"
    if getattr(config, "model_type", None) not in FAST_MODEL_TYPES:
        return None, f"model type {getattr(config, 'model_type', None)!r} is not mapped"
    if len(set((getattr(lens.hf_model, "hf_device_map", None) or {0: 0}).values())) > 1:
        return None, "the model is split over several devices"
    shared: dict[str, torch.Tensor] = {}
    for n, p in lens.hf_model.named_parameters(remove_duplicate=False):
        shared.setdefault(n.replace("._original_component", ""), p)
    try:
        with accelerate.init_empty_weights():
            plain = AutoModelForCausalLM.from_config(
                config, attn_implementation=config._attn_implementation, dtype=lens.dtype)
    except Exception as err:  # an architecture AutoModel cannot build: use the bridge
        return None, f"cannot rebuild the Hugging Face model ({err})"
    own = dict(plain.named_parameters())
    missing = [k for k in own if k not in shared or shared[k].shape != own[k].shape]
    if missing:
        return None, f"weights not found in the bridge: {missing[:3]}"
    plain.load_state_dict({k: shared[k] for k in own}, assign=True, strict=False)
    plain.to(lens.device).eval()
    plain.generation_config = lens.hf_model.generation_config
    return plain, ""


def torch_hook(module: torch.nn.Module, side: str, heads: bool, d_head: int,
                run: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
    def view(t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (-1, d_head)) if heads else t  # [batch, pos, n_heads, d_head]

    def back(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(-2) if heads else t

    if side == "out":
        def out_hook(_m: Any, _args: Any, output: Any) -> Any:
            t = output[0] if isinstance(output, tuple) else output
            new = run(view(t))
            if new is None:
                return None
            return (back(new), *output[1:]) if isinstance(output, tuple) else back(new)

        return module.register_forward_hook(out_hook)

    def in_hook(_m: Any, args: tuple, kwargs: dict) -> Any:
        if args:
            new = run(view(args[0]))
            return None if new is None else ((back(new), *args[1:]), kwargs)
        new = run(view(kwargs["hidden_states"]))
        return None if new is None else (args, {**kwargs, "hidden_states": back(new)})

    return module.register_forward_pre_hook(in_hook, with_kwargs=True)

