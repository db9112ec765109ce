"""Load a Llama 3.2 Vision (Mllama) checkpoint into lensnb's ``HookedMllama``; ``lensnb.load``
wraps it in a ``Lens``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ...core.errors import UnsupportedFeatureError
from .hooked import HookedMllama
from .images import processor

ARCHITECTURES = ("MllamaForConditionalGeneration", "MllamaForCausalLM")


def is_mllama(config: dict) -> bool:
    """Whether a ``config.json`` dict describes a Mllama model (full or text decoder only)."""
    return config.get("model_type") in ("mllama", "mllama_text_model") or any(
        a in ARCHITECTURES for a in config.get("architectures") or [])


def load_mllama(path: str | os.PathLike, *, dtype: torch.dtype, device: Any = None,
                device_map: Any = None, compatibility: bool = False) -> HookedMllama:
    """The ``HookedMllama`` of the checkpoint at ``path`` (eager attention, eval mode)."""
    from transformers import AutoConfig, AutoTokenizer

    _no_compatibility(compatibility)
    config = AutoConfig.from_pretrained(path)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "eager"}
    if device_map is not None:
        kwargs["device_map"] = device_map
    if config.model_type == "mllama":
        from transformers import MllamaForConditionalGeneration as cls
    else:
        from transformers import MllamaForCausalLM as cls
    model = cls.from_pretrained(path, **kwargs)
    if device_map is None:
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    return wrap(model, tokenizer, path=Path(path))


def _no_compatibility(compatibility: bool) -> None:
    """Raise ``UnsupportedFeatureError`` (a ``ValueError``) before anything loads."""
    if compatibility:
        raise UnsupportedFeatureError(
            "compatibility mode (folded norms, centred weights) is not supported on Llama 3.2 "
            "Vision models: load without compatibility=True (numbers are the raw HF weights'), "
            "or, for the language model alone, lensnb.save_text_only(lens, folder) and then "
            "lensnb.load(folder, compatibility=True)"
        )


def wrap(model: torch.nn.Module, tokenizer: Any, *, path: Path | None = None,
         compatibility: bool = False) -> HookedMllama:
    """The ``HookedMllama`` around an already-loaded Mllama HF model."""
    _no_compatibility(compatibility)
    model.eval()
    vision = getattr(model.config, "vision_config", None)
    proc = processor(path, tokenizer, vision) if vision is not None else None
    return HookedMllama(model, tokenizer, proc)
