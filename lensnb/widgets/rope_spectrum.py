"""``RopeSpectrum``: RoPE frequencies of a model, Llama 3.1 smoothing, head usage and decay.

Every number comes from ``lensnb.rope`` (transformers' own rope functions); the frontend only
draws. Moving a slider sets the trait and asks Python for the recomputed arrays (float32
buffers), so what the browser shows and what ``figure()`` exports are the same data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import traitlets

from ..analysis import rope
from ..core import theme
from ..core.errors import InputError
from ..core.facts import catalogue, config_dict
from ..lens import Lens
from .base import LensWidget
from .protocol import Array, Request, handles
from .requests import Decay, DecayReply, RopeParams, Spectrum, SpectrumReply, Usage, UsageReply

if TYPE_CHECKING:
    import plotly.graph_objects as go

TABS = ("spectrum", "usage", "decay")
Y_AXES = ("wavelength", "inv_freq")
DEFAULT_CONFIG = "meta-llama/Llama-3.1-8B"
DEFAULT_COMPARE = ("meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-3.2-3B")
DEFAULT_TEXT = ("def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n"
                "        a, b = b, a + b\n    return a\n\nprint(fibonacci(10))\n")
DECAY_POINTS = 600
PARAMS = ("theta", "factor", "low_freq_factor", "high_freq_factor", "original_context")
REGION_COLOURS = {region: theme.region_fill(region) for region in theme.REGIONS}
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.22, x=0, xanchor="left")
# published Llama 3.1 values, used when the catalogue is not shipped
LLAMA31_FALLBACK = {
    "_name_or_path": "Llama 3.1 (published values)", "model_type": "llama",
    "hidden_size": 4096, "num_attention_heads": 32, "head_dim": 128,
    "max_position_embeddings": 131072, "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
}


def _label(config_or_lens: Any) -> str:
    if isinstance(config_or_lens, Lens):
        return config_or_lens.name
    if isinstance(config_or_lens, str):
        return config_or_lens.removeprefix("meta-llama/")
    try:
        return str(config_dict(config_or_lens)[0]).removeprefix("meta-llama/")
    except (TypeError, ValueError):
        return type(config_or_lens).__name__


class RopeSpectrum(LensWidget):
    """RoPE frequencies per rotary pair, original vs scaled, with live Llama 3.1 parameters.

    ``RopeSpectrum(config_or_lens=None, *, compare=(...), text=None)``: ``config_or_lens`` is
    the model to edit (a ``Lens``, config, dict or catalogue name; default Llama 3.1 8B);
    ``compare`` overlays other configs (names, configs, or ``{label: config}``; default Llama 3
    8B and Llama 3.2 3B from the catalogue); ``text`` is the prompt for the per-head frequency
    usage tab (only with a ``Lens``).

    Tabs (``tab``): ``"spectrum"`` (wavelength or inverse frequency per pair on a log axis, the
    three Llama 3.1 regions shaded, the original context marked), ``"usage"`` (per-head share of
    query/key norm per pair, ``lensnb.rope.frequency_usage``) and ``"decay"`` (mean cos of the
    rotation at relative distance d: RoPE's long-range decay, original vs scaled).
    Synced, settable from Python: ``theta``, ``factor``, ``low_freq_factor``,
    ``high_freq_factor``, ``original_context`` (the edited config becomes ``llama3`` scaling
    with these values), ``y_axis``, ``log_y``, ``show_original``, ``usage_which``.
    """

    _esm_file = ("rope_chart.js", "rope_views.js", "rope_spectrum.js")
    _css_file = "rope_spectrum.css"

    tab = traitlets.Enum(TABS, default_value="spectrum").tag(sync=True)
    y_axis = traitlets.Enum(Y_AXES, default_value="wavelength").tag(sync=True)
    log_y = traitlets.Bool(True).tag(sync=True)
    show_original = traitlets.Bool(True).tag(sync=True)
    usage_which = traitlets.Enum(("q", "k"), default_value="q").tag(sync=True)
    theta = traitlets.Float(500000.0).tag(sync=True)
    factor = traitlets.Float(8.0).tag(sync=True)
    low_freq_factor = traitlets.Float(1.0).tag(sync=True)
    high_freq_factor = traitlets.Float(4.0).tag(sync=True)
    original_context = traitlets.Int(8192).tag(sync=True)
    # read-only facts for the frontend
    label = traitlets.Unicode("").tag(sync=True)
    compare_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    initial = traitlets.Dict().tag(sync=True)
    has_usage = traitlets.Bool(False).tag(sync=True)

    def __init__(self, config_or_lens: Any = None, *,
                 compare: Sequence[Any] | Mapping[str, Any] | None = DEFAULT_COMPARE,
                 text: Any = None, tab: str = "spectrum", y_axis: str = "wavelength",
                 log_y: bool = True) -> None:
        if config_or_lens is None:
            config_or_lens = DEFAULT_CONFIG if DEFAULT_CONFIG in catalogue() else LLAMA31_FALLBACK
        self._lens: Lens | None = config_or_lens if isinstance(config_or_lens, Lens) else None
        usage = self._lens is not None and self._lens.capabilities.rope_frequency_usage
        if self._lens is not None:  # up front: no RoPE (GPT-2), or no per-head usage (Mllama)
            self._lens.require("rope", "RopeSpectrum of this lens", rope.NO_ROPE_INSTEAD)
            if not usage and (text is not None or tab == "usage"):
                rope.require_usage(self._lens)
        self._config = rope.rope_config(config_or_lens)
        self._text = DEFAULT_TEXT if text is None else text
        self._usage: dict[str, torch.Tensor] = {}
        self._compare = self._compare_list(compare)
        initial = self._initial_params()
        super().__init__(label=_label(config_or_lens),
                         compare_labels=[lab for lab, _ in self._compare], initial=initial,
                         has_usage=usage, tab=tab,
                         y_axis=y_axis, log_y=log_y,
                         **initial)

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _compare_list(compare: Any) -> list[tuple[str, Any]]:
        if compare is None:
            return []
        if compare is DEFAULT_COMPARE:
            names = catalogue()
            return [(_label(n), rope.rope_config(n)) for n in compare if n in names]
        if isinstance(compare, Mapping):
            return [(str(k), rope.rope_config(v)) for k, v in compare.items()]
        if isinstance(compare, (str, dict)) or not isinstance(compare, Sequence):
            compare = [compare]
        return [(_label(c), rope.rope_config(c)) for c in compare]

    def _initial_params(self) -> dict[str, Any]:
        cfg = self._config
        p = cfg.rope_parameters
        llama3 = p.get("rope_type") == "llama3"
        return {
            "theta": float(p["rope_theta"]),
            "factor": float(p["factor"]) if llama3 else rope.scaling_factor(cfg),
            "low_freq_factor": float(p["low_freq_factor"]) if llama3 else 1.0,
            "high_freq_factor": float(p["high_freq_factor"]) if llama3 else 4.0,
            "original_context": rope.original_context(cfg),
        }

    # ------------------------------------------------------------------ validation

    # ------------------------------------------------------------------ configs
    def params(self) -> dict[str, Any]:
        """The current slider values."""
        return {k: getattr(self, k) for k in PARAMS}

    def edited_config(self, params: Mapping[str, Any] | None = None) -> Any:
        """The edited model's config for ``params`` (default: the sliders): unchanged while the
        sliders sit at the model's own values, otherwise ``llama3`` scaling with them."""
        p = {**self.params(), **(params or {})}
        theta, factor = float(p["theta"]), float(p["factor"])
        low, high = float(p["low_freq_factor"]), float(p["high_freq_factor"])
        orig = int(p["original_context"])
        if theta <= 0 or factor < 1 or orig < 1 or low <= 0:
            raise InputError(f"need theta > 0, factor >= 1, low_freq_factor > 0 and "
                             f"original_context >= 1; got {p}")
        if high <= low:
            raise InputError(f"high_freq_factor ({high}) must be greater than low_freq_factor "
                             f"({low})")
        same = all(math.isclose(float(p[k]), float(self.initial[k])) for k in PARAMS)
        if same and self._config.rope_parameters.get("rope_type") != "llama3":
            return self._config
        return rope.rope_config(self._config, rope_type="llama3", rope_theta=theta,
                                factor=factor, low_freq_factor=low, high_freq_factor=high,
                                original_max_position_embeddings=orig)

    def _series(self, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """``[{label, role, config}]``: the edited model, then the comparisons."""
        out = [{"label": self.label, "role": "edited", "config": self.edited_config(params)}]
        out += [{"label": lab, "role": "compare", "config": cfg} for lab, cfg in self._compare]
        return out

    # ------------------------------------------------------------------ data
    def spectrum_data(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the spectrum view shows: ``{"series": [{label, role, frame}], "bands",
        "original_context"}``; each ``frame`` is ``lensnb.rope.spectrum`` of that config."""
        series = self._series(params)
        edited = series[0]["config"]
        for s in series:
            s["frame"] = rope.spectrum(s.pop("config"))
        return {"series": series, "bands": rope.llama3_bands(edited),
                "original_context": rope.original_context(edited)}

    def decay_data(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"distances": [n], "series": [{label, role, score [n]}], "original_context"}``:
        ``lensnb.rope.decay_curve`` of the edited model (scaled and original) and comparisons."""
        series = self._series(params)
        edited = series[0]["config"]
        top = 4 * max(rope.original_context(edited), edited.max_position_embeddings)
        distances = np.unique(np.rint(np.geomspace(1, top, DECAY_POINTS)).astype(np.int64))
        out = []
        for s in series:
            dist, score = rope.decay_curve(s["config"], distances)
            out.append({"label": s["label"], "role": s["role"], "score": score})
            if s["role"] == "edited":
                _, base = rope.decay_curve(s["config"], distances, scaled=False)
                out.append({"label": f"{s['label']} (unscaled)", "role": "original",
                            "score": base})
        return {"distances": dist, "series": out,
                "original_context": rope.original_context(edited)}

    def usage(self, which: str | None = None) -> torch.Tensor:
        """``lensnb.rope.frequency_usage`` of the loaded model on ``text``:
        ``[n_layers, n_heads (or n_kv for "k"), d_head/2]`` (cached)."""
        which = which or self.usage_which
        if self._lens is None:
            raise InputError("per-head frequency usage needs a loaded model: "
                             "RopeSpectrum(lensnb.load(...), text=...)")
        if which not in self._usage:
            self._usage[which] = rope.frequency_usage(self._lens, self._text, which=which)
        return self._usage[which]

    # ------------------------------------------------------------------ frontend requests
    @handles(Spectrum)
    def _on_spectrum(self, req: Spectrum) -> SpectrumReply:
        data = self.spectrum_data(req.params.values() if req.params else None)
        regions = [*rope.REGIONS, rope.UNSCALED]
        frames = [s["frame"] for s in data["series"]]

        def column(name: str, dtype: str = "float32") -> list[Array]:
            return [Array(np.asarray(f[name]), dtype) for f in frames]

        codes = [Array(f["region"].map({r: i for i, r in enumerate(regions)}).to_numpy(),
                       "int32") for f in frames]
        return SpectrumReply(
            series=[{"label": s["label"], "role": s["role"]} for s in data["series"]],
            bands=data["bands"], original_context=data["original_context"], regions=regions,
            base_inv_freq=column("base_inv_freq"), inv_freq=column("inv_freq"),
            base_wavelength=column("base_wavelength"), wavelength=column("wavelength"),
            smooth=column("smooth"), region=codes)

    @handles(Decay)
    def _on_decay(self, req: Decay) -> DecayReply:
        data = self.decay_data(req.params.values() if req.params else None)
        return DecayReply(
            series=[{"label": s["label"], "role": s["role"]} for s in data["series"]],
            original_context=data["original_context"],
            distances=Array(data["distances"].double()),
            score=[Array(s["score"]) for s in data["series"]])

    @handles(Usage)
    def _on_usage(self, req: Usage) -> UsageReply:
        which = req.which or self.usage_which
        u = self.usage(which)  # [L, H, P]
        wavelength = rope.spectrum(self._config)["wavelength"].to_numpy()
        return UsageReply(n_layers=u.shape[0], n_heads=u.shape[1], which=which,
                          usage=Array(u.reshape(-1, u.shape[-1])), wavelength=Array(wavelength))

    def export_requests(self) -> list[dict]:
        """Every tab at the current slider values (the usage tab for both q and k)."""
        params = RopeParams(**self.params())
        out: list[Request] = [Spectrum(params=params), Decay(params=params)]
        if self._lens is not None:
            out += [Usage(which="q"), Usage(which="k")]
        return [r.wire() for r in out]

    # ------------------------------------------------------------------ static figure
    def figure(self, *, style: str | None = None) -> go.Figure:
        """The current tab as a plotly figure (``style="paper"`` for publication sizing)."""
        from ..export.style import apply_style

        fig = {"spectrum": self._spectrum_figure, "usage": self._usage_figure,
               "decay": self._decay_figure}[self.tab]()
        return apply_style(fig, style)

    def _spectrum_figure(self) -> go.Figure:
        import plotly.graph_objects as go

        data = self.spectrum_data()
        wave = self.y_axis == "wavelength"
        to_y = (lambda w: w) if wave else (lambda w: 2 * math.pi / w)
        fig = go.Figure()
        bands = data["bands"]
        if bands:
            frame = data["series"][0]["frame"]
            lo_w = float(min(frame["base_wavelength"].min(), frame["wavelength"].min())) / 2
            hi_w = float(max(frame["base_wavelength"].max(), frame["wavelength"].max())) * 2
            edges = [lo_w, bands["high_freq_wavelen"], bands["low_freq_wavelen"], hi_w]
            for (a, b), region in zip(itertools.pairwise(edges), rope.REGIONS, strict=True):
                y0, y1 = sorted((to_y(a), to_y(b)))
                fig.add_hrect(y0=y0, y1=y1, fillcolor=REGION_COLOURS[region], line_width=0,
                              layer="below")
                # annotations on a log axis take log10 coordinates (shapes take data values)
                mid = math.sqrt(y0 * y1) if self.log_y else (y0 + y1) / 2
                fig.add_annotation(x=1, xref="paper", xanchor="right", showarrow=False,
                                   y=math.log10(mid) if self.log_y else mid, text=region,
                                   font=dict(size=10, color=theme.ui("fg_muted")))
        column = "wavelength" if wave else "inv_freq"
        for i, s in enumerate(data["series"]):
            f = s["frame"]
            if s["role"] == "edited" and self.show_original:
                fig.add_trace(go.Scatter(
                    x=f["pair"], y=f[f"base_{column}"], mode="lines",
                    name=f"{s['label']} (unscaled)",
                    line=dict(dash="dash", color=theme.ui("fg_muted"),
                              width=theme.LINES["normal"])))
            fig.add_trace(go.Scatter(
                x=f["pair"], y=f[column], mode="lines+markers" if len(f) <= 64 else "lines",
                name=s["label"] if s["role"] == "compare" else f"{s['label']} (scaled)",
                marker=dict(size=4, color=theme.series_colour(i)),
                line=dict(width=theme.LINES["emphasis" if s["role"] == "edited" else "normal"],
                          color=theme.series_colour(i)),
                customdata=np.stack([f["region"], f["smooth"].round(3)], axis=-1),
                hovertemplate="pair %{x}<br>%{y:.4g}<br>%{customdata[0]}, "
                              "s=%{customdata[1]}<extra></extra>"))
        orig = data["original_context"]
        fig.add_hline(y=to_y(orig), line=dict(color=theme.ui("fg"), dash="dot",
                                              width=theme.LINES["reference"]))
        fig.add_annotation(x=0, xref="paper", xanchor="left", yanchor="bottom", showarrow=False,
                           y=math.log10(to_y(orig)) if self.log_y else to_y(orig),
                           text=f"original context {orig:,}", font=dict(size=10))
        fig.update_xaxes(title_text="rotary pair i (dims i, i + d/2)")
        fig.update_yaxes(type="log" if self.log_y else "linear",
                         title_text="wavelength (tokens)" if wave else "inverse frequency "
                                                                      "(rad / token)")
        fig.update_layout(title=f"RoPE spectrum: {self.label}", legend=LEGEND_BELOW)
        return fig

    def _usage_figure(self) -> go.Figure:
        import plotly.graph_objects as go

        from ..export.style import SEQUENTIAL

        u = self.usage()  # [L, H, P]
        n_layers, n_heads, n_pairs = u.shape
        kind = "query" if self.usage_which == "q" else "KV"
        rows = [f"L{layer} {kind[0].upper()}{h}" for layer in range(n_layers)
                for h in range(n_heads)]
        fig = go.Figure(go.Heatmap(
            z=u.reshape(-1, n_pairs).numpy(), x=list(range(n_pairs)), y=rows,
            colorscale=SEQUENTIAL, zmin=0, colorbar=dict(title="share of |q|²"
                                                         if self.usage_which == "q"
                                                         else "share of |k|²"),
            hovertemplate="%{y}, pair %{x}: %{z:.3f}<extra></extra>"))
        fig.update_yaxes(autorange="reversed", title_text=f"layer, {kind} head")
        fig.update_xaxes(title_text="rotary pair (high → low frequency)")
        fig.update_layout(title=f"{kind} norm per frequency pair: {self.label}")
        return fig

    def _decay_figure(self) -> go.Figure:
        import plotly.graph_objects as go

        data = self.decay_data()
        fig = go.Figure()
        x = data["distances"].numpy()
        colours = (theme.series_colour(i) for i in itertools.count())
        for s in data["series"]:
            fig.add_trace(go.Scatter(
                x=x, y=s["score"].numpy(), mode="lines", name=s["label"] if s["role"] !=
                "edited" else f"{s['label']} (scaled)",
                line=dict(width=theme.LINES["normal" if s["role"] == "edited" else "thin"],
                          color=theme.ui("fg_muted") if s["role"] == "original"
                          else next(colours),
                          dash="dash" if s["role"] == "original" else None)))
        orig = data["original_context"]
        fig.add_vline(x=orig, line=dict(color=theme.ui("fg"), dash="dot",
                                        width=theme.LINES["reference"]))
        fig.add_annotation(x=math.log10(orig), y=1, yref="paper", xanchor="left",
                           yanchor="top", showarrow=False, text=f" original context {orig:,}",
                           font=dict(size=10))  # log axis: annotations take log10(x)
        fig.update_xaxes(type="log", title_text="relative distance (tokens)",
                         range=[math.log10(max(float(x[0]), 1.0)), math.log10(float(x[-1]))])
        fig.update_yaxes(title_text="mean cos(d·θᵢ) (unit q = k)")
        fig.update_layout(title=f"RoPE long-range decay: {self.label}", legend=LEGEND_BELOW)
        return fig

    def __repr__(self) -> str:
        return f"<RopeSpectrum {self.label!r} tab={self.tab!r}>"
