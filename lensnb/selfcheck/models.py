"""Tiny random models of every layout ``lensnb.check()`` covers, built from configs in code
(no files, no network), each with an untouched Hugging Face copy of the same weights."""

from __future__ import annotations

import copy
import platform
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.paths import ASSETS
from ..loading import load
from .layouts import FAMILIES, LLAMA3_ROPE

# layout -> (model_type, config overrides): tiny versions of the real attention layouts, and of
# every other family lensnb hooks (``layouts.FAMILIES``; Gemma 3 is left to the test suite: it
# adds q/k norms to Gemma 2's layout, which Qwen3 and OLMo-2 cover here)
TEXT_LAYOUTS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama-gqa": ("llama", dict(num_attention_heads=8, num_key_value_heads=2,
                                rope_parameters=LLAMA3_ROPE)),
    "mistral": ("mistral", dict(num_attention_heads=8, num_key_value_heads=2)),
    "qwen2-bias": ("qwen2", dict(num_attention_heads=8, num_key_value_heads=2)),
    "gemma-mqa": ("gemma", dict(num_attention_heads=4, num_key_value_heads=1, head_dim=16)),
    **{name: FAMILIES[name] for name in ("gpt2", "gpt-neox", "phi3", "qwen3", "olmo2", "gemma2")},
}
VISION_LAYOUT = "mllama"
LAYOUTS = (*TEXT_LAYOUTS, VISION_LAYOUT)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import lensnb

    out = {"python": platform.python_version(), "lensnb": lensnb.__version__}
    for name in ("torch", "transformers", "transformer-lens"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _tokenizer(vision: bool = False) -> Any:
    """The demo model's tokenizer (shipped inside lensnb); with ``<|image|>`` for Mllama."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ASSETS / "demo")
    if vision:
        tok.add_special_tokens({"additional_special_tokens": ["<|image|>"]})
    return tok


def build_text(layout: str, tok: Any, seed: int = 0) -> torch.nn.Module:
    """A tiny random 2-layer HF causal LM of ``layout`` (eager attention, eval mode)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type, overrides = TEXT_LAYOUTS[layout]
    cfg: dict[str, Any] = dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        max_position_embeddings=256, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    cfg.update(overrides)
    config = AutoConfig.for_model(model_type, **cfg)
    config.architectures = [AutoModelForCausalLM._model_mapping[type(config)].__name__]
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


def build_mllama(tok: Any, seed: int = 0) -> torch.nn.Module:
    """A tiny random 4-layer Mllama (cross-attention at layers 1 and 3, GQA 4/2, llama3 RoPE,
    28 px tiles of 2 x 2 patches) with random tanh gates (HF's zeros would hide the image)."""
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    image_id = tok.convert_tokens_to_ids("<|image|>")
    cfg = MllamaConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1,
                           attention_heads=2, intermediate_size=64, vision_output_dim=64,
                           image_size=28, patch_size=14, max_num_tiles=4,
                           intermediate_layers_indices=[0]),
        text_config=dict(vocab_size=image_id, hidden_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                         cross_attention_layers=[1, 3], max_position_embeddings=256,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, rope_parameters=LLAMA3_ROPE),
        image_token_index=image_id,
    )
    cfg.architectures = ["MllamaForConditionalGeneration"]
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(cfg)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gate" in name:
                p.normal_(0.0, 1.0)
    return model.eval()


def picture(w: int = 40, h: int = 30, seed: int = 0) -> Any:
    """A random-noise RGB picture (every pixel matters to the vision tower)."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    arr = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()
    return Image.fromarray(arr, "RGB")


@dataclass
class Built:
    """A lens and an independent HF copy of the same weights (the truth)."""

    lens: Any
    ref: torch.nn.Module
    memo: dict[str, Any] = field(default_factory=dict)  # results shared between checks


def build(layout: str) -> Built:
    """Build ``layout``'s tiny model, its lens and an untouched HF copy."""
    vision = layout == VISION_LAYOUT
    tok = _tokenizer(vision)
    model = build_mllama(tok) if vision else build_text(layout, tok)
    ref = copy.deepcopy(model)  # the bridge rewires the model it wraps: keep a clean one
    lens = load(model, tokenizer=tok)
    lens.name = f"check:{layout}"
    return Built(lens, ref)
