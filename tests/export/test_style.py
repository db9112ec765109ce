"""Unit: figure styles (sizes in inches, fonts in points, colour-blind-safe defaults)."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from lensnb.export import OKABE_ITO, apply_style, get_style


def _pt(px: float) -> float:
    return px * 72 / 96  # CSS px -> points


@pytest.mark.parametrize(("style", "inches"), [("paper", 3.25), ("paper-double", 6.75)])
def test_paper_styles_have_column_widths_and_8_to_10_pt_text(style, inches):
    fig = apply_style(go.Figure(go.Scatter(y=[1, 2])), style)
    assert fig.layout.width == pytest.approx(inches * 96)
    sizes = [fig.layout.font.size, fig.layout.xaxis.tickfont.size,
             fig.layout.yaxis.title.font.size, fig.layout.title.font.size]
    assert all(8 <= _pt(s) <= 10 for s in sizes), [_pt(s) for s in sizes]


def test_width_and_height_are_inches():
    fig = apply_style(go.Figure(), "paper", width=2.0, height=1.5)
    assert (fig.layout.width, fig.layout.height) == (pytest.approx(192), pytest.approx(144))


def test_default_palettes_are_colour_blind_safe():
    fig = apply_style(go.Figure(), None)
    # Okabe & Ito's eight colours, as published (hex from their Color Universal Design page).
    assert set(OKABE_ITO) == {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
                              "#D55E00", "#CC79A7", "#000000"}
    assert list(fig.layout.colorway) == list(OKABE_ITO)
    assert fig.layout.width is None  # screen style leaves plotly's sizing alone
    viridis_start = fig.layout.colorscale.sequential[0][1].lower()
    assert viridis_start in ("#440154", "rgb(68,1,84)")


def test_unknown_style_names_the_allowed_ones():
    with pytest.raises(ValueError, match="'paper-double'") as info:
        get_style("poster")
    assert "poster" in str(info.value)
