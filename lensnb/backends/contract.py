"""The backend contract: what a hooked model offers ``Lens`` and every feature above it.

A backend is a family of hooked models (TransformerLens's ``TransformerBridge``; lensnb's own
``HookedMllama`` for Llama 3.2 Vision). Each declares, in its own package, a ``Backend``: which
architectures it serves, how to load or wrap a model, and its ``Capabilities``. The registry
(``backends.registry``) lists the backends; ``lensnb.load`` asks it which one serves a config.

Every hooked model satisfies ``HookedModel`` (TransformerLens hook names and calls), so code
above this layer never asks *which* backend it has, only what it ``can`` do: features check
``lens.capabilities`` up front and raise ``UnsupportedFeatureError`` naming what to use instead
(``require``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import torch

from ..core.errors import UnsupportedFeatureError
from .qk import LayerQK, hooked_layer_qk


@runtime_checkable
class HookedModel(Protocol):
    """A model with TransformerLens hook points, as ``Lens.bridge`` holds it.

    ``TransformerBridge`` and ``HookedMllama`` both satisfy it (``isinstance`` checks the
    members are there; the signatures are TransformerLens's)."""

    cfg: Any  # n_layers, n_heads, d_model, ... (a TransformerLens config or a stand-in)
    original_model: torch.nn.Module  # the Hugging Face model (same weights)
    tokenizer: Any

    @property
    def hook_dict(self) -> Mapping[str, Any]:
        """Every hook name -> its ``HookPoint`` (aliases included)."""
        ...

    def forward(self, input: Any, *args: Any, **kwargs: Any) -> Any:
        """Logits ``[batch, pos, d_vocab]`` of token ids ``[batch, pos]``."""
        ...

    def run_with_hooks(self, input: Any, *args: Any, fwd_hooks: Sequence[tuple[Any, Callable]]
                       = (), **kwargs: Any) -> Any:
        """``forward`` with ``fwd_hooks = [(name | predicate, fn(tensor, hook)), ...]`` on."""
        ...

    def run_with_cache(self, input: Any, *args: Any, names_filter: Any = None,
                       **kwargs: Any) -> tuple[Any, Any]:
        """``(logits, ActivationCache)`` of the hooks ``names_filter`` keeps."""
        ...

    def hooks(self, fwd_hooks: Any = ..., *args: Any, **kwargs: Any
              ) -> contextlib.AbstractContextManager[Any]:
        """A context with ``fwd_hooks`` on, removed on exit."""
        ...

    def to_tokens(self, input: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Token ids ``[batch, pos]`` by the model's own rule (``Lens.to_tokens`` uses the
        Hugging Face tokenizer where the backend does not own tokenization)."""
        ...

    def check_hooks_to_add(self, hook_point: Any, hook_point_name: str, hook: Callable,
                           *args: Any, **kwargs: Any) -> None:
        """Raise where a hook cannot be added (a hook switched off by a flag never fires)."""
        ...


@dataclass(frozen=True)
class Capabilities:
    """What a backend's models can do; features check these before any forward pass.

    Each flag names a question the code branches on; ``require(flag, ...)`` raises
    ``UnsupportedFeatureError`` where it is ``False``."""

    #: per-head q/k/v inputs (``hook_q_input``/``hook_k_input``/``hook_v_input``, patching them)
    split_qkv: bool = False
    #: TransformerLens's compatibility mode (folded norms, centred weights)
    compatibility_mode: bool = False
    #: the fast generation path: a plain Hugging Face module tree with torch forward hooks
    fast_path: bool = False
    #: memory-efficient attention (SDPA) for layers whose pattern is not hooked
    sdpa_switch: bool = False
    #: direct logit attribution (the residual is the plain sum of heads, MLPs and the rest)
    direct_logit_attribution: bool = False
    #: rotary position embeddings (RopeSpectrum of the lens, RoPE wavelengths in profiles);
    #: partial rotary (GPT-NeoX, Phi-3) counts: the pairs it rotates, the rest passed through
    rope: bool = False
    #: per-head RoPE frequency usage (every layer is a RoPE self-attention layer)
    rope_frequency_usage: bool = False
    #: ``run_with_hooks(..., stop_at_layer=n)`` ends the forward after layer ``n - 1``
    stop_at_layer: bool = False
    #: some layers cross-attend (text -> image tokens): ``facts.cross_attention_layers``
    cross_attention: bool = False
    #: image inputs (a vision encoder): ``ImageAttention``, ``images=``, the stepper's ``image=``
    images: bool = False
    #: ``Lens.text_only()``: the language model alone, as a plain text model
    text_only: bool = False
    #: the backend tokenizes itself (its processor), not the Hugging Face tokenizer
    owns_tokenization: bool = False
    #: cached generation through the model's own decoding state (``new_cache()``,
    #: ``forward(ids, cache=...)``, ``final_modules()``) instead of a ``transformers`` cache
    own_decoding: bool = False

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def require(self, flag: str, feature: str, instead: str, *, model: str = "this model",
                kind: str | None = None) -> None:
        """Raise ``UnsupportedFeatureError`` unless ``flag`` is on: ``"{feature} is not
        supported on {kind or model}; {instead}"``."""
        if flag not in self.names():
            raise ValueError(f"unknown capability {flag!r}: one of {', '.join(self.names())}")
        if not getattr(self, flag):
            where = f"{kind} ({model!r})" if kind else repr(model)
            raise UnsupportedFeatureError(f"{feature} is not supported on {where}; {instead}")


@dataclass(frozen=True)
class Backend:
    """One backend, as its package declares it (and the registry lists it).

    Attributes:
        name: short name (``"bridge"``, ``"mllama"``).
        kind: how errors name its models (``"Llama 3.2 Vision lenses"``).
        capabilities: what its models can do (``capabilities_of`` may narrow it per model).
        architectures: the Hugging Face architectures it serves (``config.architectures``),
            a callable for a list that is read at call time (TransformerLens's adapters).
        model_types: ``config.model_type`` values it serves (configs without architectures).
        load: ``load(path, **options) -> hooked model`` for a model directory.
        wrap: ``wrap(hf_model, tokenizer, **options) -> hooked model`` for a loaded model.
        owns: whether a hooked model belongs to this backend.
        final_modules: ``final_modules(model, compatibility) -> (norm, unembed)``: the final
            norm ``[..., d_model] -> [..., d_model]`` and the unembedding ``[..., d_model] ->
            [..., d_vocab]`` exactly as the model applies them, without hooks.
        capabilities_of: the capabilities of one hooked model (default: ``capabilities``).
        layer_qk: ``layer_qk(model, layer) -> LayerQK``: the hooks carrying a self-attention
            layer's queries and keys as its softmax uses them, and its scaling, soft-cap and
            sliding window (default: ``hook_rot_q``/``hook_rot_k``; ``backends/qk.py``).
    """

    name: str
    kind: str
    capabilities: Capabilities
    architectures: Callable[[], Iterable[str]]
    load: Callable[..., Any]
    wrap: Callable[..., Any]
    owns: Callable[[Any], bool]
    final_modules: Callable[[Any, bool], tuple[torch.nn.Module, torch.nn.Module]]
    model_types: tuple[str, ...] = ()
    capabilities_of: Callable[[Any], Capabilities] | None = None
    layer_qk: Callable[[Any, int], LayerQK] = hooked_layer_qk

    def serves(self, config: Mapping[str, Any]) -> bool:
        """Whether a ``config.json`` dict is one of this backend's models."""
        if config.get("model_type") in self.model_types:
            return True
        mine = set(self.architectures())
        return any(a in mine for a in config.get("architectures") or [])

    def capabilities_for(self, model: Any) -> Capabilities:
        return self.capabilities_of(model) if self.capabilities_of else self.capabilities
