"""The cross-attention-over-the-picture overlay shared by ``ImageAttention`` and the
``GenerationStepper`` on vision lenses: the Python half of ``static/image_overlay.js``.

A cross-attention row ``[n_heads, image_tokens]`` becomes one weight per image token for a head
choice (a query head, a KV group's mean, the mean over heads), then a grid over the picture's
patches (``ImageLayout.picture_grid``: tiles mapped back to where they came from, class tokens
and padding dropped) with a summary of where the rest went.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..backends.images import ImageLayout
from ..core.errors import InputError
from .protocol import Array
from .requests import MODES, GridReply

if TYPE_CHECKING:
    from ..lens import Lens

PREVIEW_PX = 384  # longest side of the picture sent to the browser
SHARED_FILES = ("image_overlay",)  # static/image_overlay.js + .css, for LensWidget


def head_weights(lens: Lens, pattern: torch.Tensor, mode: str, head: int = 0,
                 kv_group: int = 0) -> torch.Tensor:
    """``[image_tokens]`` from ``pattern [n_heads, image_tokens]``: query head ``head``
    (``mode="head"``), the mean over the heads sharing KV head ``kv_group`` (``"kv_group"``)
    or the mean over all heads (``"mean"``)."""
    if mode == "head":
        return pattern[lens.kv_groups.check_head(head)]
    if mode == "kv_group":
        return pattern[lens.heads_of_kv(kv_group)].mean(0)
    if mode == "mean":
        return pattern.mean(0)
    raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def picture_grid(layout: ImageLayout, weights: torch.Tensor) -> tuple[np.ndarray, dict]:
    """The heatmap ``[rows, cols]`` over the picture's patches and a summary: attention on
    the picture's patches, on the used tiles' class tokens, in total."""
    grid, _, _ = layout.picture_grid(weights)
    per_tile = weights.reshape(layout.max_tiles, layout.tokens_per_tile)
    used = layout.tiles_h * layout.tiles_w
    summary = {"on_picture": float(grid.sum()),
               "on_class_tokens": float(per_tile[:used, 0].sum()),
               "total": float(weights.sum())}
    return grid, summary


def grid_reply(grid: np.ndarray, summary: dict, reply: type[GridReply] = GridReply,
               **extra: Any) -> GridReply:
    """``picture_grid``'s result as a reply (``reply``: a subclass with ``extra`` fields)."""
    return reply(grid=Array(grid, "float32"), **summary, **extra)


def overlay_geometry(layout: ImageLayout) -> dict:
    """What the frontend needs to draw a grid over the picture (original pixels)."""
    grid, pw, ph = layout.picture_grid(np.zeros(layout.n_tokens, dtype=np.float32))
    sx, sy = layout.width / layout.resized_w, layout.height / layout.resized_h
    return {"width": layout.width, "height": layout.height, "rows": grid.shape[0],
            "cols": grid.shape[1], "patch_w": pw, "patch_h": ph,
            "tile_w": layout.tile * sx, "tile_h": layout.tile * sy,
            "tiles_h": layout.tiles_h, "tiles_w": layout.tiles_w}


def data_url(image: Any) -> str:
    """A PNG data URL of ``image`` scaled to at most ``PREVIEW_PX`` on its longer side (the
    heatmap geometry stays in original pixels)."""
    from PIL import Image

    im = image.convert("RGB")
    scale = PREVIEW_PX / max(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
