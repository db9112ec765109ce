"""The backend contract: what a backend implements, and all that ``Lens`` uses of it.

A backend is a family of hooked models (TransformerLens's ``TransformerBridge``; lensnb's own
``HookedMllama`` for Llama 3.2 Vision). Its hooked models satisfy ``HookedModel``
(TransformerLens hook names and calls, the split-QKV switch). It declares, in its own package,
a ``Backend``: which architectures it serves, how to load or wrap a model, its
``Capabilities``, and the functions ``Lens`` calls on a hooked model (final modules, a decoding
cache, the attention switch, and one function per capability: the fast path, image inputs and
layouts, the text part). The registry (``backends.registry``) lists the backends;
``lensnb.load`` asks it which one serves a config.

Code above this layer never imports a backend package and never asks *which* backend it has:
it calls public ``Lens`` methods, and features check ``lens.capabilities`` up front and raise
``UnsupportedFeatureError`` naming what to use instead (``require``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol, runtime_checkable

import torch

from ..core.errors import InputError, UnsupportedFeatureError
from .images import ImageLayout
from .qk import LayerQK, hooked_layer_qk


@runtime_checkable
class HookedModel(Protocol):
    """A model with TransformerLens hook points, as ``Lens.bridge`` holds it.

    ``TransformerBridge`` and ``HookedMllama`` both satisfy it (``isinstance`` checks the
    members are there; the signatures are TransformerLens's). Code above ``backends/`` uses
    these members and nothing else of a hooked model; everything a backend does beyond them is
    a ``Backend`` function taking the hooked model."""

    #: ``n_layers``, ``n_heads``, ``d_model``, ``d_head``, ``d_vocab``, ``n_ctx`` and the
    #: split-QKV flag ``use_split_qkv_input`` (a TransformerLens config or a stand-in)
    cfg: Any
    original_model: torch.nn.Module  # the Hugging Face model (same weights)
    tokenizer: Any

    @property
    def hook_dict(self) -> Mapping[str, Any]:
        """Every hook name -> its ``HookPoint`` (aliases included)."""
        ...

    def forward(self, input: Any, *args: Any, **kwargs: Any) -> Any:
        """Logits ``[batch, pos, d_vocab]`` of token ids ``[batch, pos]``; ``kwargs`` are the
        Hugging Face model's (``attention_mask``, ``position_ids``, a KV cache, image inputs
        from ``Backend.model_inputs``)."""
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

    def set_use_split_qkv_input(self, enabled: bool) -> None:
        """The split-QKV switch: per-head ``hook_q_input`` ``[batch, pos, n_heads, d_model]``,
        ``hook_k_input``/``hook_v_input`` ``[batch, pos, n_kv_heads, d_model]`` on or off
        (``cfg.use_split_qkv_input`` says which). A model without them raises
        ``UnsupportedFeatureError`` when asked to turn them on (``capabilities.split_qkv``
        lets ``Lens`` refuse first)."""
        ...


@runtime_checkable
class FastPath(Protocol):
    """A backend's fast generation path (``Backend.fast_path``): a plain module tree sharing
    the hooked model's weights, with some hook names served by torch hooks on its modules."""

    #: the plain model (a Hugging Face ``PreTrainedModel``: ``model(input_ids=..., cache...)``
    #: -> ``.logits [batch, pos, d_vocab]``), or ``None`` where there is none
    model: torch.nn.Module | None
    #: why there is no plain model (``""`` where there is one)
    why: str

    def serves(self, name: str) -> bool:
        """Whether hook ``name`` runs on the plain model (else only the hooked model has it)."""
        ...

    def hook(self, name: str, run: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
        """Install ``run`` at hook ``name``: it sees the tensor as the hooked model's hook does
        and may return a replacement. Returns a handle whose ``remove()`` takes it off."""
        ...


@dataclass(frozen=True)
class NoFastPath:
    """The ``FastPath`` of a model that has none."""

    why: str
    model: None = None

    def serves(self, name: str) -> bool:
        return False

    def hook(self, name: str, run: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
        raise UnsupportedFeatureError(f"no fast path: {self.why}")


def input_device(model: Any) -> torch.device:
    """Where a hooked model's inputs go: the device of its input embedding."""
    return model.original_model.get_input_embeddings().weight.device


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
    #: one norm spans every KV head's keys after ``attn.hook_k`` (OLMo-2's ``k_norm``): a patch
    #: of one KV group's keys there rescales every group's, so KV groups are not independent
    shared_k_norm: bool = False

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def require(self, flag: str, feature: str, instead: str, *, model: str = "this model",
                kind: str | None = None) -> None:
        """Raise ``UnsupportedFeatureError`` unless ``flag`` is on: ``"{feature} is not
        supported on {kind or model}; {instead}"``."""
        if flag not in self.names():
            raise InputError(f"unknown capability {flag!r}: one of {', '.join(self.names())}")
        if not getattr(self, flag):
            where = f"{kind} ({model!r})" if kind else repr(model)
            raise UnsupportedFeatureError(f"{feature} is not supported on {where}; {instead}")


@dataclass(frozen=True)
class Backend:
    """One backend, as its package declares it (and the registry lists it): what a third
    backend implements. Every function takes the backend's hooked model (a ``HookedModel``),
    never a ``Lens``; ``Lens`` calls them (``lens.backend``) and the layers above use ``Lens``.

    Attributes:
        name: short name (``"bridge"``, ``"mllama"``).
        kind: how errors name its models (``"Llama 3.2 Vision lenses"``).
        capabilities: what its models can do (``capabilities_of`` may narrow it per model).
        architectures: the Hugging Face architectures it serves (``config.architectures``),
            a callable for a list that is read at call time (TransformerLens's adapters).
        load: ``load(path, *, dtype, device, device_map, offload_folder, trust_remote_code,
            compatibility) -> hooked model`` for a model directory.
        wrap: ``wrap(hf_model, tokenizer, *, device, trust_remote_code, compatibility) ->
            hooked model`` for a loaded model.
        owns: whether an object is one of this backend's hooked models.
        final_modules: ``final_modules(model, compatibility) -> (norm, unembed)``: the final
            norm ``[..., d_model] -> [..., d_model]`` and the unembedding ``[..., d_model] ->
            [..., d_vocab]`` exactly as the model applies them, without hooks.
        new_cache: ``new_cache(model) -> cache``: an empty decoding state for one generation.
            Without ``own_decoding`` a ``transformers`` cache handed to the Hugging Face
            model's forward (``kv_cache.cache_kwargs``); with it, the object the hooked model's
            ``forward(ids, cache=...)`` takes. Either answers ``get_seq_length(layer)`` for
            each self-attention layer (the safety net ``kv_cache.check_filled``).
        attention: the attention switch, ``attention(model, names, tokens, *, cache) ->
            context manager``: every forward pass of ``Lens`` runs inside it. ``names`` (hook
            names or a predicate) are what the call hooks, ``tokens [batch, pos]`` its input,
            ``cache`` whether the hooks keep their tensors. It raises ``PatternMemoryError``
            up front when full patterns cannot fit (``attention_memory.guard`` does only
            that) and may run memory-efficient attention where no hook needs the pattern.
        tokenizer: ``tokenizer(path, trust_remote_code) -> tokenizer`` the ``Lens`` of a model
            directory tokenizes with (``None``: the hooked model's own ``tokenizer``).
        model_types: ``config.model_type`` values it serves (configs without architectures).
        capabilities_of: the capabilities of one hooked model (default: ``capabilities``).
        fast_path: ``fast_path(model) -> FastPath`` (``capabilities.fast_path``).
        image_token: the text placeholder of one image (``capabilities.images``).
        model_inputs: ``model_inputs(model, texts, images) -> (input_ids [batch, pos],
            kwargs)`` (``capabilities.images``): texts (a list of strings) with one
            ``image_token`` per image and the images (PIL images or paths; one list per text)
            as the model's forward takes them (``pixel_values``, masks, ...), on the model's
            device, checked (``ImageInputError``, ``ImageTokenError``).
        image_layout: ``image_layout(model, image) -> ImageLayout`` (``capabilities.images``):
            where each image token of ``image`` comes from (tile grid, patch size).
        text_only: ``text_only(model) -> (hf_model, tokenizer)`` (``capabilities.text_only``):
            the language model alone as a plain Hugging Face text model sharing the weights,
            and its tokenizer (``Lens.text_only``, ``lensnb.save_text_only``).
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
    new_cache: Callable[[Any], Any]
    attention: Callable[..., contextlib.AbstractContextManager[Any]]
    tokenizer: Callable[[Any, bool], Any] | None = None
    model_types: tuple[str, ...] = ()
    capabilities_of: Callable[[Any], Capabilities] | None = None
    fast_path: Callable[[Any], FastPath] | None = None
    image_token: str | None = None
    model_inputs: Callable[[Any, list[str], Any], tuple[torch.Tensor, dict[str, Any]]] | None = (
        None)
    image_layout: Callable[[Any, Any], ImageLayout] | None = None
    text_only: Callable[[Any], tuple[torch.nn.Module, Any]] | None = None
    layer_qk: Callable[[Any, int], LayerQK] = hooked_layer_qk

    def __post_init__(self) -> None:
        """A capability the backend declares needs the function that provides it."""
        needs = {"fast_path": ("fast_path",), "text_only": ("text_only",),
                 "images": ("image_token", "model_inputs", "image_layout")}
        caps = self.capabilities
        missing = [f"{field} (capabilities.{flag})" for flag, names in needs.items()
                   if getattr(caps, flag) for field in names if getattr(self, field) is None]
        if missing:
            raise InputError(f"backend {self.name!r} declares capabilities without what "
                             f"provides them: give {', '.join(missing)}")

    def serves(self, config: Mapping[str, Any]) -> bool:
        """Whether a ``config.json`` dict is one of this backend's models."""
        if config.get("model_type") in self.model_types:
            return True
        mine = set(self.architectures())
        return any(a in mine for a in config.get("architectures") or [])

    def capabilities_for(self, model: Any) -> Capabilities:
        return self.capabilities_of(model) if self.capabilities_of else self.capabilities
