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


def test_colour_scales_are_the_themes_and_plotlys():
    import plotly.colors

    from lensnb.core import theme
    from lensnb.export import DIVERGING, SEQUENTIAL

    fig = apply_style(go.Figure(), "paper")
    # the same stops as plotly's named scales (what `colorscale="Viridis"` would draw)
    named = plotly.colors.get_colorscale("Viridis")
    assert [t for t, _ in SEQUENTIAL] == pytest.approx([t for t, _ in named])
    assert [c.lower() for _, c in SEQUENTIAL] == [c.lower() for _, c in named]
    assert [c for _, c in fig.layout.colorscale.sequential] == list(theme.COLORMAPS["viridis"])
    assert DIVERGING[0][1] == "#053061" and DIVERGING[-1][1] == "#67001f"  # blue < 0 < red
    assert fig.layout.colorscale.diverging[5][1] == "#f7f7f7"  # white at 0


def test_paper_figures_use_the_themes_light_surroundings():
    from lensnb.core import theme

    fig = apply_style(go.Figure(go.Scatter(y=[1, 2])), "paper")
    assert fig.layout.paper_bgcolor == theme.ui("bg") == "#ffffff"
    assert fig.layout.plot_bgcolor == theme.ui("bg")
    assert fig.layout.font.color == theme.ui("fg")
    assert fig.layout.font.family == theme.FONT["figure"]
    # sizes come from the theme's figure styles (points -> CSS px)
    spec = theme.FIGURE_STYLES["paper"]
    assert fig.layout.width == pytest.approx(spec["width_in"] * 96)
    assert _pt(fig.layout.font.size) == pytest.approx(spec["font_pt"])
