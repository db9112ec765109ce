"""The Llama 3.2 Vision (Mllama) backend as the registry lists it: its architectures, how it loads
and what its models can do (``HookedMllama``: lensnb's own hooked model)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..attention_memory import guard
from ..contract import Backend, Capabilities
from .hooked import HookedMllama
from .images import IMAGE_TOKEN, layout, model_inputs
from .loading import ARCHITECTURES, MODEL_TYPES, load_mllama, wrap
from .text_only import text_only

#: A full Llama 3.2 Vision model; ``capabilities_of`` turns ``images`` off for the text decoder
#: alone (``MllamaForCausalLM``: cross-attention layers, no vision encoder).
CAPABILITIES = Capabilities(
    split_qkv=False,  # one fused q/k/v input per layer, written by lensnb's own layer loop
    compatibility_mode=False,  # folding norms would change the gated cross-attention layers
    fast_path=False,  # generation runs HookedMllama's own layer loop with its KV cache
    sdpa_switch=False,  # eager attention: every pattern is computed anyway
    direct_logit_attribution=False,  # cross-attention layers add tanh(gate)-scaled terms
    rope=True,  # the self-attention layers' (Llama 3.1 scaling)
    rope_frequency_usage=False,  # cross-attention layers have no RoPE
    stop_at_layer=False,
    cross_attention=True,
    images=True,
    text_only=True,  # Lens.text_only(): the self-attention layers as a plain Llama
    owns_tokenization=True,  # the Mllama processor's rule (BOS, <|image|> tokens)
    own_decoding=True,  # decoding.MllamaCache: cross-attention keys/values computed once
)


def _owns(model: Any) -> bool:
    return isinstance(model, HookedMllama)


def _capabilities_of(model: HookedMllama) -> Capabilities:
    return replace(CAPABILITIES, images=model.has_vision)


BACKEND = Backend(
    name="mllama",
    kind="Llama 3.2 Vision lenses",
    capabilities=CAPABILITIES,
    architectures=lambda: ARCHITECTURES,
    model_types=MODEL_TYPES,
    load=load_mllama,
    wrap=wrap,
    owns=_owns,
    final_modules=lambda model, compatibility: model.final_modules(),
    new_cache=lambda model: model.new_cache(),
    attention=guard,  # eager attention everywhere: the up-front memory check only
    capabilities_of=_capabilities_of,
    image_token=IMAGE_TOKEN,
    model_inputs=model_inputs,
    image_layout=layout,
    text_only=text_only,
)
