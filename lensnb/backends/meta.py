"""Models built on PyTorch's ``meta`` device: every shape, no memory for weights.

``hook_shapes("meta-llama/Llama-3.1-405B")`` lists each hook of a 405B model with the shape and
dtype of what it would see, on a laptop: the model is built from its config on ``meta``, wrapped
in the real TransformerBridge, and run on meta tokens, so the shapes are the bridge's own.
Architectures the bridge cannot hook (e.g. Mllama), or cannot boot without weight values (GPT-2
splits its fused QKV matrix at boot), fall back to the output shapes of the Hugging Face modules
themselves, named by their module paths.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..core.configs import hf_config, meta_model, quiet
from ..core.errors import ImageTokenError, InputError, UnsupportedFeatureError
from ..core.facts import ConfigLike, config_dict
from .registry import supported_architectures


def hook_shapes(
    config_or_name: ConfigLike,
    *,
    batch: int = 1,
    pos: int = 16,
    dtype: torch.dtype | str = torch.float32,
    images: int = 0,
) -> pd.DataFrame:
    """Every hook of a model with the shape and dtype it sees, with no memory for weights.

    Args:
        config_or_name: anything ``lensnb.facts`` takes: a catalogue name
            (``"meta-llama/Llama-3.1-405B"``), a directory, a config dict or object, a ``Lens``.
        batch, pos: the input size to plan for (token ids ``[batch, pos]``).
        dtype: the dtype the model would run in (``lensnb.load``'s default is float32).
        images: images per sample for a vision model (Mllama): the first ``images`` of the
            ``pos`` tokens are image tokens and each image has the config's maximum number of
            tiles, so the vision tower and the cross-attention layers show up. With 0 (the
            default) those layers do not run and are not listed.

    Returns:
        One row per hook name that fires, in firing order: ``hook`` (the name to pass to
        ``run_with_cache``), ``shape`` (a tuple), ``dtype``, ``layer`` (block index in its
        stack, or -1) and ``source`` (``"bridge"``, or ``"hf_module"`` for an architecture the
        bridge cannot hook, named by HF module path).
        Aliases (``blocks.0.hook_resid_pre`` for ``blocks.0.hook_in``...) get their own rows.
        Hooks that fire only after a setter (split-QKV's ``hook_q_input`` ``[batch, pos,
        n_heads, d_model]``, ``hook_result``...) are not listed: TransformerLens projects them
        from weight values, which a meta model does not have.
    """
    if batch < 1 or pos < 1:
        raise InputError(f"batch and pos must be positive, got batch={batch}, pos={pos}")
    torch_dtype = _dtype(dtype)
    name, cfg = config_dict(config_or_name)
    config = hf_config(cfg)
    vocab = _text_config(config).vocab_size
    tokens = torch.zeros(batch, pos, dtype=torch.long, device="meta")  # [batch, pos]
    extra = _image_inputs(config, tokens, images, torch_dtype)
    rows, source = None, "bridge"
    if _bridge_supports(config):
        try:
            bridge = _meta_bridge(meta_model(config, dtype=torch_dtype), name)
        except (NotImplementedError, ValueError):
            # The adapter reads weight values at boot (GPT-2 splits its fused QKV), or the
            # architecture is registered with lensnb but not with the bridge's factory.
            bridge = None
        if bridge is not None:
            rows = _hookpoint_shapes(bridge, tokens, extra)
    if rows is None:  # a fresh model: a failed boot leaves wrappers in the one it was given
        model = meta_model(config, dtype=torch_dtype)
        rows, source = _module_shapes(model, tokens, extra), "hf_module"
    df = pd.DataFrame(rows, columns=["hook", "shape", "dtype"])
    df["layer"] = df["hook"].map(_layer_of)
    df["source"] = source
    df.attrs.update(model=name, batch=batch, pos=pos, images=images, d_vocab=vocab)
    return df


def _hookpoint_shapes(bridge: Any, tokens: torch.Tensor,
                      extra: dict[str, Any]) -> list[tuple[str, tuple, str]]:
    """Run the bridge on meta tokens with a hook on every name; aliases share their hook's row.
    The bridge's own hook path is used, so shapes are the ones a hook or the cache receives
    (e.g. ``hook_q`` split into heads), not the HF module's raw output."""
    seen: dict[str, tuple[tuple, str]] = {}

    def record(tensor: torch.Tensor, hook: Any) -> None:
        if isinstance(tensor, torch.Tensor) and hook.name not in seen:
            seen[hook.name] = (tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))

    with torch.no_grad(), quiet():  # _quiet: TL warns about hooks gated off by setters
        bridge.run_with_hooks(tokens, fwd_hooks=[(lambda name: True, record)], **extra)
    names_of: dict[int, list[str]] = {}
    for hook_name, hp in bridge.hook_dict.items():
        names_of.setdefault(id(hp), []).append(hook_name)
    return [(n, *seen[canonical]) for canonical in seen
            for n in names_of.get(id(bridge.hook_dict.get(canonical)), [canonical])]


def _module_shapes(model: torch.nn.Module, tokens: torch.Tensor,
                   extra: dict[str, Any]) -> list[tuple[str, tuple, str]]:
    """Fallback: the output shape of every named HF submodule on a text-only meta forward.
    The explicit all-ones mask keeps transformers' mask code off data-dependent checks."""
    from transformers.utils import ModelOutput

    rows: list[tuple[str, tuple, str]] = []

    def hook_for(name: str):
        def record(module: torch.nn.Module, args: tuple, output: Any) -> None:
            if isinstance(output, (tuple, ModelOutput)) and len(output):
                output = output[0]  # hidden states first (ModelOutput: last_hidden_state)
            out = output
            if isinstance(out, torch.Tensor):
                rows.append((name, tuple(out.shape), str(out.dtype).removeprefix("torch.")))
        return record

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad(), quiet():
            model(input_ids=tokens, attention_mask=torch.ones_like(tokens), use_cache=False,
                  **extra)
    finally:
        for h in handles:
            h.remove()
    return rows


def _image_inputs(config: Any, tokens: torch.Tensor, images: int,
                  dtype: torch.dtype) -> dict[str, Any]:
    """Meta image inputs for an Mllama forward; the first ``images`` tokens become image tokens
    (``tokens`` is edited in place)."""
    if images == 0:
        return {}
    if getattr(config, "model_type", None) != "mllama":
        raise UnsupportedFeatureError(f"images= is for Mllama vision models; a "
                                      f"{config.model_type!r} model takes text only")
    batch, pos = tokens.shape
    if not 0 < images <= pos:
        raise ImageTokenError(f"images must be between 0 and pos={pos}, got {images}")
    vision = config.vision_config
    tiles, size = vision.max_num_tiles, vision.image_size
    tokens[:, :images] = config.image_token_index
    return {
        "pixel_values": torch.zeros(batch, images, tiles, vision.num_channels, size, size,
                                    dtype=dtype, device="meta"),
        "aspect_ratio_ids": torch.ones(batch, images, dtype=torch.long, device="meta"),
        "aspect_ratio_mask": torch.ones(batch, images, tiles, dtype=torch.long, device="meta"),
        "cross_attention_mask": torch.ones(batch, pos, images, tiles, dtype=torch.long,
                                           device="meta"),
    }


def _meta_bridge(model: torch.nn.Module, name: str) -> Any:
    """The real TransformerBridge around a meta model. The bridge boots from a directory, so
    the config (not weights) goes to a temporary one; a one-word tokenizer keeps it offline."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix="lensnb-meta-"))
    try:
        model.config.save_pretrained(tmp)
        _placeholder_tokenizer().save_pretrained(tmp)  # the bridge re-reads it from disk
        with quiet():
            return TransformerBridge.boot_transformers(
                str(tmp), hf_model=model, device="meta",
                tokenizer=AutoTokenizer.from_pretrained(tmp),
                dtype=next(model.parameters()).dtype,
            ).eval()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bridge_supports(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    return any(a in supported_architectures() for a in archs)


def _placeholder_tokenizer() -> Any:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(WordLevel({"<unk>": 0}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<unk>",
                                   eos_token="<unk>", pad_token="<unk>")


def _text_config(config: Any) -> Any:
    return getattr(config, "text_config", None) or config


def _layer_of(hook: str) -> int:
    parts = hook.split(".")
    for key, idx in zip(parts, parts[1:], strict=False):
        if key in ("blocks", "layers", "h") and idx.isdigit():
            return int(idx)
    return -1


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise InputError(f"unknown dtype {dtype!r}: use e.g. torch.float32, 'bfloat16', 'float16'")
    return value


__all__ = ["hook_shapes"]
