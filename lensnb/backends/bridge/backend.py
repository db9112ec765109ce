"""The TransformerBridge backend as the registry lists it: every architecture TransformerLens has
an adapter for, loaded through ``TransformerBridge.boot_transformers``.

The architectures are read through TransformerLens's public API only: its table of native
adapters (``SUPPORTED_ARCHITECTURES``), the adapters installed packages declare under the
``transformer_lens.architectures`` entry-point group (which TransformerLens loads itself), and
those registered through ``register_adapter`` below (which calls TransformerLens's public
``ArchitectureAdapterFactory.register_adapter``).
"""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any

import torch

from .. import kv_cache
from ..contract import Backend, Capabilities
from .attention_mode import attention_for
from .fast_path import fast_path
from .loading import load, own_tokenizer, wrap_module
from .qk_capture import layer_qk, runs_natively

#: What a bridge can do at most; ``capabilities_of`` narrows it to one model.
CAPABILITIES = Capabilities(
    split_qkv=True,  # where TransformerLens's attention bridge forks per-head q/k/v inputs
    compatibility_mode=True,
    fast_path=True,  # where the adapter's components map onto the HF model (``fast_path``)
    sdpa_switch=True,  # where every layer's HF attention can run memory-efficiently (no sinks)
    direct_logit_attribution=True,  # where every layer's heads write through a linear W_O
    rope=True,  # where every layer rotates q and k (all dims or a leading part)
    rope_frequency_usage=True,
    stop_at_layer=True,
    cross_attention=False,
    images=False,
    text_only=False,
    owns_tokenization=False,
    own_decoding=False,  # a transformers DynamicCache through the HF model's forward
)

ENTRY_POINT_GROUP = "transformer_lens.architectures"
_REGISTERED: dict[str, type] = {}  # adapters registered through lensnb, by architecture


def register_adapter(architecture: str, adapter_class: type) -> None:
    """Make ``architecture`` (a Hugging Face class name, e.g. ``"MyModelForCausalLM"``) loadable
    through a TransformerLens ``ArchitectureAdapter`` subclass: TransformerLens's public
    ``ArchitectureAdapterFactory.register_adapter``, recorded so ``supported_architectures()``
    lists it."""
    from transformer_lens.factories.architecture_adapter_factory import (
        ArchitectureAdapterFactory,
    )

    ArchitectureAdapterFactory.register_adapter(architecture, adapter_class)
    _REGISTERED[architecture] = adapter_class


def architectures() -> list[str]:
    """The architectures TransformerLens can bridge: its native adapters, entry-point adapters
    of installed packages, and those given to ``register_adapter``."""
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    names = set(SUPPORTED_ARCHITECTURES) | set(_REGISTERED)
    names |= {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names)


def capabilities_of(model: Any) -> Capabilities:
    """What one bridged model can do, read off its attention bridges (TransformerLens's
    components, not the model's class): per-head q/k/v inputs where the bridge forks them,
    sdpa where HF's attention allows it, RoPE where the bridge rotates (``hook_rot_q``), direct
    logit attribution where each layer's heads write through a linear ``W_O``."""
    from transformers.pytorch_utils import Conv1D

    attns = [getattr(block, "attn", None) for block in getattr(model, "blocks", ())]
    every = bool(attns) and all(a is not None for a in attns)
    rotary = every and all(hasattr(a, "hook_rot_q") for a in attns)
    d_head = getattr(getattr(model, "cfg", None), "d_head", None)
    k_norms = [getattr(getattr(a, "k_norm", None), "original_component",
                       getattr(a, "k_norm", None)) for a in attns if a is not None]
    shared_k_norm = any(getattr(n, "weight", None) is not None and n.weight.numel() != d_head
                        for n in k_norms)
    per_head_out = every and all(
        isinstance(getattr(getattr(a, "o", None), "original_component", None),
                   (torch.nn.Linear, Conv1D)) for a in attns)
    return replace(
        CAPABILITIES,
        split_qkv=every and all(getattr(a, "supports_split_qkv_fork", False)
                                and hasattr(a, "hook_q_input") for a in attns),
        sdpa_switch=every and all(runs_natively(a) for a in attns),  # (compatibility mode too)
        direct_logit_attribution=per_head_out,
        rope=rotary,
        rope_frequency_usage=rotary,
        shared_k_norm=shared_k_norm,
    )


def _owns(model: Any) -> bool:
    from transformer_lens.model_bridge import TransformerBridge

    return isinstance(model, TransformerBridge)


def _final_modules(model: Any, compatibility: bool) -> tuple[Any, Any]:
    """The final norm and unembedding: the Hugging Face modules under the bridge (no hooks), or
    in compatibility mode the bridge's own (folded norm weights, centred unembedding)."""
    if compatibility:
        return model.ln_final, model.unembed
    return model.ln_final.original_component, model.unembed.original_component


BACKEND = Backend(
    name="bridge",
    kind="TransformerLens bridge lenses",
    capabilities=CAPABILITIES,
    architectures=architectures,
    load=load,
    wrap=wrap_module,
    owns=_owns,
    final_modules=_final_modules,
    new_cache=lambda model: kv_cache.new_cache(model.original_model.config),
    attention=attention_for,
    tokenizer=own_tokenizer,
    fast_path=fast_path,
    capabilities_of=capabilities_of,
    layer_qk=layer_qk,
)
