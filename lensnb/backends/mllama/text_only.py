"""The language model of a Llama 3.2 Vision model alone, as a plain Llama.

Without an image, Mllama's text decoder skips its cross-attention layers, so what is left is a
Llama 3.1-style decoder (the 11B model's text part is Llama 3.1 8B's shape). ``text_only_model``
builds that ``LlamaForCausalLM`` sharing the original tensors (no copy); ``Lens.text_only()``
wraps it in a TransformerBridge like any text model; ``save_text_only`` writes it to disk,
loadable by ``lensnb.load`` and by ``transformers.AutoModelForCausalLM``.

Layer ``j`` of the text-only model is self-attention layer ``self_attention_layers[j]`` of the
vision model. The 8 extra embedding rows of Mllama (``<|image|>`` and reserved ids) are dropped:
the text-only vocabulary is the language model's ``vocab_size``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ...core.progress import library_bars
from .hooked import HookedMllama, _parts


def self_attention_layers(text_config: Any) -> list[int]:
    """Indices (in the vision model) of the text decoder's self-attention layers."""
    cross = set(text_config.cross_attention_layers)
    return [i for i in range(text_config.num_hidden_layers) if i not in cross]


def text_only_model(hf_model: torch.nn.Module) -> torch.nn.Module:
    """A ``LlamaForCausalLM`` over the text weights of a Mllama model (shared, not copied)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    text, _, _, lm_head = _parts(hf_model)
    tc = text.config
    keep = self_attention_layers(tc)
    cfg = LlamaConfig(
        vocab_size=tc.vocab_size, hidden_size=tc.hidden_size,
        intermediate_size=tc.intermediate_size, num_hidden_layers=len(keep),
        num_attention_heads=tc.num_attention_heads, num_key_value_heads=tc.num_key_value_heads,
        head_dim=tc.hidden_size // tc.num_attention_heads, hidden_act=tc.hidden_act,
        rms_norm_eps=tc.rms_norm_eps, max_position_embeddings=tc.max_position_embeddings,
        rope_parameters=dict(tc.rope_parameters), bos_token_id=tc.bos_token_id,
        eos_token_id=tc.eos_token_id, pad_token_id=tc.pad_token_id, tie_word_embeddings=False,
        attention_bias=False, mlp_bias=False,
    )
    cfg.architectures = ["LlamaForCausalLM"]
    cfg.dtype = lm_head.weight.dtype
    state = {"model.embed_tokens.weight": text.embed_tokens.weight[: tc.vocab_size],
             "model.norm.weight": text.norm.weight, "lm_head.weight": lm_head.weight}
    for new, old in enumerate(keep):
        for key, value in text.layers[old].state_dict(keep_vars=True).items():
            state[f"model.layers.{new}.{key}"] = value
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model.load_state_dict({k: v.detach() for k, v in state.items()}, strict=True, assign=True)
    device = lm_head.weight.device
    with torch.device(device):  # the only buffer: RoPE frequencies, rebuilt off the meta device
        model.model.rotary_emb = LlamaRotaryEmbedding(config=cfg)
    model.config._attn_implementation = "eager"
    return model.eval()


def hf_vision_model(lens: Any) -> torch.nn.Module:
    if not isinstance(lens.bridge, HookedMllama):
        raise TypeError(f"{lens.name!r} is not a Llama 3.2 Vision (Mllama) model, so it has no "
                        "separate text part")
    return lens.hf_model


def text_tokenizer(tokenizer: Any) -> Any:
    """The tokenizer of the text part: Llama 3.2 Vision's processor puts ``<|begin_of_text|>``
    first, so the text part alone must get it from its tokenizer (as Llama 3's own tokenizer
    does). A copy that adds BOS when ``tokenizer`` itself does not; else ``tokenizer``."""
    import copy

    if tokenizer.bos_token_id is None:
        return tokenizer
    ids = tokenizer("a")["input_ids"]
    if ids[:1] == [tokenizer.bos_token_id]:
        return tokenizer
    out = copy.deepcopy(tokenizer)
    out.add_bos_token = True
    return out


def save_text_only(lens: Any, path: str | os.PathLike) -> Path:
    """Write only the text weights of a vision ``Lens`` (or of its ``text_only()``) to ``path``
    as a Llama checkpoint with the tokenizer. Returns the directory."""
    path = Path(path)
    source = getattr(lens, "text_source", lens)
    if isinstance(source.bridge, HookedMllama):
        model = text_only_model(source.hf_model)
    else:
        raise TypeError(f"{lens.name!r} is not a Llama 3.2 Vision model or its text part")
    path.mkdir(parents=True, exist_ok=True)
    with library_bars():  # transformers' "Writing model shards": a lensnb bar, gone when done
        model.save_pretrained(path)
    text_tokenizer(lens.tokenizer).save_pretrained(path)
    return path
