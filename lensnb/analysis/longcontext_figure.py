"""The plotly figure of a ``LongContextProfile``: mass by distance per head, RoPE wavelengths."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core.errors import IndexRangeError

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .longcontext import LongContextProfile


def bin_centres(edges: np.ndarray) -> np.ndarray:
    """Where each distance bin sits on a log axis: 0.5 for ``d = 0``, else the geometric mean
    of its first and last distance."""
    lo, hi = edges[:-1].astype(float), edges[1:].astype(float) - 1
    return np.where(lo == 0, 0.5, np.sqrt(np.maximum(lo, 1) * np.maximum(hi, 1)))


def profile_figure(profile: LongContextProfile, layer: int | None = None, *,
                   style: str | None = None) -> go.Figure:
    """Lines of mass per distance bin, one per head of each layer (buttons pick the layer);
    reach 50/90 % as markers on each line; RoPE wavelengths (original grey, smoothed black)
    as ticks along the bottom."""
    import html

    import plotly.graph_objects as go

    from ..core import theme
    from ..export.style import apply_style

    layer = profile.layers[0] if layer is None else layer
    if layer not in profile.layers:
        raise IndexRangeError(f"layer {layer} is not in the profile: {profile.layers}")
    x = bin_centres(profile.edges)
    fig = go.Figure()
    n_heads = profile.sink.shape[1]
    owner: list[int] = []  # layer of each trace (None-layer traces: always visible)
    for li, la in enumerate(profile.layers):
        for h in range(n_heads):
            colour = theme.series_colour(h)
            y = profile.distance[li, h].numpy()
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines", name=f"H{h}", line=dict(color=colour),
                legendgroup=f"H{h}", visible=la == layer,
                hovertemplate=f"L{la}H{h}<br>distance ~%{{x:.0f}}<br>mass %{{y:.3f}}"
                              f"<br>sink {float(profile.sink[li, h]):.3f}<extra></extra>"))
            owner.append(la)
            rx = [float(profile.reach[f][li, h]) for f in profile.reach]
            ry = [float(np.interp(np.log(max(r, 0.5)), np.log(x), y)) for r in rx]
            fig.add_trace(go.Scatter(
                x=[max(r, 0.5) for r in rx], y=ry, mode="markers", showlegend=False,
                legendgroup=f"H{h}", visible=la == layer,
                marker=dict(color=colour, symbol=["circle", "diamond"] * 4, size=8),
                text=[f"reach {round(f * 100)}%" for f in profile.reach],
                hovertemplate=f"L{la}H{h} %{{text}}: %{{x:.0f}} tokens<extra></extra>"))
            owner.append(la)
    if profile.spectrum is not None:
        for column, colour, name in (
                ("base_wavelength", theme.ui("fg_muted"), "RoPE wavelength (original)"),
                ("wavelength", theme.ui("fg"), "RoPE wavelength (smoothed)")):
            w = profile.spectrum[column].to_numpy()
            w = w[(w >= 0.5) & (w <= profile.n_pos * 4)]
            fig.add_trace(go.Scatter(
                x=w, y=np.full(len(w), -0.02 if column == "wavelength" else -0.05),
                mode="markers", name=html.escape(name),
                marker=dict(symbol="line-ns-open", size=10, color=colour),
                hovertemplate="wavelength %{x:.0f} tokens<extra>" + html.escape(name)
                              + "</extra>"))
            owner.append(-1)
    buttons = [dict(label=f"layer {la}", method="update",
                    args=[{"visible": [o in (-1, la) for o in owner]},
                          {"title": _title(profile, la)}]) for la in profile.layers]
    fig.update_layout(
        title=_title(profile, layer),
        xaxis=dict(type="log", title="distance query - key (tokens, log2 bins)"),
        yaxis=dict(title="mean attention mass", rangemode="tozero"),
        updatemenus=[dict(buttons=buttons, direction="down", x=1.0, xanchor="right", y=1.15,
                          showactive=True)] if len(buttons) > 1 else [])
    return apply_style(fig, style)


def _title(profile: LongContextProfile, layer: int) -> str:
    return (f"Layer {layer}: attention by distance over {profile.n_pos:,} tokens "
            f"(markers: reach {', '.join(f'{round(f * 100)}%' for f in profile.reach)})")
