"""Images into a Llama 3.2 Vision model, checked, and image tokens mapped back to pixels.

The Mllama image processor resizes each picture (keeping its aspect ratio) onto a canvas of up
to ``max_image_tiles`` square tiles (``tiles_h x tiles_w``), pads the canvas at the bottom and
right, and cuts it into tiles in row-major order. Each tile becomes ``1 + (tile / patch)**2``
image tokens (class token first, then patches row-major). ``ImageLayout`` undoes that mapping.

lensnb uses the pillow-only ``MllamaImageProcessorPil`` (the default Mllama processor needs
torchvision). Its settings come from the checkpoint's ``preprocessor_config.json``, or from
``lensnb/assets/mllama_processor/`` (Llama 3.2 Vision's: 560 px tiles, 4 tiles) when it has none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core.errors import ImageInputError  # noqa: F401  (raised here)
from ...core.paths import ASSETS
from .hooked import ImageTokenError

DEFAULT_PROCESSOR = ASSETS / "mllama_processor"
IMAGE_TOKEN = "<|image|>"
# modes the processor converts to RGB without guessing (alpha is composited, palettes expanded)
ALLOWED_MODES = ("RGB", "RGBA", "L", "LA", "P")

ImageLike = Any  # PIL.Image.Image | str | os.PathLike


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
            raise ValueError(
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
        raise ValueError(f"the tokenizer has no {IMAGE_TOKEN} token, so it cannot place images")
    return MllamaProcessor(image_processor=image_processor(path, vision_config),
                           tokenizer=tokenizer)


# ---------------------------------------------------------------------------- checks
def open_image(image: ImageLike, where: str) -> Any:
    """A checked PIL image from a PIL image or a file path."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise ImageInputError(f"{where}: no image file at {str(path)!r}")
        try:
            with Image.open(path) as im:
                im.load()
                image = im.copy()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise ImageInputError(
                f"{where}: {str(path)!r} is not a readable image (corrupt or not an image "
                f"file): {err}"
            ) from None
    if not isinstance(image, Image.Image):
        raise ImageInputError(
            f"{where}: expected a PIL.Image.Image or an image file path, got "
            f"{type(image).__name__}"
        )
    if image.mode not in ALLOWED_MODES:
        raise ImageInputError(
            f"{where}: image mode {image.mode!r} is not supported; allowed modes are "
            f"{', '.join(ALLOWED_MODES)} (convert first, e.g. image.convert('RGB'))"
        )
    if min(image.size) < 1:
        raise ImageInputError(f"{where}: the image is empty ({image.size[0]}x{image.size[1]})")
    return image


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


def model_inputs(lens: Any, text: str | Sequence[str], images: Any
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(input_ids [batch, pos], kwargs)`` for ``HookedMllama.forward`` from text + images.

    Each text holds one ``<|image|>`` per image; text after an ``<|image|>`` sees that image
    (and later ones), as the Mllama processor's cross-attention mask says.
    """
    proc = getattr(lens.bridge, "processor", None)
    if proc is None:
        raise ImageInputError(f"{lens.name!r} is a text-only model: it takes no images")
    if isinstance(text, torch.Tensor):
        raise TypeError("with images=, pass the text as a string (or a list of strings), "
                        "not token ids: the processor places the image tokens")
    texts = [text] if isinstance(text, str) else list(text)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be strings")
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
    if not any(nested):
        ids = lens.to_tokens(texts)
        return ids, {}
    checked = [[open_image(im, f"image {j} of text {i}") for j, im in enumerate(imgs)]
               for i, imgs in enumerate(nested)]
    enc = proc(text=texts, images=checked, return_tensors="pt", padding=True,
               add_special_tokens=False)
    lens._check_length(enc["input_ids"].shape[-1])
    dev = lens.device
    kwargs = {k: enc[k].to(dev) for k in ("attention_mask", "aspect_ratio_ids",
                                           "aspect_ratio_mask", "cross_attention_mask")}
    kwargs["pixel_values"] = enc["pixel_values"].to(dev, lens.dtype)
    return enc["input_ids"].to(dev), kwargs


# ---------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class ImageLayout:
    """Where each image token of one image came from.

    Attributes:
        width, height: the original picture's size in pixels.
        tiles_h, tiles_w: the tile grid the picture was resized onto.
        resized_h, resized_w: the picture's size on the canvas (the rest is padding).
        tile: tile side in pixels; patch: patch side; max_tiles: tiles per image incl. padding.
    """

    width: int
    height: int
    tiles_h: int
    tiles_w: int
    resized_h: int
    resized_w: int
    tile: int
    patch: int
    max_tiles: int

    @property
    def patches_per_side(self) -> int:
        return self.tile // self.patch

    @property
    def tokens_per_tile(self) -> int:
        return 1 + self.patches_per_side ** 2

    @property
    def n_tokens(self) -> int:
        """Image tokens of this image in the model (padding tiles included)."""
        return self.max_tiles * self.tokens_per_tile

    def patch_grid(self, values: torch.Tensor | np.ndarray) -> np.ndarray:
        """Per-token values ``[n_tokens]`` -> a canvas grid ``[tiles_h * pps, tiles_w * pps]``
        of the patch tokens (class tokens and padding tiles dropped)."""
        v = np.asarray(values.detach().float().cpu() if isinstance(values, torch.Tensor)
                       else values, dtype=np.float32)
        if v.shape != (self.n_tokens,):
            raise ValueError(f"expected {self.n_tokens} values (one per image token), "
                             f"got shape {tuple(v.shape)}")
        pps = self.patches_per_side
        per_tile = v.reshape(self.max_tiles, self.tokens_per_tile)[:, 1:]  # drop class tokens
        used = per_tile[: self.tiles_h * self.tiles_w].reshape(self.tiles_h, self.tiles_w, pps,
                                                               pps)
        return used.transpose(0, 2, 1, 3).reshape(self.tiles_h * pps, self.tiles_w * pps)

    def picture_grid(self, values: torch.Tensor | np.ndarray) -> tuple[np.ndarray, float,
                                                                      float]:
        """The patch grid cropped to the picture (padding rows/columns dropped), with the
        size of one patch in original pixels ``(grid, patch_w_px, patch_h_px)``."""
        grid = self.patch_grid(values)
        rows = -(-self.resized_h // self.patch)
        cols = -(-self.resized_w // self.patch)
        sx = self.width / self.resized_w
        sy = self.height / self.resized_h
        return grid[:rows, :cols], self.patch * sx, self.patch * sy

    def class_tokens(self) -> list[int]:
        """Token indices (within this image) of the used tiles' class tokens."""
        return [t * self.tokens_per_tile for t in range(self.tiles_h * self.tiles_w)]


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
