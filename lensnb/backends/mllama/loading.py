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
MODEL_TYPES = ("mllama", "mllama_text_model")


def is_mllama(config: dict) -> bool:
    """Whether a ``config.json`` dict describes a Mllama model (full or text decoder only)."""
    return config.get("model_type") in MODEL_TYPES or any(
        a in ARCHITECTURES for a in config.get("architectures") or [])


def load_mllama(path: str | os.PathLike, *, dtype: torch.dtype, device: Any = None,
                device_map: Any = None, compatibility: bool = False,
                offload_folder: Any = None, trust_remote_code: bool = False) -> HookedMllama:
    """The ``HookedMllama`` of the checkpoint at ``path`` (eager attention, eval mode).
    ``offload_folder`` goes with ``device_map``; transformers' own Mllama code needs no
    ``trust_remote_code``."""
    from transformers import AutoConfig, AutoTokenizer

    _no_compatibility(compatibility)
    config = AutoConfig.from_pretrained(path)
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "eager"}
    if device_map is not None:
        kwargs["device_map"] = device_map
        if offload_folder is not None:
            kwargs["offload_folder"] = str(offload_folder)
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
         compatibility: bool = False, device: Any = None,
         trust_remote_code: bool = False) -> HookedMllama:
    """The ``HookedMllama`` around an already-loaded Mllama HF model (it stays where it is:
    ``device`` is ignored, as for the bridge around a loaded model)."""
    _no_compatibility(compatibility)
    model.eval()
    vision = getattr(model.config, "vision_config", None)
    proc = processor(path, tokenizer, vision) if vision is not None else None
    return HookedMllama(model, tokenizer, proc)
