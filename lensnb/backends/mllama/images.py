"""Images into a Llama 3.2 Vision model, checked, and image tokens mapped back to pixels.

The Mllama image processor resizes each picture (keeping its aspect ratio) onto a canvas of up
to ``max_image_tiles`` square tiles (``tiles_h x tiles_w``), pads the canvas at the bottom and
right, and cuts it into tiles in row-major order. Each tile becomes ``1 + (tile / patch)**2``
image tokens (class token first, then patches row-major). ``backends.images.ImageLayout``
undoes that mapping; ``layout(model, image)`` makes one (the backend's ``image_layout``) and
``model_inputs(model, texts, images)`` the forward's inputs (its ``model_inputs``).

lensnb uses the pillow-only ``MllamaImageProcessorPil`` (the default Mllama processor needs
torchvision). Its settings come from the checkpoint's ``preprocessor_config.json``, or from
``lensnb/assets/mllama_processor/`` (Llama 3.2 Vision's: 560 px tiles, 4 tiles) when it has none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ...core.errors import ImageInputError, ImageTokenError, InputError, UnsupportedFeatureError
from ...core.paths import ASSETS
from ..contract import input_device
from ..images import ImageLayout, open_image

DEFAULT_PROCESSOR = ASSETS / "mllama_processor"
IMAGE_TOKEN = "<|image|>"


# ---------------------------------------------------------------------------- processor
def image_processor(path: str | os.PathLike | None, vision_config: Any = None) -> Any:
    """A pillow-only ``MllamaImageProcessorPil`` with the settings saved at ``path`` (or Llama
    3.2 Vision's, sized to ``vision_config``'s tile size and tile count)."""
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    cfg = _saved_settings(Path(path)) if path else None
    if cfg is None:
        cfg = dict(_saved_settings(DEFAULT_PROCESSOR) or {})
        if vision_config is not None:
            side = int(vision_config.image_size)
            cfg.update(size={"height": side, "width": side},
                       max_image_tiles=int(vision_config.max_num_tiles))
    if vision_config is not None:
        side = cfg.get("size", {}).get("height")
        if side != vision_config.image_size or cfg.get("max_image_tiles") != (
                vision_config.max_num_tiles):
            raise InputError(
                f"the saved image processor makes {side} px tiles, at most "
                f"{cfg.get('max_image_tiles')}, but the model's vision_config expects "
                f"{vision_config.image_size} px tiles, at most {vision_config.max_num_tiles}: "
                "fix preprocessor_config.json / processor_config.json"
            )
    keys = ("size", "max_image_tiles", "image_mean", "image_std", "do_normalize", "do_rescale",
            "rescale_factor", "resample", "do_convert_rgb")
    return MllamaImageProcessorPil(**{k: cfg[k] for k in keys if k in cfg})


def _saved_settings(folder: Path) -> dict | None:
    """Image processor settings saved in ``folder`` (transformers 5 nests them in
    ``processor_config.json``; older checkpoints have ``preprocessor_config.json``)."""
    combined = folder / "processor_config.json"
    if combined.is_file():
        cfg = json.loads(combined.read_text()).get("image_processor")
        if isinstance(cfg, dict):
            return cfg
    single = folder / "preprocessor_config.json"
    return json.loads(single.read_text()) if single.is_file() else None


def processor(path: str | os.PathLike | None, tokenizer: Any, vision_config: Any = None) -> Any:
    """The Mllama processor (text + images) for the checkpoint at ``path``."""
    from transformers import MllamaProcessor

    if IMAGE_TOKEN not in tokenizer.get_vocab():
        raise InputError(f"the tokenizer has no {IMAGE_TOKEN} token, so it cannot place images")
    return MllamaProcessor(image_processor=image_processor(path, vision_config),
                           tokenizer=tokenizer)


# ---------------------------------------------------------------------------- inputs
def _nest(texts: list[str], images: Any) -> list[list[Any]]:
    """Images per text: one image, a list (one text) or a list of lists (a batch)."""
    from PIL import Image

    if isinstance(images, Image.Image | str | os.PathLike):
        images = [images]
    if not isinstance(images, Sequence):
        raise ImageInputError(
            f"images must be a PIL image, a list of them (one text) or a list of lists (one "
            f"list per text), got {type(images).__name__}"
        )
    if len(texts) == 1 and not any(isinstance(i, list | tuple) for i in images):
        return [list(images)]
    if len(images) != len(texts) or not all(isinstance(i, list | tuple) for i in images):
        raise ImageInputError(
            f"for a batch of {len(texts)} texts pass one list of images per text "
            f"(images=[[img, ...], ...]), got {len(images)} entries"
        )
    return [list(i) for i in images]


def model_inputs(model: Any, texts: list[str], images: Any
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(input_ids [batch, pos], kwargs)`` for ``HookedMllama.forward`` from texts + images
    (the backend's ``model_inputs``), on the model's device; the caller checks the length.

    Each text holds one ``<|image|>`` per image; text after an ``<|image|>`` sees that image
    (and later ones), as the Mllama processor's cross-attention mask says.
    """
    proc = getattr(model, "processor", None)
    if proc is None:
        raise UnsupportedFeatureError("this is a text-only model: it takes no images")
    nested = _nest(texts, images)
    for i, (t, imgs) in enumerate(zip(texts, nested, strict=True)):
        n = t.count(IMAGE_TOKEN)
        where = f"text {i}" if len(texts) > 1 else "the text"
        if n == 0 and imgs:
            raise ImageTokenError(
                f"{where} has no {IMAGE_TOKEN} token but {len(imgs)} image(s) were given: put "
                f"one {IMAGE_TOKEN} where each image belongs, e.g. '{IMAGE_TOKEN}{t[:30]}'"
            )
        if n != len(imgs):
            raise ImageTokenError(
                f"{where} has {n} {IMAGE_TOKEN} token(s) but {len(imgs)} image(s) were given: "
                f"pass exactly one image per {IMAGE_TOKEN}"
            )
    dev = input_device(model)
    if not any(nested):
        return model.to_tokens(texts, truncate=False).to(dev), {}
    checked = [[open_image(im, f"image {j} of text {i}") for j, im in enumerate(imgs)]
               for i, imgs in enumerate(nested)]
    enc = proc(text=texts, images=checked, return_tensors="pt", padding=True,
               add_special_tokens=False)
    kwargs = {k: enc[k].to(dev) for k in ("attention_mask", "aspect_ratio_ids",
                                           "aspect_ratio_mask", "cross_attention_mask")}
    dtype = next(model.original_model.parameters()).dtype
    kwargs["pixel_values"] = enc["pixel_values"].to(dev, dtype)
    return enc["input_ids"].to(dev), kwargs


# ---------------------------------------------------------------------------- layout
def image_layout(image_processor_: Any, patch_size: int, image: Any) -> ImageLayout:
    """How ``image`` (a PIL image) is tiled by the processor."""
    from transformers.models.mllama.image_processing_pil_mllama import (
        get_image_size_fit_to_canvas,
        get_optimal_tiled_canvas,
    )

    size = image_processor_.size
    tile = size["height"] if isinstance(size, dict) else size.height
    max_tiles = image_processor_.max_image_tiles
    w, h = image.size
    ch, cw = get_optimal_tiled_canvas(h, w, max_tiles, tile)
    rh, rw = get_image_size_fit_to_canvas(h, w, ch, cw, tile)
    return ImageLayout(width=w, height=h, tiles_h=int(ch // tile), tiles_w=int(cw // tile),
                       resized_h=int(rh), resized_w=int(rw), tile=int(tile),
                       patch=int(patch_size), max_tiles=int(max_tiles))


def layout(model: Any, image: Any) -> ImageLayout:
    """How the hooked Mllama ``model``'s processor tiles ``image`` (a checked PIL image): the
    backend's ``image_layout``."""
    proc = getattr(model, "processor", None)
    if proc is None:
        raise UnsupportedFeatureError("this is a text-only model: it takes no images")
    patch = model.original_model.config.vision_config.patch_size
    return image_layout(proc.image_processor, patch, image)
