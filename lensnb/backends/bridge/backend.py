"""The TransformerBridge backend as the registry lists it: every architecture TransformerLens has
an adapter for, loaded through ``TransformerBridge.boot_transformers``.

The architectures are read through TransformerLens's public API only: its table of native
adapters (``SUPPORTED_ARCHITECTURES``), the adapters installed packages declare under the
``transformer_lens.architectures`` entry-point group (which TransformerLens loads itself), and
those registered through ``register_adapter`` below (which calls TransformerLens's public
``ArchitectureAdapterFactory.register_adapter``).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .. import kv_cache
from ..contract import Backend, Capabilities
from .attention_mode import attention_for
from .fast_path import fast_path
from .loading import load, own_tokenizer, wrap_module

CAPABILITIES = Capabilities(
    split_qkv=True,
    compatibility_mode=True,
    fast_path=True,  # where the adapter's components map onto the HF model (``fast_path``)
    sdpa_switch=True,  # per layer, where TransformerLens's attention allows it
    direct_logit_attribution=True,  # RMSNorm models whose residual is a plain sum
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
)
