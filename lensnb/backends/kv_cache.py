"""The one place lensnb speaks transformers' KV-cache API.

transformers 5.24 renamed the cache argument of model, decoder-layer and attention forwards from
``past_key_values`` to ``cache`` (the old name still works on models, with a ``FutureWarning``,
until 5.40). Two things follow, both decided here once per model by inspecting signatures:

* ``cache_kwargs(model, cache)``: the keyword the model's ``forward`` takes (``cache`` where it
  has that parameter, ``past_key_values`` where it does not).
* ``bridge_cache_alias(bridge)``: TransformerLens 4.3's reconstructed attention (the
  ``AttentionBridge`` subclasses that compute ``hook_pattern``/``hook_rot_q`` themselves, e.g.
  ``PositionEmbeddingsAttentionBridge`` for Llama/Mistral/Qwen2) reads the cache only from
  ``past_key_values``/``layer_past`` (``AttentionBridge._update_kv_cache``). On transformers
  >= 5.24 the decoder layer hands it ``cache=``, so it neither stores nor reads keys: every
  cached step attends to itself alone. The alias also passes the cache under the name that
  attention reads, for the duration of a generation.

``check_filled`` is the safety net: after every cached forward the cache must hold exactly the
tokens fed so far, else generation stops with an error instead of returning wrong numbers.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from ..core.errors import CacheNotFilledError  # noqa: F401  (raised here)

NEW_NAME = "cache"  # transformers >= 5.24
OLD_NAME = "past_key_values"


def new_cache(config: Any) -> Any:
    """An empty ``transformers.DynamicCache`` for a model with ``config``."""
    from transformers import DynamicCache

    return DynamicCache(config=config)


@functools.cache
def _params(fn: Callable) -> frozenset[str]:
    # inspect.signature follows the __wrapped__ that transformers' decorators set
    return frozenset(inspect.signature(fn).parameters)


def cache_argument(forward: Callable) -> str:
    """``"cache"`` if ``forward`` (a module's forward) has that parameter, else
    ``"past_key_values"``."""
    fn = getattr(forward, "__func__", forward)
    return NEW_NAME if NEW_NAME in _params(fn) else OLD_NAME


def cache_kwargs(model: torch.nn.Module, cache: Any) -> dict[str, Any]:
    """Keyword arguments handing ``cache`` to ``model``'s forward (a Hugging Face model)."""
    return {cache_argument(type(model).forward): cache, "use_cache": True}


# ------------------------------------------------------------------------ TransformerLens bridge
def _reads(attn: torch.nn.Module, name: str) -> bool:
    """Whether the bridge attention ``attn``'s cache update reads the keyword ``name`` (probed
    once with a recording stand-in cache; nothing is stored)."""
    update = getattr(attn, "_update_kv_cache", None)
    if update is None or getattr(attn, "_layer_idx", None) is None:
        return False
    seen: list[bool] = []

    class Probe:
        def update(self, k: torch.Tensor, v: torch.Tensor, *_: Any, **__: Any) -> tuple:
            seen.append(True)
            return k, v

    t = torch.zeros(1, 1, 1, 1)
    update(t, t, **{name: Probe()})
    return bool(seen)


def _reconstructs(attn: torch.nn.Module) -> bool:
    """Whether a TransformerLens attention bridge computes attention itself (and so updates the
    cache itself) instead of delegating to the Hugging Face module."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    return isinstance(attn, AttentionBridge) and type(attn).forward is not AttentionBridge.forward


def attention_needing_alias(bridge: Any) -> list[torch.nn.Module]:
    """The bridge's attention modules that are handed ``cache=`` by their decoder layer but
    read only ``past_key_values`` (see the module docstring); decided once per bridge."""
    cached = bridge.__dict__.get("_lensnb_cache_alias")
    if cached is not None:
        return cached
    out = []
    for block in getattr(bridge, "blocks", []):
        attn = getattr(block, "attn", None)
        hf = getattr(attn, "original_component", None)
        if attn is None or hf is None or not _reconstructs(attn):
            continue
        if cache_argument(type(hf).forward) == NEW_NAME and not _reads(attn, NEW_NAME) and _reads(
                attn, OLD_NAME):
            out.append(attn)
    bridge.__dict__["_lensnb_cache_alias"] = out
    return out


@contextlib.contextmanager
def bridge_cache_alias(bridge: Any) -> Iterator[None]:
    """While on: attention bridges that read only ``past_key_values`` also get the ``cache``
    their decoder layer passes, under that name. A no-op where nothing needs it."""
    def alias(_module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if NEW_NAME in kwargs and OLD_NAME not in kwargs:
            return args, {**kwargs, OLD_NAME: kwargs[NEW_NAME]}
        return None

    handles = [a.register_forward_pre_hook(alias, with_kwargs=True)
               for a in attention_needing_alias(bridge)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# ------------------------------------------------------------------------ safety net
def check_filled(cache: Any, n_tokens: int, layers: Iterable[int]) -> None:
    """Raise ``CacheNotFilledError`` unless every layer in ``layers`` holds ``n_tokens``."""
    for i in layers:
        have = int(cache.get_seq_length(i))
        if have != n_tokens:
            import transformers

            raise CacheNotFilledError(
                f"after a cached forward, layer {i}'s KV cache holds {have} positions but "
                f"{n_tokens} tokens were fed: this transformers ({transformers.__version__}) / "
                "transformer-lens pair does not store keys where lensnb expects them, so cached "
                "generation would be wrong. Report it with lensnb.check()'s table; meanwhile "
                "use hooks the fast path maps (path='fast') or another transformers version"
            )
