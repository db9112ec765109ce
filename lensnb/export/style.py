"""Figure styling: how lensnb figures look on screen and on paper.

The values (palette, colour maps, fonts, sizes) live in ``lensnb/core/theme.py``, which the
browser reads too, so a widget and its ``figure()``/``save()`` use the same colours.

Every widget's ``figure(style=...)`` ends with ``apply_style(fig, style)``. Styles:

- ``None``: screen defaults (colour-blind-safe palettes, plotly's sizing).
- ``"paper"``: one column of a two-column paper, 3.25 in wide, 8-10 pt text.
- ``"paper-double"``: the full text width, 6.75 in wide, 8-10 pt text.

Units: plotly lays figures out in CSS pixels (1/96 in), and kaleido prints a PDF page of
``width_px * 0.75`` points, so a 3.25 in figure is 312 px wide and a 234 pt PDF page. Font sizes
are given in points here and converted (1 pt = 96/72 px).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core import theme
from ..core.errors import InputError

if TYPE_CHECKING:
    import plotly.graph_objects as go

CSS_PX_PER_INCH = 96.0
PT_PER_INCH = 72.0

# All colours, colour maps and sizes come from lensnb/core/theme.py (the browser reads the same).
OKABE_ITO: tuple[str, ...] = theme.PALETTE  # Okabe & Ito's eight colours, black last
SEQUENTIAL = theme.colorscale(theme.SEQUENTIAL_MAP)  # viridis: attention weights, norms
SEQUENTIAL_GREY_SAFE = theme.colorscale(theme.SEQUENTIAL_GREY_SAFE_MAP)  # cividis: greyscale
DIVERGING = theme.colorscale(theme.DIVERGING_MAP)  # RdBu reversed: signed values, centred at 0

FONT_FAMILY = theme.FONT["figure"]


@dataclass(frozen=True)
class FigureStyle:
    """Physical size and text sizes of a figure style (inches and points)."""

    name: str
    width_in: float | None  # None: leave plotly's own size
    aspect: float  # default height / width
    font_pt: float  # axis titles, legend
    tick_pt: float  # tick labels
    title_pt: float

    def px(self, points: float) -> float:
        """A size in points as CSS pixels (plotly's unit)."""
        return points * CSS_PX_PER_INCH / PT_PER_INCH

    def size_px(self, width_in: float | None = None,
                height_in: float | None = None) -> tuple[float | None, float | None]:
        """(width, height) in CSS pixels for the requested inches, style defaults otherwise."""
        width = width_in if width_in is not None else self.width_in
        if width is None:
            return (None if width_in is None else width_in * CSS_PX_PER_INCH,
                    None if height_in is None else height_in * CSS_PX_PER_INCH)
        height = height_in if height_in is not None else width * self.aspect
        return width * CSS_PX_PER_INCH, height * CSS_PX_PER_INCH


STYLES: dict[str | None, FigureStyle] = {
    None if name == "screen" else name: FigureStyle(name, **spec)
    for name, spec in theme.FIGURE_STYLES.items()
}


def get_style(style: str | None) -> FigureStyle:
    """The ``FigureStyle`` called ``style``; a clear error for unknown names."""
    if style == "screen":
        style = None
    if style not in STYLES:
        allowed = ", ".join(repr(k) for k in STYLES)
        raise InputError(f"unknown figure style {style!r}; allowed: {allowed}")
    return STYLES[style]


def apply_style(fig: go.Figure, style: str | None = None, *, width: float | None = None,
                height: float | None = None) -> go.Figure:
    """Style ``fig`` in place and return it.

    ``width``/``height`` are inches and override the style's size (for ``style=None`` they set
    the size only when given). Traces keep colour scales they set themselves; the defaults
    (categorical colourway, sequential and diverging scales) are colour-blind safe.
    """
    spec = get_style(style)
    width_px, height_px = spec.size_px(width, height)
    layout: dict = dict(
        colorway=list(OKABE_ITO),
        colorscale=dict(sequential=SEQUENTIAL, diverging=DIVERGING),
        font=dict(family=FONT_FAMILY, size=spec.px(spec.font_pt), color=theme.ui("fg")),
    )
    if width_px is not None:
        layout["width"] = round(width_px, 3)
    if height_px is not None:
        layout["height"] = round(height_px, 3)
    if style is not None and style != "screen":
        small = spec.px(spec.tick_pt)
        layout.update(
            template="simple_white",
            paper_bgcolor=theme.ui("bg"),
            plot_bgcolor=theme.ui("bg"),
            margin=dict(l=spec.px(30), r=spec.px(6), t=spec.px(18), b=spec.px(26), pad=0),
            legend=dict(font=dict(size=small)),
        )
        fig.update_layout(**layout)
        fig.update_layout(title_font_size=spec.px(spec.title_pt), title_x=0.5,
                          title_xanchor="center")
        fig.update_xaxes(tickfont_size=small, title_font_size=spec.px(spec.font_pt),
                         ticks="outside", ticklen=2, showline=True, mirror=False,
                         title_standoff=spec.px(3))
        fig.update_yaxes(tickfont_size=small, title_font_size=spec.px(spec.font_pt),
                         ticks="outside", ticklen=2, showline=True, mirror=False,
                         title_standoff=spec.px(3))
        fig.update_annotations(font_size=small)
        fig.update_coloraxes(colorbar_tickfont_size=small, colorbar_thickness=spec.px(7))
        for trace in fig.data:
            if hasattr(trace, "colorbar"):
                trace.colorbar.tickfont.size = small
                trace.colorbar.thickness = spec.px(7)
    else:
        fig.update_layout(**layout)
    return fig
