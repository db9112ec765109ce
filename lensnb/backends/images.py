"""Images as every image backend takes them: checked PIL images, and ``ImageLayout``, where each
image token of a picture comes from (the contract's ``Backend.image_layout`` returns one).

A vision encoder that tiles pictures (Llama 3.2 Vision's Mllama image processor) resizes each
picture, keeping its aspect ratio, onto a canvas of up to ``max_tiles`` square tiles
(``tiles_h x tiles_w``), pads the canvas at the bottom and right, and cuts it into tiles in
row-major order. Each tile becomes ``1 + (tile / patch)**2`` image tokens (class token first,
then patches row-major). ``ImageLayout`` undoes that mapping; widgets draw with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import ImageInputError, InputError

# modes the processor converts to RGB without guessing (alpha is composited, palettes expanded)
ALLOWED_MODES = ("RGB", "RGBA", "L", "LA", "P")

ImageLike = Any  # PIL.Image.Image | str | os.PathLike


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
            raise InputError(f"expected {self.n_tokens} values (one per image token), "
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
