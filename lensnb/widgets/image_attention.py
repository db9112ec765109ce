"""``ImageAttention``: where a Llama 3.2 Vision model's text tokens look in the picture.

Pick a text token, a cross-attention layer and a head (or a KV group, or the mean over heads):
the cross-attention pattern over that image's tokens is drawn as a heatmap over the picture,
tiles mapped back to where they came from (``lens.image_layout``: an ``ImageLayout``). A
chart shows each cross-attention layer's gate values ``tanh(gate)`` (attention and MLP), which
scale how much the layer writes into the residual stream.

All numbers come from one ``run_with_cache`` of the hooked model; the frontend asks for the grid
it shows (float32 buffers), and ``figure()`` exports the same grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import traitlets

from ..backends.images import ImageLayout, open_image
from ..core import theme
from ..core.errors import ImageTokenError, UnsupportedFeatureError
from ..core.indices import check_position
from .base import LensWidget
from .image_overlay import (
    SHARED_FILES,
    data_url,
    grid_reply,
    head_weights,
    overlay_geometry,
    picture_grid,
)
from .protocol import handles
from .requests import MODES, Grid, GridReply

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..lens import Lens

MAX_EXPORT_REQUESTS = 2000


class ImageAttention(LensWidget):
    """Cross-attention from text tokens to one image, as a heatmap over the picture.

    ``ImageAttention(lens, text, image, *, layer=None, token=-1, head=0, mode="head")``:
    ``text`` holds one ``<|image|>`` (where the picture goes); ``image`` is a PIL image or a file
    path. ``layer`` is a cross-attention layer index (default: the first); ``token`` a text
    position (negative counts from the end); ``mode`` is ``"head"`` (query head ``head``),
    ``"kv_group"`` (mean over the query heads sharing KV head ``kv_group``) or ``"mean"``.
    All of these are synced traits: set them from Python or in the widget.
    """

    _esm_file = "image_attention.js"
    _css_file = "image_attention.css"
    _shared_files = SHARED_FILES

    layer = traitlets.Int().tag(sync=True)
    token = traitlets.Int().tag(sync=True)
    head = traitlets.Int(0).tag(sync=True)
    kv_group = traitlets.Int(0).tag(sync=True)
    mode = traitlets.Enum(MODES, default_value="head").tag(sync=True)
    # read-only facts for the frontend
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    sees_image = traitlets.List(traitlets.Bool()).tag(sync=True)
    cross_layers = traitlets.List(traitlets.Int()).tag(sync=True)
    gates = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
    n_heads = traitlets.Int().tag(sync=True)
    n_kv_heads = traitlets.Int().tag(sync=True)
    picture = traitlets.Unicode("").tag(sync=True)  # data: URL of a PNG preview
    geometry = traitlets.Dict().tag(sync=True)

    def __init__(self, lens: Lens, text: str, image: Any, *, layer: int | None = None,
                 token: int = -1, head: int = 0, kv_group: int = 0,
                 mode: str = "head") -> None:
        lens.require("images", "ImageAttention",
                     "ImageAttention needs a Llama 3.2 Vision model (cross-attention to "
                     "images); for self-attention use lensnb.AttentionExplorer(lens, text)")
        marker = lens.image_token
        if not isinstance(text, str) or text.count(marker) != 1:
            raise ImageTokenError(f"the text must be a string with exactly one {marker} (where "
                                  f"the picture goes), e.g. '{marker}a photo of'")
        self._lens = lens
        self._image = open_image(image, "image")
        cross = lens.cross_attention_layers
        names = [f"blocks.{i}.attn.hook_pattern" for i in cross]
        names += [f"blocks.{i}.hook_{g}_gate" for i in cross for g in ("attn", "mlp")]
        ids, kwargs = lens.inputs(text, [self._image])
        _, cache = lens.run_with_cache(ids, names, progress=False, **kwargs)
        self._layout: ImageLayout = lens.image_layout(self._image)
        # [n_cross, n_heads, pos, image_tokens] for this (only) image
        self._patterns = torch.stack([cache[n][0] for n in names[: len(cross)]]).float().cpu()
        seen = kwargs["cross_attention_mask"][0, :, 0].bool().any(-1)  # [pos]
        tok = lens.tokenizer
        layer = cross[0] if layer is None else layer
        super().__init__(
            tokens=[tok.decode([t]) for t in ids[0].tolist()], sees_image=seen.tolist(),
            cross_layers=cross,
            gates=[[float(cache[f"blocks.{i}.hook_attn_gate"].reshape(-1)[0]),
                    float(cache[f"blocks.{i}.hook_mlp_gate"].reshape(-1)[0])] for i in cross],
            n_heads=lens.n_heads, n_kv_heads=lens.n_key_value_heads,
            picture=data_url(self._image), geometry=overlay_geometry(self._layout),
            layer=layer, token=token % ids.shape[1], head=head, kv_group=kv_group, mode=mode,
        )

    # ------------------------------------------------------------------ validation
    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> int:
        v = proposal["value"]
        if v not in self.cross_layers:
            raise traitlets.TraitError(
                f"layer {v} is not a cross-attention layer; cross-attention layers are "
                f"{self.cross_layers}")
        return v

    @traitlets.validate("token")
    def _valid_token(self, proposal: dict) -> int:
        try:
            return check_position(proposal["value"], len(self.tokens), "token")
        except IndexError as err:
            raise traitlets.TraitError(str(err)) from None

    @traitlets.validate("head")
    def _valid_head(self, proposal: dict) -> int:
        self._lens.kv_groups.check_head(proposal["value"])
        return proposal["value"]

    @traitlets.validate("kv_group")
    def _valid_kv_group(self, proposal: dict) -> int:
        self._lens.kv_groups.check_kv_head(proposal["value"])
        return proposal["value"]

    # ------------------------------------------------------------------ data
    def weights(self, *, layer: int | None = None, token: int | None = None,
                mode: str | None = None, head: int | None = None,
                kv_group: int | None = None) -> torch.Tensor:
        """Attention of one text token over this image's tokens ``[image_tokens]`` for the
        current (or given) layer, token and head choice."""
        layer = self.layer if layer is None else layer
        token = self.token if token is None else token
        mode = self.mode if mode is None else mode
        if layer not in self.cross_layers:
            raise UnsupportedFeatureError(f"layer {layer} is not a cross-attention layer "
                                          f"({self.cross_layers})")
        p = self._patterns[self.cross_layers.index(layer), :, token]  # [n_heads, image_tokens]
        return head_weights(self._lens, p, mode, self.head if head is None else head,
                            self.kv_group if kv_group is None else kv_group)

    def grid(self, **choice: Any) -> tuple[np.ndarray, dict]:
        """The heatmap ``[rows, cols]`` over the picture's patches and a summary: attention on
        the picture's patches, on class tokens, on padding."""
        return picture_grid(self._layout, self.weights(**choice))

    @handles(Grid)
    def _on_grid(self, req: Grid) -> GridReply:
        choice = {k: getattr(req, k) for k in ("layer", "token", "mode", "head", "kv_group")}
        return grid_reply(*self.grid(**{k: v for k, v in choice.items() if v is not None}))

    def export_requests(self) -> list[dict]:
        """Every (layer, token) for the current head choice, up to ``MAX_EXPORT_REQUESTS``."""
        reqs = [Grid(layer=layer, token=t, mode=self.mode, head=self.head,
                     kv_group=self.kv_group).wire()
                for layer in self.cross_layers for t in range(len(self.tokens))]
        return reqs[:MAX_EXPORT_REQUESTS]

    # ------------------------------------------------------------------ figure
    def _choice_label(self) -> str:
        if self.mode == "head":
            return f"head {self.head}"
        if self.mode == "kv_group":
            return f"KV group {self.kv_group} (heads {self._lens.heads_of_kv(self.kv_group)})"
        return "mean over heads"

    def figure(self, *, style: str | None = None) -> go.Figure:
        """The picture with the current heatmap over it, and the gate values per layer."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from ..export.style import SEQUENTIAL

        geo = self.geometry
        grid, summary = self.grid()
        xs = (np.arange(geo["cols"]) + 0.5) * geo["patch_w"]
        ys = (np.arange(geo["rows"]) + 0.5) * geo["patch_h"]
        token = self.tokens[self.token]
        fig = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32], horizontal_spacing=0.12,
                            subplot_titles=(f"layer {self.layer}, {self._choice_label()}, "
                                            f"token {self.token} {token!r}",
                                            "cross-attention gates tanh(g)"))
        fig.add_trace(go.Image(source=self.picture, dx=1, dy=1, name="picture",
                               hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Heatmap(
            x=xs, y=ys, z=grid, colorscale=SEQUENTIAL, opacity=theme.OVERLAY_OPACITY, zmin=0,
            name="attention", colorbar=dict(title="attention", x=0.6, len=0.9),
            hovertemplate="x %{x:.0f}px, y %{y:.0f}px: %{z:.3f}<extra></extra>"), row=1, col=1)
        for k in range(1, geo["tiles_w"]):
            x = min(k * geo["tile_w"], geo["width"])
            fig.add_shape(type="line", x0=x, x1=x, y0=0, y1=geo["height"], row=1, col=1,
                          line=dict(color=theme.ROLES["picture_grid"], width=1, dash="dot"))
        for k in range(1, geo["tiles_h"]):
            y = min(k * geo["tile_h"], geo["height"])
            fig.add_shape(type="line", y0=y, y1=y, x0=0, x1=geo["width"], row=1, col=1,
                          line=dict(color=theme.ROLES["picture_grid"], width=1, dash="dot"))
        labels = [f"L{i}" for i in self.cross_layers]
        fig.add_trace(go.Bar(x=labels, y=[g[0] for g in self.gates], name="attention gate",
                             marker_color=theme.ROLES["attention_gate"]), row=1, col=2)
        fig.add_trace(go.Bar(x=labels, y=[g[1] for g in self.gates], name="MLP gate",
                             marker_color=theme.ROLES["mlp_gate"]), row=1, col=2)
        fig.update_xaxes(range=[0, geo["width"]], showgrid=False, row=1, col=1)
        fig.update_yaxes(range=[geo["height"], 0], showgrid=False, scaleanchor="x", row=1,
                         col=1)
        fig.update_yaxes(range=[-1, 1], title_text="tanh(gate)", row=1, col=2)
        fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.15),
                          meta={"on_picture": summary["on_picture"],
                                "on_class_tokens": summary["on_class_tokens"]})
        from ..export.style import apply_style

        return apply_style(fig, style)
