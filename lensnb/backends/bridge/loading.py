"""Boot a TransformerLens ``TransformerBridge`` over a Hugging Face model: from a directory, or
around an already-loaded model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch


def boot(path: Path, **kwargs: Any) -> Any:
    """``TransformerBridge.boot_transformers(path, **kwargs)``, in eval mode."""
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(str(path), **kwargs).eval()


def load(path: Path, *, dtype: torch.dtype, device: Any = None, device_map: Any = None,
         offload_folder: Any = None, trust_remote_code: bool = False,
         compatibility: bool = False) -> Any:
    """The bridge of the model directory ``path`` (the backend's ``load``): on ``device``
    (default: the first GPU, else CPU) or spread by ``device_map``. Compatibility mode is
    switched on by ``Lens.from_bridge``."""
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if device_map is not None:
        kwargs["device_map"] = device_map
        if offload_folder is not None:
            kwargs["offload_folder"] = str(offload_folder)
    else:
        kwargs["device"] = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return boot(path, **kwargs)


def own_tokenizer(path: Path, trust_remote_code: bool) -> Any:
    """The model's own tokenizer, as ``AutoTokenizer.from_pretrained(path)`` makes it. The
    bridge reloads its copy with ``add_bos_token=True`` (SmolLM2 would get ``<|im_start|>``
    first; a Qwen2 directory with a plain tokenizer.json a ``Qwen2Tokenizer`` that drops the
    file's own BOS), so the ``Lens`` tokenizes with this one."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)


def wrap_module(model: torch.nn.Module, tokenizer: Any, *, device: Any = None,
                trust_remote_code: bool = False, compatibility: bool = False) -> Any:
    """A bridge around an already-loaded HF model. The bridge boots from a directory, so the
    config and tokenizer (not the weights) are written to a temporary one. Compatibility mode
    is switched on by ``Lens.from_bridge``."""
    from transformer_lens.model_bridge import TransformerBridge

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
    return bridge.eval()
