"""Every widget's requests and replies: the named schemas of the wire protocol
(``protocol.py``), in one place, one section per widget.

A request is what a frontend asks with ``request(model, name, params)``: a dataclass whose
fields are the parameters, checked on arrival. A reply is what the widget's ``@handles`` method
returns: JSON fields and named buffers (``buffer()`` fields, read in JS as ``buffers.<name>``).
The handlers live in the widget modules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..patching.ablation import HOWS as _ABLATION_HOWS
from ..patching.activation import METHODS as _PATCHING_METHODS
from ..patching.sites import SITES as _PATCHING_SITES
from .protocol import Array, Reply, Request, buffer, param, request_schema

MODES = ("head", "kv_group", "mean")  # head choices over a cross-attention row
PATCH_VALUES = ("zero", "scale", "source")  # GenerationStepper.add_patch value kinds


# ------------------------------------------------------------------ AttentionExplorer
@request_schema("tile")
class Tile(Request):
    """A head's pattern, max-pooled to at most ``size`` cells a side, over the window
    ``[q0, q1) x [k0, k1)`` (default: the whole text, the cached overview)."""

    layer: int | None = param(None, doc="a kept layer; null: the current one")
    head: int = param(ge=0)
    q0: int | None = param(None, ge=0)
    q1: int | None = param(None, ge=1)
    k0: int | None = param(None, ge=0)
    k1: int | None = param(None, ge=1)
    size: int | None = param(None, ge=1, doc="largest side in cells (at most OVERVIEW)")


@request_schema("thumb")
class Thumb(Request):
    """A head's thumbnail for the head grid (at most ``THUMB`` cells a side)."""

    layer: int | None = param(None)
    head: int = param(ge=0)


@request_schema("row")
class Row(Request):
    """The exact weights query ``pos`` gives every key (float32)."""

    layer: int | None = param(None)
    head: int = param(ge=0)
    pos: int = param(ge=0)


@request_schema("column")
class Column(Row):
    """The exact weights every query gives key ``pos`` (float32)."""


@request_schema("group")
class Group(Request):
    """A KV group's heads and their mean/max/spread, pooled to ``GROUP_PANEL`` a side."""

    layer: int | None = param(None)
    kv_group: int = param(ge=0)


@dataclass
class TileReply(Reply):
    """A pooled tile: block factors ``fq x fk`` over ``window`` (q0, q1, k0, k1)."""

    vmax: float
    fq: int
    fk: int
    window: list[int]
    tile: Array = buffer(doc="uint8 [rows, cols], weight = byte / 255 * vmax")


@dataclass
class ThumbReply(Reply):
    """A head-grid thumbnail."""

    vmax: float
    thumb: Array = buffer(doc="uint8 [rows, cols], weight = byte / 255 * vmax")


@dataclass
class WeightsReply(Reply):
    """Exact weights of one row or column."""

    weights: Array = buffer(doc="float32 [pos]")


@dataclass
class GroupReply(Reply):
    """A KV group's head panels and summaries, pooled by ``f`` a side."""

    panels: list[dict]  # [{name, vmax}] in the order shown: H<h>..., mean, max, spread
    f: int
    tiles: dict[str, Array] = buffer(doc="name -> uint8 [rows, cols]")


# ------------------------------------------------------------------ ImageAttention
@request_schema("grid")
class Grid(Request):
    """The heatmap over the picture for a layer, a text token and a head choice (null: the
    widget's current value)."""

    layer: int | None = param(None)
    token: int | None = param(None)
    mode: str | None = param(None, choices=(*MODES, None))
    head: int | None = param(None, ge=0)
    kv_group: int | None = param(None, ge=0)


@dataclass
class GridReply(Reply):
    """A grid over the picture and where the attention went (``picture_grid``'s summary)."""

    on_picture: float
    on_class_tokens: float
    total: float
    grid: Array = buffer(doc="float32 [rows, cols] over the picture's patches")


# ------------------------------------------------------------------ GenerationStepper
@request_schema("state")
class State(Request):
    """Every step so far."""


@request_schema("step")
class StepOnce(Request):
    """Generate one more token."""


@request_schema("reset")
class Reset(Request):
    """Start again from the prompt (with the current patches)."""


@request_schema("clear_patches")
class ClearPatches(Request):
    """Remove every patch and restart."""


@request_schema("add_patch")
class AddPatch(Request):
    """``GenerationStepper.add_patch`` from the patch panel."""

    layer: int = param()
    hook: str = param("hook_resid_post")
    position: int | None = param(-1)
    value: str = param("zero", choices=PATCH_VALUES)
    scale: float = param(0.0)
    source_prompt: str | None = param(None)
    source_position: int = param(-1)
    every_generated: bool = param(False)


@request_schema("attention")
class Attention(Request):
    """The newest token's attention per head in a self-attention layer (null: the last)."""

    layer: int | None = param(None)


@request_schema("explorer")
class Explorer(Request):
    """Build an ``AttentionExplorer`` on the current text (``stepper.explorer``)."""


@request_schema("cross")
class Cross(Request):
    """Where the position that wrote step ``step``'s token looked in the picture (null:
    the widget's current layer and head choice)."""

    step: int = param(-1)
    layer: int | None = param(None)
    mode: str | None = param(None, choices=(*MODES, None))
    head: int | None = param(None, ge=0)
    kv_group: int | None = param(None, ge=0)


@dataclass
class StateReply(Reply):
    """Every step so far: JSON per step, its buffers by step index."""

    steps: list[dict]  # [{index, token, id, position, top_texts, lens_top}]
    done: bool
    stop_reason: str
    top: list[Array] = buffer(doc="per step: float32 [top_k_probs] probabilities of top_texts")
    lens: list[Array | None] = buffer(doc="per step: float32 [n_layers] logit lens")


@dataclass
class StepReply(Reply):
    """One new step (or none: generation has stopped)."""

    step: dict | None  # as in StateReply.steps; null once generation has stopped
    done: bool
    stop_reason: str
    top: Array | None = buffer(None)
    lens: Array | None = buffer(None)


@dataclass
class AttentionReply(Reply):
    """The newest token's attention per head over ``tokens``."""

    layer: int
    tokens: list[str]
    patched: bool
    weights: Array = buffer(doc="float32 [n_heads, pos]")


@dataclass
class CrossReply(GridReply):
    """A step's cross-attention grid over the picture."""

    step: int
    token: str


# ------------------------------------------------------------------ RopeSpectrum
@request_schema("params")
class RopeParams(Request):
    """Slider values (null: the widget's current value); ``RopeSpectrum.edited_config``
    checks them together (high_freq_factor > low_freq_factor)."""

    theta: float | None = param(None, gt=0)
    factor: float | None = param(None, ge=1)
    low_freq_factor: float | None = param(None, gt=0)
    high_freq_factor: float | None = param(None, gt=0)
    original_context: int | None = param(None, ge=1)

    def values(self) -> dict[str, Any]:
        """The values given (the others: the sliders)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}


@request_schema("spectrum")
class Spectrum(Request):
    """``spectrum_data`` for ``params`` (null: the sliders)."""

    params: RopeParams | None = param(None)


@request_schema("decay")
class Decay(Spectrum):
    """``decay_data`` for ``params`` (null: the sliders)."""


@request_schema("usage")
class Usage(Request):
    """``usage(which)``: per-head frequency usage (null: ``usage_which``)."""

    which: str | None = param(None, choices=("q", "k", None))


@dataclass
class SpectrumReply(Reply):
    """``spectrum_data``: per series, the columns of ``lensnb.rope.spectrum``."""

    series: list[dict]  # [{label, role}]: the edited model, then the comparisons
    bands: dict | None
    original_context: int
    regions: list[str]  # names of the region codes
    base_inv_freq: list[Array] = buffer(doc="per series: float32 [n_pairs]")
    inv_freq: list[Array] = buffer(doc="per series: float32 [n_pairs]")
    base_wavelength: list[Array] = buffer(doc="per series: float32 [n_pairs]")
    wavelength: list[Array] = buffer(doc="per series: float32 [n_pairs]")
    smooth: list[Array] = buffer(doc="per series: float32 [n_pairs] smoothing weight")
    region: list[Array] = buffer(doc="per series: int32 [n_pairs], index into regions")


@dataclass
class DecayReply(Reply):
    """``decay_data``: the mean cosine per distance, per series."""

    series: list[dict]  # [{label, role}]
    original_context: int
    distances: Array = buffer(doc="float32 [n]")
    score: list[Array] = buffer(doc="per series: float32 [n]")


@dataclass
class UsageReply(Reply):
    """``usage(which)`` flattened to rows (layer, head) and the wavelength per pair."""

    n_layers: int
    n_heads: int
    which: str
    usage: Array = buffer(doc="float32 [n_layers * n_heads, n_pairs]")
    wavelength: Array = buffer(doc="float32 [n_pairs] of the model's own config")


# ------------------------------------------------------------------ PatchingWorkbench
# (the explorer's Tile, Row, Column and Group above answer its head and KV-group views)
SITES = tuple(_PATCHING_SITES)  # lensnb.patching's sites, in the order the switches show them
METHODS = _PATCHING_METHODS  # "exact", "attribution"
ABLATIONS = _ABLATION_HOWS  # "zero", "mean"
PROMPTS = ("clean", "corrupted")


@request_schema("sweep")
class Sweep(Request):
    """A sweep as far as it is computed (nothing is computed: NaN rows are still to come)."""

    site: str = param(choices=SITES)
    method: str = param("exact", choices=METHODS)


@request_schema("sweep_step")
class SweepStep(Sweep):
    """Compute the next few layers of a sweep (sized to about a second; attribution: all of
    them) and reply with the sweep so far. The frontend asks again until ``complete``: its Stop
    button is the frontend not asking again."""


@dataclass
class SweepReply(Reply):
    """A sweep so far: rows are layers, NaN where not computed yet."""

    site: str
    method: str
    dims: list[str]  # the axis names of scores, e.g. ["layer", "position"]
    layers: list[int]  # the rows
    done: list[int]  # the layers computed so far
    complete: bool
    clean_value: float | None  # the raw metric (logit difference) of the two runs
    corrupted_value: float | None
    seconds: float  # compute time spent on this sweep so far
    scores: Array = buffer(doc="float32 [n_layers, n_positions | n_heads | n_kv] or "
                               "[n_layers, n_positions, n_heads] (head_by_pos); NaN: not yet")


@request_schema("dla")
class Dla(Request):
    """Direct logit attribution of ``answer - wrong`` on the clean prompt, every component."""


@dataclass
class DlaReply(Reply):
    """``lens.logit_attribution(clean, answer, wrong)`` in logit units."""

    logit_diff: float
    embed: float
    heads: Array = buffer(doc="float32 [n_layers, n_heads]")
    mlp: Array = buffer(doc="float32 [n_layers]")


@request_schema("ablate")
class Ablate(Request):
    """The metric on the clean prompt with these heads / KV groups ablated (``lensnb.ablation``
    + ``lens.run_with_hooks``); sets the widget's ablation traits."""

    heads: list[list[int]] = param(doc="[[layer, head], ...]")
    kv_groups: list[list[int]] = param(doc="[[layer, kv_group], ...]")
    how: str = param("zero", choices=ABLATIONS)


@dataclass
class AblateReply(Reply):
    """The ablated value beside the two reference runs (logit-difference units)."""

    value: float
    clean_value: float
    corrupted_value: float
    normalised: float | None  # (value - corrupted) / (clean - corrupted); null if they tie
    heads: list[list[int]]
    kv_groups: list[list[int]]
    how: str


@request_schema("logit_lens")
class LogitLensRequest(Request):
    """``lensnb.logit_lens`` of one prompt: top tokens and the answer's and wrong token's
    probability at every layer and position."""

    prompt: str = param("clean", choices=PROMPTS)


@dataclass
class LogitLensReply(Reply):
    """Rows: the embedding, then every block's output (``ll.top_*`` of the logit lens)."""

    prompt: str
    rows: list[str]  # row labels: "embed", "L0", ...
    tokens: list[str]  # the prompt's tokens (columns)
    top_tokens: list[list[list[str]]]  # [rows][positions][k]
    top_probs: Array = buffer(doc="float32 [rows, positions, k]")
    answer: Array = buffer(doc="float32 [rows, positions]: the answer's probability")
    wrong: Array = buffer(doc="float32 [rows, positions]: the wrong token's probability")
