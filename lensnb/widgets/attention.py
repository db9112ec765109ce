"""``AttentionExplorer``: attention patterns per query head and per KV group, at long context.

The widget keeps the rotated queries and keys of the text (``backend.patterns.KeptQK``), not the
patterns, and answers the frontend's requests one head at a time: a max-pooled overview (at most
``OVERVIEW`` cells a side), the exact window under a zoom, thumbnails for the head grid, one exact
row or column (hover, text view), or a KV group with its summaries. Everything travels as uint8
buffers scaled to the tile's maximum, or float32 for exact rows.
"""

from __future__ import annotations

import html
import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
import traitlets

from ..analysis.patterns import KeptQK, summaries_pooled
from ..core.errors import IndexRangeError, InputError, InterruptedRequestError
from ..core.indices import check_index, check_position
from ..lens import UnsupportedFeatureError
from .base import Buffers, LensWidget
from .protocol import Array, handles
from .requests import (
    Column,
    Group,
    GroupReply,
    Row,
    Thumb,
    ThumbReply,
    Tile,
    TileReply,
    WeightsReply,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..lens import Lens, TextOrTokens

OVERVIEW = 512  # largest side of an overview or zoom tile sent to the browser (cells)
THUMB = 48  # side of a head-grid thumbnail
GROUP_PANEL = 192  # side of a panel in the KV-group view
CACHE_BYTES = 64 * 2**20  # overview tiles kept on the Python side (LRU)
PRECOMPUTE_FROM = 16384  # longer texts get the first view's overview computed while building
CIRCUITSVIS_MAX_CELLS = 4 * 1024 * 1024  # heads x pos^2 handed to CircuitsVis at most
VIEWS = ("head", "group", "text")
ROLES = ("query", "key")


def explorer_layers(lens: Lens, text: TextOrTokens, layers: Sequence[int] | None
                    ) -> tuple[list[int] | None, str]:
    """The layers the explorer keeps and the notice it shows. On Llama 3.2 Vision: the text
    decoder's self-attention layers (default all of them); a cross-attention layer, or a text
    holding ``<|image|>``, raises ``UnsupportedFeatureError`` pointing to ``ImageAttention``."""
    if not lens.is_vision:
        return (None if layers is None else list(layers)), ""
    cross = lens.cross_attention_layers
    where = (f"cross-attention layers {cross} (text -> image tokens) are in "
             "lensnb.ImageAttention(lens, text, image)")
    ids = lens.to_tokens(text)
    marker = lens.image_token  # None where the model takes no images
    image_id = lens.tokenizer.convert_tokens_to_ids(marker) if marker else None
    if image_id is not None and bool((ids == image_id).any()):
        raise UnsupportedFeatureError(
            "AttentionExplorer shows a Llama 3.2 Vision model's self-attention on text alone, "
            f"but the text holds <|image|>: remove it, or see the picture through the {where}")
    if layers is None:
        chosen = lens.self_attention_layers
    else:
        chosen = [lens.require_self_attention(la, "AttentionExplorer") for la in layers]
    return chosen, (f"Llama 3.2 Vision: the text decoder's self-attention layers "
                    f"{lens.self_attention_layers} are shown; its {where}.")


def _quantise(tile: torch.Tensor) -> tuple[Array, float]:
    """A non-negative tile as a uint8 buffer scaled to its max: ``(array, vmax)``."""
    vmax = float(tile.max()) if tile.numel() else 0.0
    return Array(tile / vmax if vmax > 0 else tile, "uint8"), vmax


class AttentionExplorer(LensWidget):
    """Attention patterns of one text, per query head and per KV group.

    ``AttentionExplorer(lens, text, layers=None)`` runs the model once and keeps the rotated
    queries and keys of ``layers`` (all by default); patterns are recomputed per head when the
    browser asks (they equal ``hook_pattern``). Views: ``"head"`` (heatmap with zoom/pan,
    hover shows query, key and exact weight), ``"group"`` (a KV group's heads side by side and
    their mean/max/spread), ``"text"`` (tokens coloured by the attention a chosen token sends as
    query or receives as key). ``layer``, ``head``, ``kv_group``, ``view``, ``text_token`` and
    ``text_role`` are synced: read or set them from Python.

    On a Llama 3.2 Vision lens it shows the text decoder's self-attention layers (text alone);
    the cross-attention layers (text -> image tokens) are ``ImageAttention``'s, and asking for
    one raises ``UnsupportedFeatureError`` saying so.
    """

    _esm_file = ("attention_draw.js", "attention_head.js", "attention_grid.js",
                 "attention_group.js", "attention_text.js", "attention.js")
    _css_file = "attention.css"

    layer = traitlets.Int(0).tag(sync=True)
    head = traitlets.Int(0).tag(sync=True)
    kv_group = traitlets.Int(0).tag(sync=True)
    view = traitlets.Enum(VIEWS, default_value="head").tag(sync=True)
    text_token = traitlets.Int(-1).tag(sync=True)  # -1: the last token
    text_role = traitlets.Enum(ROLES, default_value="query").tag(sync=True)
    # read-only facts for the frontend
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    layers = traitlets.List(traitlets.Int()).tag(sync=True)
    n_heads = traitlets.Int(1).tag(sync=True)
    n_kv = traitlets.Int(1).tag(sync=True)
    sizes = traitlets.Dict().tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)  # shown above the view when non-empty

    def __init__(self, lens: Lens, text: TextOrTokens, layers: Sequence[int] | None = None, *,
                 layer: int | None = None, head: int = 0, view: str = "head",
                 progress: bool | None = None) -> None:
        tokens = lens.to_tokens(text)
        layers, notice = explorer_layers(lens, tokens, layers)
        kept = KeptQK.from_lens(lens, tokens, layers, progress=progress)
        self._kept = kept
        self._cross = lens.cross_attention_layers
        self._overviews: OrderedDict[tuple[int, int], tuple[torch.Tensor, tuple[int, int]]] = (
            OrderedDict())
        self.bytes_sent = 0  # JSON + buffer bytes of every reply so far
        super().__init__(
            tokens=lens.to_str_tokens(tokens), layers=kept.layers, n_heads=kept.n_heads,
            n_kv=kept.n_kv, sizes={"overview": OVERVIEW, "thumb": THUMB, "group": GROUP_PANEL},
            layer=kept.layers[0] if layer is None else layer, view=view, notice=notice,
        )
        self.head = head
        if kept.n_pos > PRECOMPUTE_FROM:  # the first view's overview: one pass, done now
            self._overview(self.layer, self.head)

    # ------------------------------------------------------------------ traits
    @property
    def kept(self) -> KeptQK:
        """The kept rotated queries/keys (``kept.pattern(layer, head)`` for exact patterns)."""
        return self._kept

    @property
    def group_size(self) -> int:
        return self.n_heads // self.n_kv

    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> int:
        value = proposal["value"]
        if self.layers and value not in self.layers:
            hint = (" (a cross-attention layer: see it in lensnb.ImageAttention(lens, text, "
                    "image))" if value in getattr(self, "_cross", ()) else "")
            raise traitlets.TraitError(
                f"layer {value} was not kept{hint}: choose one of {self.layers}")
        return value

    @traitlets.validate("head")
    def _valid_head(self, proposal: dict) -> int:
        try:
            return check_index(proposal["value"], self.n_heads, "head", plural="query heads")
        except IndexError as err:
            raise traitlets.TraitError(str(err)) from None

    @traitlets.validate("kv_group")
    def _valid_group(self, proposal: dict) -> int:
        try:
            return check_index(proposal["value"], self.n_kv, "kv_group", plural="KV groups")
        except IndexError as err:
            raise traitlets.TraitError(str(err)) from None

    @traitlets.validate("text_token")
    def _valid_token(self, proposal: dict) -> int:
        value, n = proposal["value"], len(self.tokens)
        if not n or value == -1:  # -1: the last token (the frontend's default)
            return value
        try:
            return check_position(value, n, "text_token")
        except IndexError as err:
            raise traitlets.TraitError(str(err)) from None

    @traitlets.observe("head")
    def _head_sets_group(self, change: dict) -> None:
        group = change["new"] // self.group_size
        if self.kv_group != group:
            self.kv_group = group

    @traitlets.observe("kv_group")
    def _group_sets_head(self, change: dict) -> None:
        if self.head // self.group_size != change["new"]:
            self.head = change["new"] * self.group_size

    # ------------------------------------------------------------------ data
    def _overview(self, layer: int, head: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """Max-pooled whole pattern of one head (cached, LRU bounded by ``CACHE_BYTES``)."""
        key = (layer, head)
        if key in self._overviews:
            self._overviews.move_to_end(key)
            return self._overviews[key]
        tile, factors = self._kept.pooled(layer, [head], size=OVERVIEW)
        entry = (tile[0], factors)  # [rows, cols] float32
        self._overviews[key] = entry
        while sum(t.numel() * 4 for t, _ in self._overviews.values()) > CACHE_BYTES:
            self._overviews.popitem(last=False)
        return entry

    def answer(self, request: object) -> tuple[dict, Buffers]:
        """Frontend requests: ``tile``, ``thumb``, ``row``, ``column``, ``group``.

        An interrupt (Kernel > Interrupt) during a long one becomes an error reply: the
        frontend shows it and stays usable; nothing half-computed is cached."""
        try:
            return super().answer(request)
        except KeyboardInterrupt:
            raise InterruptedRequestError("interrupted: click again to recompute") from None

    def _layer(self, layer: int | None) -> int:
        layer = self.layer if layer is None else layer
        if layer not in self._kept.q:
            raise IndexRangeError(f"layer {layer} was not kept: kept layers are {self.layers}")
        return layer

    @handles(Tile)
    def _on_tile(self, req: Tile) -> TileReply:
        layer, n = self._layer(req.layer), self._kept.n_pos
        window = [d if v is None else v for v, d in
                  ((req.q0, 0), (req.q1, n), (req.k0, 0), (req.k1, n))]
        if window == [0, n, 0, n]:
            tile, (fq, fk) = self._overview(layer, req.head)
        else:
            size = min(OVERVIEW if req.size is None else req.size, OVERVIEW)
            t, (fq, fk) = self._kept.pooled(layer, [req.head], *window, size=size)
            tile = t[0]
        array, vmax = _quantise(tile)
        return TileReply(vmax=vmax, fq=fq, fk=fk, window=window, tile=array)

    @handles(Thumb)
    def _on_thumb(self, req: Thumb) -> ThumbReply:
        tile, _ = self._overview(self._layer(req.layer), req.head)
        side = (min(THUMB, tile.shape[0]), min(THUMB, tile.shape[1]))
        array, vmax = _quantise(F.adaptive_max_pool2d(tile.float()[None], side)[0])
        return ThumbReply(vmax=vmax, thumb=array)

    @handles(Row)
    def _on_row(self, req: Row) -> WeightsReply:
        return WeightsReply(weights=Array(self._kept.row(self._layer(req.layer), req.head,
                                                         req.pos)))

    @handles(Column)
    def _on_column(self, req: Column) -> WeightsReply:
        return WeightsReply(weights=Array(self._kept.column(self._layer(req.layer), req.head,
                                                            req.pos)))

    @handles(Group)
    def _on_group(self, req: Group) -> GroupReply:
        layer, group = self._layer(req.layer), req.kv_group
        heads, summaries, (f, _) = summaries_pooled(self._kept, layer, group, GROUP_PANEL)
        panels = [(f"H{h}", heads[i]) for i, h in
                  enumerate(range(group * self.group_size, (group + 1) * self.group_size))]
        panels += list(summaries.items())
        metas, tiles = [], {}
        for name, tile in panels:
            tiles[name], vmax = _quantise(tile)
            metas.append({"name": name, "vmax": vmax})
        return GroupReply(panels=metas, f=f, tiles=tiles)

    def send(self, content: dict, buffers: Sequence[bytes] | None = None) -> None:
        self.bytes_sent += len(json.dumps(content)) + sum(len(b) for b in buffers or ())
        super().send(content, buffers)

    def export_requests(self) -> list[dict]:
        """The first view: the selected head's overview, its layer's thumbnails, text row."""
        token = self.text_token if self.text_token >= 0 else len(self.tokens) - 1
        text = Row if self.text_role == "query" else Column
        reqs = ([Tile(layer=self.layer, head=self.head)]
                + [Thumb(layer=self.layer, head=h) for h in range(self.n_heads)]
                + [text(layer=self.layer, head=self.head, pos=token)])
        return [r.wire() for r in reqs]

    # ------------------------------------------------------------------ static figure
    def figure(self, *, style: str | None = None) -> go.Figure:
        """The selected head as a plotly heatmap (max-pooled above ``OVERVIEW`` tokens)."""
        import plotly.graph_objects as go

        from ..export.style import SEQUENTIAL, apply_style

        tile, (fq, fk) = self._overview(self.layer, self.head)
        z = tile.float().cpu().numpy()
        n = len(self.tokens)
        labels = [html.escape(t.replace("\n", "\\n")) for t in self.tokens]
        pooled = fq > 1 or fk > 1
        q_pos = [i * fq for i in range(z.shape[0])]
        k_pos = [j * fk for j in range(z.shape[1])]
        custom = [[f"{labels[q]} → {labels[k]}" for k in k_pos] for q in q_pos] if n <= 256 \
            else None
        fig = go.Figure(go.Heatmap(
            z=z, x=k_pos, y=q_pos, colorscale=SEQUENTIAL, zmin=0, customdata=custom,
            colorbar=dict(title="max weight" if pooled else "weight"),
            hovertemplate=("%{customdata}<br>" if custom else "q %{y} → k %{x}<br>")
            + "weight %{z:.4f}<extra></extra>"))
        step = max(1, math.ceil(n / 24))
        ticks = list(range(0, n, step))
        axis = dict(tickmode="array", tickvals=ticks,
                    ticktext=[labels[i] if n <= 48 else str(i) for i in ticks])
        title = f"L{self.layer}H{self.head} (KV group {self.kv_group})"
        if pooled:
            title += f", max over {fq}×{fk} blocks"
        fig.update_layout(title=title, xaxis=dict(title="key", side="top", **axis),
                          yaxis=dict(title="query", autorange="reversed", **axis))
        return apply_style(fig, style)

    # ------------------------------------------------------------------ interop
    def to_circuitsvis(self, layer: int | None = None, heads: Sequence[int] | None = None,
                       ) -> CircuitsVisHTML:
        """CircuitsVis ``attention_patterns`` for ``heads`` of ``layer``, offline.

        CircuitsVis embeds every weight as JSON text (about 12 bytes per cell), so the selection
        is bounded: ``len(heads) x pos^2 <= CIRCUITSVIS_MAX_CELLS`` (4 Mi cells, ~50 MB of
        HTML). The returned object inlines CircuitsVis's bundled JavaScript and, unlike
        CircuitsVis's own object, never checks the network when displayed.
        """
        from circuitsvis.utils.render import render_local

        layer = self.layer if layer is None else layer
        heads = list(range(self.n_heads)) if heads is None else list(heads)
        n = len(self.tokens)
        cells = len(heads) * n * n
        if cells > CIRCUITSVIS_MAX_CELLS:
            most = max(0, CIRCUITSVIS_MAX_CELLS // (n * n))
            raise InputError(
                f"{len(heads)} heads x {n}^2 tokens = {cells:,} weights is above CircuitsVis's "
                f"limit here ({CIRCUITSVIS_MAX_CELLS:,}, ~50 MB of HTML): pass at most {most} "
                "heads (heads=[...]) or a shorter text, or use the explorer itself"
            )
        pattern = self._kept.pattern(layer, heads)  # [heads, pos, pos]
        return CircuitsVisHTML(render_local("AttentionPatterns", tokens=list(self.tokens),
                                            attention=pattern.numpy()))


class CircuitsVisHTML:
    """CircuitsVis HTML with its JavaScript inlined: displays offline, opens no connection."""

    def __init__(self, html_source: str):
        self.html = html_source

    def _repr_html_(self) -> str:
        return self.html

    def __html__(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<CircuitsVisHTML: {len(self.html):,} characters, offline>"
