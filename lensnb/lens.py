"""``Lens``: a hooked model, its tokenizer and its facts, with lensnb's conveniences.

Hook names are TransformerLens's (``blocks.{layer}.attn.hook_pattern``); everything else in
lensnb (KV groups, RoPE, generation, widgets) takes a ``Lens``. ``Lens`` is where the layers
above meet the backend contract (``backends/contract.py``): it calls its backend's functions
(``lens.backend``) on its hooked model (``lens.bridge``), and they ask it, never a backend
package. Only this module touches a ``Lens``'s private attributes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .analysis import kv_views
from .backends.contract import Backend, Capabilities, FastPath, NoFastPath
from .backends.gating import gated_hooks
from .backends.registry import backend_for, backend_of
from .core import hooks as hooknames
from .core.errors import (
    ContextLengthError,
    InputError,
    InputTypeError,
    UnsupportedFeatureError,
)
from .core.facts import ModelFacts
from .core.facts import facts as read_facts
from .core.indices import check_layer
from .core.kv_groups import KVGroups
from .core.progress import bar as progress_bar
from .core.progress import library_bars
from .core.settings import PROGRESS_MIN_TOKENS
from .core.tokens import (
    check_tokens,
    encode,
    eos_token_ids,
    pad_rows,
    pad_token_id,
    special_rule,
)
from .interventions import hook_specs, split_qkv
from .interventions.hook_context import PatchValue

if TYPE_CHECKING:
    from transformer_lens.ActivationCache import ActivationCache

    from .backends.images import ImageLayout
    from .interventions.generation import Generation, Step
    from .interventions.generation_config import GenerationConfig

TextOrTokens = str | Sequence[str] | torch.Tensor


class Lens:
    """A hooked model ready for exploration. Build one with ``lensnb.load``.

    Attributes:
        bridge: the hooked model (``backends.contract.HookedModel``: TransformerLens's
            ``TransformerBridge``, or lensnb's ``HookedMllama`` for Llama 3.2 Vision).
        tokenizer: the Hugging Face tokenizer.
        facts: a ``ModelFacts`` (layers, widths, heads, KV heads, RoPE) read off the config.
        compatibility: whether TransformerLens's compatibility mode (folded norms, centred
            weights) is on. Off by default: numbers are the raw Hugging Face weights'.
    """

    def __init__(self, bridge: Any, facts: ModelFacts, *, name: str, compatibility: bool = False,
                 tokenizer: Any = None):
        self.bridge = bridge
        self.facts = facts
        self.name = name
        self.compatibility = compatibility
        self._tokenizer = tokenizer

    @classmethod
    def from_bridge(cls, bridge: Any, name: str, *, compatibility: bool = False,
                    tokenizer: Any = None) -> Lens:
        """A ``Lens`` over a booted ``TransformerBridge`` (eval mode; compatibility mode on when
        asked); the bridge's own ``to_tokens`` then follows the tokenizer's BOS rule."""
        bridge.eval()
        if compatibility:
            bridge.enable_compatibility_mode(disable_warnings=True)
        lens = cls(bridge, read_facts(bridge.original_model.config), name=name,
                   compatibility=compatibility, tokenizer=tokenizer)
        bridge.cfg.default_prepend_bos = lens._special_rule()[0]
        return lens

    @classmethod
    def from_model(cls, model: Any, name: str, *, compatibility: bool = False,
                   tokenizer: Any = None) -> Lens:
        """A ``Lens`` over any backend's hooked model (as ``lensnb.load`` makes them): the
        model's own tokenizer where its backend owns tokenization, else ``from_bridge``."""
        if backend_of(model).capabilities_for(model).owns_tokenization:
            return cls(model, read_facts(model.original_model.config), name=name,
                       compatibility=compatibility)
        return cls.from_bridge(model, name, compatibility=compatibility, tokenizer=tokenizer)

    # ------------------------------------------------------------------ basics
    @property
    def tokenizer(self) -> Any:
        """The model's own Hugging Face tokenizer (``AutoTokenizer.from_pretrained`` of its
        directory, or the one given to ``lensnb.load(model, tokenizer=...)``). The bridge keeps
        TransformerLens's copy, which is reloaded with ``add_bos_token=True``."""
        return self._tokenizer if self._tokenizer is not None else self.bridge.tokenizer

    @property
    def hf_model(self) -> torch.nn.Module:
        """The wrapped Hugging Face model (same weights, no hooks)."""
        return self.bridge.original_model

    @property
    def hf_config(self) -> Any:
        return self.hf_model.config

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device of the input embedding (layers may be elsewhere)."""
        return self.hf_model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf_model.parameters()).dtype

    @property
    def vocab_size(self) -> int:
        """Token ids the model can embed (the rows of its input embedding: for Llama 3.2 Vision
        the text vocabulary plus ``<|image|>`` and its reserved ids)."""
        return int(self.hf_model.get_input_embeddings().weight.shape[0])

    @property
    def n_layers(self) -> int:
        return self.facts.n_layers

    @property
    def n_heads(self) -> int:
        return self.facts.n_heads

    @property
    def n_key_value_heads(self) -> int:
        return self.facts.n_key_value_heads

    # ------------------------------------------------------------------ KV groups
    @property
    def kv_groups(self) -> KVGroups:
        """How query heads share key/value heads (``facts.kv_groups``)."""
        return self.facts.kv_groups

    @property
    def group_size(self) -> int:
        """Query heads per key/value head."""
        return self.kv_groups.group_size

    def kv_head_of(self, head: int) -> int:
        """The KV group (key/value head) query head ``head`` reads."""
        return self.kv_groups.kv_head_of(head)

    def heads_of_kv(self, kv_head: int) -> list[int]:
        """The query heads that share key/value head ``kv_head``."""
        return self.kv_groups.heads_of_kv(kv_head)

    def require_gqa(self, what: str = "this view") -> None:
        """Raise ``GQAError`` on a model with one KV head per query head."""
        self.kv_groups.require_gqa(what)

    # ------------------------------------------------------------------ capabilities
    @property
    def backend(self) -> Backend:
        """The backend serving this lens (``backends.registry``): its name, architectures and
        declared ``Capabilities``."""
        return backend_of(self.bridge)

    @property
    def capabilities(self) -> Capabilities:
        """What this lens's model can do (split QKV, fast path, images, ...): the backend's
        declared ``Capabilities``, narrowed to this model. Features check them up front."""
        caps = self.__dict__.get("_capabilities")
        if caps is None:
            caps = self.__dict__["_capabilities"] = self.backend.capabilities_for(self.bridge)
        return caps

    def require(self, capability: str, feature: str, instead: str) -> None:
        """Raise ``UnsupportedFeatureError`` up front, before anything runs, when this lens
        lacks ``capability`` (a ``Capabilities`` flag): the message names ``feature``, the kind
        of model, and ``instead`` (what to use)."""
        self.capabilities.require(capability, feature, instead, model=self.name,
                                  kind=self.backend.kind)

    def require_images(self, feature: str = "images=") -> None:
        """``UnsupportedFeatureError`` up front when this model takes no images."""
        self.require("images", feature,
                     "images need a Llama 3.2 Vision model with its vision encoder "
                     "(cross-attention to images); pass the text alone")

    @property
    def is_vision(self) -> bool:
        """A Llama 3.2 Vision (Mllama) lens: its text decoder interleaves self-attention with
        cross-attention layers (text -> image tokens); ``capabilities.cross_attention``."""
        return self.capabilities.cross_attention

    @property
    def cross_attention_layers(self) -> list[int]:
        """The layers that cross-attend (text -> image tokens; Llama 3.2 Vision), from the
        config (``facts.cross_attention_layers``); empty for a text model."""
        return list(self.facts.cross_attention_layers)

    @property
    def self_attention_layers(self) -> list[int]:
        """The layers that attend over the text (with RoPE and KV groups): all of them for a text
        model, those not in ``cross_attention_layers`` for Llama 3.2 Vision."""
        cross = set(self.cross_attention_layers)
        return [i for i in range(self.n_layers) if i not in cross]

    def require_self_attention(self, layer: int, feature: str) -> int:
        """``layer`` (negative counts from the end) as a non-negative index, checked to be a
        self-attention layer; a cross-attention layer raises ``UnsupportedFeatureError``
        pointing to ``ImageAttention``."""
        layer = check_layer(layer, self.n_layers)
        if layer not in self.self_attention_layers:
            raise UnsupportedFeatureError(
                f"layer {layer} of {self.name!r} is a cross-attention layer (text -> image "
                f"tokens), which {feature} does not cover: use lensnb.ImageAttention(lens, "
                f"text, image) for cross-attention layers "
                f"{self.cross_attention_layers}; {feature} takes the "
                f"self-attention layers {self.self_attention_layers}"
            )
        return layer

    def __repr__(self) -> str:
        f = self.facts
        mode = "compatibility mode (folded norms, centred weights)" if self.compatibility else (
            "raw Hugging Face weights")
        rope = (f.rope_scaling or {}).get("rope_type", "default") if f.rope_theta else "none"
        return (
            f"Lens({self.name!r}: {f.architecture}, {f.n_layers} layers, d_model {f.d_model}, "
            f"{f.n_heads} heads / {f.n_key_value_heads} KV heads ({f.attention}), "
            f"rope {rope}, {self.dtype} on {self.device}; {mode})"
        )

    # ------------------------------------------------------------------ tokens
    def to_tokens(self, text: TextOrTokens, *, prepend_bos: bool | None = None,
                  padding_side: str | None = None) -> torch.Tensor:
        """Token ids ``[batch, pos]``, exactly as the model's own tokenizer (for Llama 3.2
        Vision: its processor) makes them.

        ``prepend_bos=None`` (default) keeps the tokenizer's own BOS rule (Llama 3 adds
        ``<|begin_of_text|>``, Gemma ``<bos>``; SmolLM2 and Qwen2 add nothing); ``True`` puts
        the BOS token first where the tokenizer does not, ``False`` removes the one it adds.
        An EOS the tokenizer appends (OLMo) is dropped, as TransformerLens does. A batch is
        padded with the pad token (``pad_token_id``) on ``padding_side`` (default: the
        tokenizer's). A token tensor ``[pos]`` or ``[batch, pos]`` is checked and passed on.
        Raises ``ContextLengthError`` instead of truncating a text longer than the context, and
        ``TokenError`` for token ids no forward pass may take (not integers, not 1-d or 2-d,
        outside ``0..vocab_size-1``): every forward pass of a ``Lens`` takes its tokens here.
        """
        if isinstance(text, torch.Tensor):
            tokens = text
        else:
            if not isinstance(text, str) and not (
                isinstance(text, Sequence) and all(isinstance(t, str) for t in text)
            ):
                raise InputTypeError(
                    f"expected a string, a list of strings or a token tensor, "
                    f"got {type(text).__name__}"
                )
            texts = [text] if isinstance(text, str) else list(text)
            if not texts:
                raise InputError("to_tokens got an empty list of texts")
            if self.capabilities.owns_tokenization:  # e.g. Mllama: its processor's rule
                tokens = self.bridge.to_tokens(texts, prepend_bos=prepend_bos,
                                               padding_side=padding_side, truncate=False)
            else:
                rule = self._special_rule()
                side = padding_side or getattr(self.tokenizer, "padding_side", None) or "right"
                tokens = pad_rows([encode(self.tokenizer, t, prepend_bos, rule) for t in texts],
                                  self.pad_token_id, side)
        return self.checked_tokens(tokens)

    def checked_tokens(self, tokens: Any) -> torch.Tensor:
        """``tokens [pos]`` or ``[batch, pos]`` as ``[batch, pos]`` on ``lens.device``, checked:
        integer ids in ``0..vocab_size-1`` (else ``TokenError``) within the context."""
        tokens = check_tokens(tokens, self.vocab_size, model=repr(self.name))
        self.check_length(tokens.shape[-1])
        return tokens.to(self.device)

    def _special_rule(self) -> tuple[bool, bool]:
        """Whether the tokenizer itself adds BOS first / EOS last (probed once)."""
        rule = getattr(self, "_bos_eos_rule", None)
        if rule is None:
            rule = self._bos_eos_rule = special_rule(self.tokenizer)
        return rule

    @property
    def pad_token_id(self) -> int:
        """The id that pads a batch and fills finished rows in generation: the one rule,
        ``core.tokens.pad_token_id`` (as Hugging Face's ``generate`` chooses it)."""
        return pad_token_id(self.hf_model.generation_config, self.tokenizer)

    @property
    def eos_token_ids(self) -> list[int]:
        """The end-of-sequence ids generation stops at (``core.tokens.eos_token_ids``)."""
        return eos_token_ids(self.hf_model.generation_config, self.tokenizer)

    def check_length(self, n: int) -> None:
        """Raise ``ContextLengthError`` when ``n`` tokens exceed the model's context."""
        if n > self.facts.n_ctx:
            raise ContextLengthError(
                f"input has {n} tokens but {self.name!r} has a context of {self.facts.n_ctx} "
                f"tokens: shorten the text or pass at most {self.facts.n_ctx} tokens"
            )

    def to_str_tokens(self, text: TextOrTokens, *,
                      prepend_bos: bool | None = None) -> list[str]:
        """The tokens of one text as strings, as ``to_tokens`` makes them (BOS where the
        model's tokenizer adds one)."""
        tokens = self.to_tokens(text, prepend_bos=prepend_bos)
        if tokens.shape[0] != 1:
            raise InputError(f"to_str_tokens takes one text, got a batch of {tokens.shape[0]}")
        return [self.tokenizer.decode([t]) for t in tokens[0].tolist()]

    # ------------------------------------------------------------------ running
    def __call__(self, text_or_tokens: TextOrTokens, *, images: Any = None,
                 **kwargs: Any) -> torch.Tensor:
        """Logits ``[batch, pos, d_vocab]``. ``images``: PIL images for a Llama 3.2 Vision
        model, one per ``<|image|>`` in the text (a list of lists for a batch)."""
        tokens, kwargs = self.inputs(text_or_tokens, images, **kwargs)
        with torch.no_grad(), self.attention_for((), tokens):
            return self.bridge(tokens, **kwargs)

    def inputs(self, text_or_tokens: TextOrTokens, images: Any = None,
               **kwargs: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        """What one forward pass takes: checked token ids ``[batch, pos]`` (``to_tokens``) and
        ``kwargs`` plus, for ``images`` (one ``image_token`` per image in the text), the image
        tensors of the backend's ``model_inputs`` (``pixel_values``, ...), on ``lens.device``.
        Images on a text model raise ``UnsupportedFeatureError``."""
        if images is None:
            return self.to_tokens(text_or_tokens), kwargs
        self.require_images()
        if isinstance(text_or_tokens, torch.Tensor):
            raise InputTypeError("with images=, pass the text as a string (or a list of "
                                 "strings), not token ids: the processor places the image tokens")
        texts = [text_or_tokens] if isinstance(text_or_tokens, str) else list(text_or_tokens)
        if not all(isinstance(t, str) for t in texts):
            raise InputTypeError("texts must be strings")
        tokens, image_kwargs = self.backend.model_inputs(self.bridge, texts, images)
        return self.checked_tokens(tokens), {**image_kwargs, **kwargs}

    @property
    def image_token(self) -> str | None:
        """The text placeholder of one image (Llama 3.2 Vision: ``"<|image|>"``), else None."""
        return self.backend.image_token if self.capabilities.images else None

    def image_layout(self, image: Any) -> ImageLayout:
        """Where each image token of ``image`` (a PIL image) comes from (tile grid, patch size;
        the backend's ``image_layout``)."""
        self.require_images("image_layout")
        return self.backend.image_layout(self.bridge, image)

    # ------------------------------------------------------------------ backend switches
    def attention_for(self, names: Callable[[str], bool] | Iterable[str] = (),
                      tokens: torch.Tensor | None = None, *,
                      cache: bool = False) -> contextlib.AbstractContextManager[Any]:
        """The attention switch every forward pass runs inside (the backend's ``attention``):
        memory-efficient attention where no hook needs the pattern; ``PatternMemoryError`` up
        front when the hooks ``names`` (or a predicate) cannot fit for ``tokens [batch, pos]``
        (``cache``: they keep their tensors)."""
        return self.backend.attention(self.bridge, names, tokens, cache=cache)

    def new_cache(self) -> Any:
        """An empty decoding state for one generation (the backend's ``new_cache``)."""
        return self.backend.new_cache(self.bridge)

    def fast_path(self) -> FastPath:
        """The fast generation path (``FastPath``): a plain module tree sharing the weights, or
        ``model=None`` and ``why`` there is none."""
        fast = self.backend.fast_path
        if not self.capabilities.fast_path or fast is None:
            return NoFastPath(f"the {self.backend.name} backend has no fast path")
        return fast(self.bridge)

    # ------------------------------------------------------------------ unembedding
    def final_modules(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        """``(final_norm, unembed)``: the model's final norm ``[..., d_model] -> [..., d_model]``
        and unembedding ``[..., d_model] -> [..., d_vocab]`` as it applies them, without hooks
        (in compatibility mode, the bridge's folded ones)."""
        return self.backend.final_modules(self.bridge, self.compatibility)

    def unembed(self, resid: torch.Tensor, *, normed: bool = False) -> torch.Tensor:
        """Logits ``[..., d_vocab]`` of residual-stream vectors ``resid [..., d_model]``, as the
        model turns its last residual stream into logits: the final norm (skipped when
        ``normed``), the unembedding, and the final-logit soft-cap where the model has one
        (Gemma 2). The logit lens applies this to every layer's residual stream. Same device
        as ``resid``; no gradient is stopped (attribution patching differentiates through it)."""
        norm, unembed = self.final_modules()
        logits = unembed(resid if normed else norm(resid))
        cap = getattr(self.hf_config.get_text_config(), "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def text_only(self) -> Lens:
        """A ``Lens`` over the language model of a Llama 3.2 Vision model alone (a plain Llama:
        its self-attention layers, no image; the backend's ``text_only``)."""
        self.require("text_only", "text_only()", f"{self.name!r} is not a Llama 3.2 Vision "
                     "(Mllama) model, so it has no separate text part")
        model, tokenizer = self.backend.text_only(self.bridge)
        hooked = backend_for(model.config.to_dict(), "the text part").wrap(model, tokenizer)
        out = Lens.from_model(hooked, f"{self.name} (text only)",
                              compatibility=self.compatibility, tokenizer=tokenizer)
        out.text_source = self  # the bridge rewires the model it wraps; save from the source
        return out

    def save_text_only(self, path: str | os.PathLike) -> Path:
        """Write only the text weights of this vision lens (or of its ``text_only()``) to
        ``path`` as a Hugging Face checkpoint with the tokenizer, loadable by ``lensnb.load``
        and ``transformers.AutoModelForCausalLM``. Returns the directory."""
        source = getattr(self, "text_source", self)
        source.require("text_only", "save_text_only", f"{self.name!r} is not a Llama 3.2 "
                       "Vision model or its text part")
        model, tokenizer = source.backend.text_only(source.bridge)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with library_bars():  # transformers' "Writing model shards": a lensnb bar, gone when done
            model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return path

    def hook_names(self) -> list[str]:
        """Every hook name this model has, in module order."""
        return list(self.bridge.hook_dict)

    def hook_name(self, name: str, layer: int | None = None) -> str:
        """Resolve ``"attn.hook_pattern"`` + ``layer=2`` (or a full name) to a real hook name."""
        return hooknames.full_name(name, layer, self.bridge.hook_dict, self.n_layers)

    def run_with_cache(
        self,
        text_or_tokens: TextOrTokens,
        names: hooknames.NameFilter = None,
        *,
        hooks: Sequence[hook_specs.HookSpec] = (),
        progress: bool | None = None,
        images: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, ActivationCache]:
        """Run and cache activations. Returns ``(logits [batch, pos, d_vocab], cache)``.

        ``names``: a hook name, a glob (``"blocks.*.attn.hook_pattern"``), a list of those, or a
        predicate; only those hooks are cached (``None`` caches all, except the per-head q/k/v
        inputs of split QKV, which are cached only when named). ``hooks``: as for
        ``run_with_hooks`` (``lensnb.patch(...)``, ``(name, fn(activation, ctx))``); the cache
        holds the hooked activations. ``progress`` shows a bar over layers (default: on from
        ``PROGRESS_MIN_TOKENS`` tokens). ``images``: as for ``__call__`` (Llama 3.2 Vision).

        Layers whose pattern/scores are not cached run memory-efficient attention (see
        ``attention_for``); caching patterns at a length where they cannot fit raises
        ``PatternMemoryError`` before anything runs.
        """
        tokens, kwargs = self.inputs(text_or_tokens, images, **kwargs)
        with self._hooked(hooks, tokens) as (_fwd, hooked):
            keep = hooknames.name_filter(names, self.bridge.hook_dict)
            keep = split_qkv.cache_filter(self, names, keep)  # per-head inputs only when named
            if isinstance(names, str):
                keep_live = keep
            else:  # hooks switched off by a bridge flag never fire: skip them (no warning)
                dead = gated_hooks(self.bridge)
                keep_live = lambda n: keep(n) and n not in dead  # noqa: E731
            if progress is None:
                progress = tokens.shape[-1] >= PROGRESS_MIN_TOKENS
            with (torch.no_grad(),
                  self.attention_for(lambda n: keep_live(n) or hooked(n), tokens, cache=True),
                  self._layer_progress(progress)):
                return self.bridge.run_with_cache(tokens, names_filter=keep_live, **kwargs)

    @contextlib.contextmanager
    def _hooked(self, hooks: Sequence[hook_specs.HookSpec], tokens: torch.Tensor, *,
                install: bool = True) -> Iterator[tuple[list, Callable[[str], bool]]]:
        """``hooks`` as TransformerLens ``fwd_hooks`` for one forward pass over ``tokens``,
        installed unless ``install=False``, with split QKV on when one names a per-head input;
        yields them and whether a hook name is hooked."""
        hooks = list(hooks)
        split = hook_specs.needs_split_qkv(self, hooks) and not self.split_qkv_enabled
        with contextlib.ExitStack() as stack:
            if split:
                stack.enter_context(self.split_qkv())
            fwd = hook_specs.forward_hooks(self, hooks, tokens)  # checks everything first
            if fwd and install:
                stack.enter_context(self.bridge.hooks(fwd_hooks=fwd))
            yield fwd, hook_specs.hooked_names(self, fwd)

    @contextlib.contextmanager
    def _layer_progress(self, enabled: bool) -> Iterator[None]:
        if not enabled:
            yield
            return
        bar = progress_bar(self.n_layers, f"{self.name}: layers", leave=False)

        def tick(tensor: torch.Tensor, hook: Any) -> torch.Tensor:
            bar.update(1)
            return tensor

        hs = [(f"blocks.{i}.hook_resid_post", tick) for i in range(self.n_layers)]
        try:
            with self.bridge.hooks(fwd_hooks=hs):
                yield
        finally:
            bar.close()

    def run_with_hooks(self, text_or_tokens: TextOrTokens,
                       fwd_hooks: Sequence[hook_specs.HookSpec] = (),
                       *, images: Any = None, **kwargs: Any) -> torch.Tensor:
        """Logits ``[batch, pos, d_vocab]`` with hooks applied.

        ``fwd_hooks``: ``lensnb.patch(...)`` objects and ``(name, fn)`` pairs, ``name`` a hook
        name, a glob, a list of those or a predicate, ``fn(activation, ctx) -> tensor | None``
        with a ``HookContext`` (``step=None``, positions ``0..n-1``) or TransformerLens-style
        ``fn(tensor, hook)`` (second parameter named ``hook``; see
        ``lensnb.interventions.hook_context``). The same hooks work in ``generate``/``steps``.
        A hook on a split-QKV input turns split QKV on for the call. Layers without a
        pattern/scores hook run memory-efficient attention."""
        tokens, kwargs = self.inputs(text_or_tokens, images, **kwargs)
        with (self._hooked(fwd_hooks, tokens, install=False) as (fwd, hooked), torch.no_grad(),
              self.attention_for(hooked, tokens)):
            return self.bridge.run_with_hooks(tokens, fwd_hooks=fwd, **kwargs)

    # ------------------------------------------------------------------ generation
    def generate(self, prompt: Any, max_new_tokens: int | None = None, *,
                 config: GenerationConfig | None = None, **kwargs: Any) -> Generation:
        """Generate with the KV cache and position-aware hooks (``hooks=[lensnb.patch(...)]``);
        returns a ``Generation``. ``config=lensnb.GenerationConfig(...)`` or its fields as
        keywords (Hugging Face's names: ``do_sample``, ``temperature``, ``top_k``, ...). See
        ``lensnb.interventions.generation.generate``."""
        from .interventions.generation import generate

        return generate(self, prompt, max_new_tokens, config=config, **kwargs)

    def steps(self, prompt: Any, max_new_tokens: int | None = None, *,
              config: GenerationConfig | None = None, **kwargs: Any) -> Iterator[Step]:
        """Yield one ``Step`` per new token (top-k probabilities, cached activations, logit
        lens); arguments as ``generate``. See ``lensnb.interventions.generation.steps``."""
        from .interventions.generation import steps

        return steps(self, prompt, max_new_tokens, config=config, **kwargs)

    # ------------------------------------------------------------------ split QKV
    def set_split_qkv(self, enabled: bool) -> None:
        """Per-head q/k/v inputs: ``hook_q_input`` ``[batch, pos, n_heads, d_model]``,
        ``hook_k_input``/``hook_v_input`` ``[batch, pos, n_key_value_heads, d_model]``."""
        if not isinstance(enabled, bool):
            raise InputTypeError(f"set_split_qkv takes True or False, got {enabled!r}")
        if enabled:
            split_qkv.require_split_qkv(self)
        self.bridge.set_use_split_qkv_input(enabled)

    @property
    def split_qkv_enabled(self) -> bool:
        return bool(getattr(self.bridge.cfg, "use_split_qkv_input", False))

    @contextlib.contextmanager
    def split_qkv(self, enabled: bool = True) -> Iterator[Lens]:
        """``with lens.split_qkv(): ...`` turns per-head inputs on, restoring the old state."""
        before = self.split_qkv_enabled
        self.set_split_qkv(enabled)
        try:
            yield self
        finally:
            self.set_split_qkv(before)

    def patch_kv_input(self, layer: int, kv_head: int, value: PatchValue, *,
                       which: str = "k") -> contextlib.AbstractContextManager[Lens]:
        """``with lens.patch_kv_input(1, 0, torch.zeros_like): ...`` replaces KV group
        ``kv_head``'s key (``which="v"``: value) input at every position inside the block:
        ``lensnb.patch(layer, "attn.hook_k_input", kv_group=kv_head, every_position=True)``."""
        return split_qkv.patch_kv_input(self, layer, kv_head, value, which=which)

    def patch_q_input(self, layer: int, head: int,
                      value: PatchValue) -> contextlib.AbstractContextManager[Lens]:
        """``with lens.patch_q_input(1, 3, fn): ...`` replaces query head 3's query input
        (``lensnb.patch(layer, "attn.hook_q_input", head=head, every_position=True, ...)``)."""
        return split_qkv.patch_q_input(self, layer, head, value)

    def kv_group_view(self, text_or_tokens: TextOrTokens, layer: int) -> kv_views.KVGroupView:
        """Patterns of ``layer`` grouped by KV head with per-group mean/max/spread."""
        return kv_views.kv_group_view(self, text_or_tokens, layer)

    def logit_attribution(self, text_or_tokens: TextOrTokens, token: int | str,
                          baseline: int | str | None = None, *, pos: int = -1) -> Any:
        """Direct logit attribution per head (grouped by KV head), per MLP, and the rest;
        see ``lensnb.analysis.attribution.logit_attribution``."""
        from .analysis.attribution import logit_attribution

        return logit_attribution(self, text_or_tokens, token, baseline, pos=pos)


save_text_only = Lens.save_text_only  # lensnb.save_text_only(lens, path)
