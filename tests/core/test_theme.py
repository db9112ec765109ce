"""Unit: the one theme (lensnb/core/theme.py) and what the browser gets of it.

The colour maps are checked against plotly's (matplotlib's) stops, contrast against the WCAG
formula (tests/wcag.py), and the frontend against the source: the ``THEME`` object every widget
module starts with is the theme itself, every ``--lensnb-*`` variable the CSS/JS uses is defined,
and no colour literal is left in the frontend files (so nothing can drift from the source).
"""

from __future__ import annotations

import json
import re

import plotly.colors
import pytest
from wcag import AA_TEXT, contrast, parse

from lensnb.core import theme
from lensnb.widgets.attention import AttentionExplorer
from lensnb.widgets.base import STATIC
from lensnb.widgets.generation_stepper import GenerationStepper
from lensnb.widgets.image_attention import ImageAttention
from lensnb.widgets.rope_spectrum import RopeSpectrum

WIDGETS = (AttentionExplorer, GenerationStepper, ImageAttention, RopeSpectrum)
FRONTEND = sorted([*STATIC.glob("*.js"), *STATIC.glob("*.css")])


def _hex(c: str) -> str:
    r, g, b, _ = parse(c)
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def test_colour_maps_are_plotlys_stops():
    assert list(theme.COLORMAPS["viridis"]) == [_hex(c) for c in plotly.colors.sequential.Viridis]
    assert list(theme.COLORMAPS["cividis"]) == [_hex(c) for c in plotly.colors.sequential.Cividis]
    assert list(theme.COLORMAPS["rdbu_r"]) == [_hex(c) for c in plotly.colors.diverging.RdBu[::-1]]
    scale = theme.colorscale("viridis")
    assert scale[0] == [0.0, "#440154"] and scale[-1] == [1.0, "#fde725"]
    assert [t for t, _ in scale] == pytest.approx([i / 9 for i in range(10)])


def test_series_cycle_leaves_out_yellow_and_black():
    # yellow is weak on white paper, black vanishes on a dark notebook
    assert "#F0E442" not in theme.SERIES and "#000000" not in theme.SERIES
    assert [theme.series_colour(i) for i in range(8)] == [*theme.SERIES, *theme.SERIES[:2]]


def test_rgba_and_region_fill_by_hand():
    assert theme.rgba("#E69F00", 0.2) == "rgba(230,159,0,0.2)"
    assert theme.region_fill("high-frequency kept") == "rgba(0,114,178,0.12)"
    from lensnb.analysis import rope

    assert set(theme.REGIONS) == set(rope.REGIONS)
    with pytest.raises(KeyError, match="smoothed"):
        theme.region_fill("nope")
    with pytest.raises(ValueError, match="#rrggbb"):
        theme.rgba("red", 0.5)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize(("text", "background"), [
    # the pairs the widgets draw (secondary text sits on bg only; controls on bg_alt use fg)
    ("fg", "bg"), ("fg_muted", "bg"), ("fg", "bg_alt"), ("on_accent", "accent"),
    ("error", "bg")])
def test_fallback_values_meet_wcag_aa_for_text(text, background, dark):
    ratio = contrast(parse(theme.ui(text, dark=dark)), parse(theme.ui(background, dark=dark)))
    assert ratio >= AA_TEXT, f"{text} on {background}: {ratio:.2f}"


@pytest.mark.parametrize("role", ["selection", "attention_tint"])
def test_text_on_full_selection_colours_is_legible(role):
    assert contrast(parse(theme.ui("on_accent")), parse(theme.ROLES[role])) >= AA_TEXT


@pytest.mark.parametrize("widget", WIDGETS, ids=lambda w: w.__name__)
def test_every_widget_module_carries_the_theme_itself(widget):
    m = re.search(r"\n// generated[^\n]*\nconst THEME = Object\.freeze\((\{.*?\})\);\n",
                  widget._esm)
    assert m and m.start() < widget._esm.index("function escapeHtml("), widget._esm[:300]
    assert json.loads(m.group(1)) == json.loads(json.dumps(theme.as_dict()))
    assert widget._css.startswith(theme.theme_css())
    assert "function themeColour(" in widget._esm  # static/theme.js is in


def test_css_variables_follow_jupyterlab_with_light_fallbacks():
    css = theme.theme_css()
    light_block, dark_block = css.split("html[theme=dark] .lensnb, body.vscode-dark .lensnb {")
    for name, (jp, light, dark) in theme.UI.items():
        var = f"--lensnb-{name.replace('_', '-')}"
        assert f"{var}: {f'var({jp}, {light})' if jp else light};" in light_block
        assert f"{var}: {f'var({jp}, {dark})' if jp else dark};" in dark_block
    assert "--lensnb-bg: var(--jp-layout-color0, #ffffff);" in css
    assert "--lensnb-fg: var(--jp-ui-font-color1, " in css


def test_every_theme_name_the_frontend_uses_exists():
    defined = set(re.findall(r"(--lensnb-[a-z0-9-]+):", theme.theme_css()))
    for path in FRONTEND:
        text = path.read_text(encoding="utf-8")
        used = set(re.findall(r"var\((--lensnb-[a-z0-9-]+)", text))
        assert used <= defined, f"{path.name}: undefined {sorted(used - defined)}"
        for name in re.findall(r"themeColour\([^,]+, \"([a-z_]+)\"\)", text):
            assert name in theme.UI, f"{path.name}: themeColour(..., {name!r})"
        for name in re.findall(r"THEME\.roles\.([a-z_]+)", text):
            assert name in theme.ROLES, f"{path.name}: THEME.roles.{name}"
        for name in re.findall(r"THEME\.lines\.([a-z_]+)", text):
            assert name in theme.LINES, f"{path.name}: THEME.lines.{name}"


@pytest.mark.parametrize("path", FRONTEND, ids=lambda p: p.name)
def test_no_colour_literal_outside_the_theme(path):
    """Colours live in lensnb/core/theme.py only (a shadow's darkening is not a theme colour)."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = re.sub(r"box-shadow:[^;]*;", "", line)
        hit = re.search(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(\s*\d|\b(white|black)\b(?!-)", line)
        assert not hit, f"{path.name}:{n}: colour literal {hit.group(0)!r}: {line.strip()}"
