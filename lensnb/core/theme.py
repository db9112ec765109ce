"""The one theme of lensnb: colours, colour maps, opacities, fonts and line widths.

Read by the plotly figures (``lensnb.export.style`` and every widget's ``figure()``) and by the
browser: ``widgets/base.py`` puts ``theme_js()`` (``const THEME = {...}``) in front of every
widget's ES module and ``theme_css()`` in front of its CSS, both generated from the values here,
so no copy can drift. Two kinds of colour:

- Colours that carry meaning (``PALETTE``, ``ROLES``, ``REGIONS``, ``COLORMAPS``): the same in
  the browser, in exports and in figures, in a light or a dark notebook.
- Surroundings (``UI``: backgrounds, text, borders, grid lines): each follows a JupyterLab
  ``--jp-*`` CSS variable in the browser, with the light value used where no JupyterLab theme is
  (Colab, standalone HTML, nbviewer) and by the figures (paper is white).

Cheap to import (no plotly, no torch).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InputError, UnknownNameError

# Okabe & Ito (2008), "Color Universal Design": distinguishable under all common colour-vision
# deficiencies. Black last (reference lines), yellow late (weak on white paper).
NAMED: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish_green": "#009E73",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
PALETTE: tuple[str, ...] = tuple(NAMED.values())  # plotly's colorway (figures)
# the colour cycle of data series (lines of a chart): no yellow (weak on white), no black
# (vanishes on a dark notebook). Series i is SERIES[i % len(SERIES)], in Python and in JS.
SERIES: tuple[str, ...] = PALETTE[:6]

# Data colour maps, as stops evenly spaced on [0, 1] (matplotlib's, as plotly ships them;
# tests/core/test_theme.py checks them against plotly.colors). The browser interpolates the same
# stops linearly in RGB, as plotly does.
COLORMAPS: dict[str, tuple[str, ...]] = {
    # perceptually uniform, colour-blind safe: attention weights, norms, shares
    "viridis": ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
                "#6ece58", "#b5de2b", "#fde725"),
    # also readable in greyscale print
    "cividis": ("#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8678", "#a59c74",
                "#c3b369", "#e1cc55", "#fee838"),
    # signed quantities centred at 0 (logit differences, projections): blue < 0 < red
    "rdbu_r": ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7",
               "#f4a582", "#d6604d", "#b2182b", "#67001f"),
}
SEQUENTIAL_MAP = "viridis"
SEQUENTIAL_GREY_SAFE_MAP = "cividis"
DIVERGING_MAP = "rdbu_r"

# Colours with one meaning each, wherever they are drawn.
ROLES: dict[str, str] = {
    "highlight": "#e34a33",  # the hovered cell, the selected thumbnail, the chosen token
    "selection": NAMED["blue"],  # the selected token of the stepper and the picture view
    "attention_tint": "#2166ac",  # text view: a token's weight as this colour's opacity
    "attention_gate": NAMED["blue"],  # Mllama cross-attention gate (tanh) per layer
    "mlp_gate": NAMED["orange"],  # Mllama cross-attention MLP gate
    "probability": "#3b528b",  # bars of next-token probabilities
    "picture_grid": "rgba(255,255,255,0.9)",  # tile edges drawn over a picture
    "ablated": NAMED["vermillion"],  # a head or KV group switched off (PatchingWorkbench)
    "passed": "#1a7f37",  # lensnb.check(): a passing invariant (a failing one is UI "error")
}
# The Llama 3.1 RoPE smoothing regions (lensnb.analysis.rope.REGIONS): colour and opacity of
# their shaded bands, in the browser and in figures.
REGIONS: dict[str, tuple[str, float]] = {
    "high-frequency kept": (NAMED["blue"], 0.12),
    "smoothed": (NAMED["orange"], 0.2),
    "low-frequency scaled": (NAMED["vermillion"], 0.12),
}
# A weight tinted over token text: this fraction of the maximum (and above) turns the text to
# ``ui_on_accent`` so it stays legible on the saturated tint.
TINT_TEXT_FLIP = 0.55
# default opacity of an attention heatmap drawn over a picture
OVERLAY_OPACITY = 0.6

# Surroundings: (JupyterLab variable, light value, dark value). In the browser
# ``--lensnb-<name>`` is ``var(<jupyterlab variable>, <light value>)``: JupyterLab's theme where
# there is one, else the light value (standalone HTML, nbviewer, Colab's light mode), or the dark
# value where the host says it is dark without JupyterLab's variables (``DARK_HOSTS``).
# Figures and exports use the light value. The dark values are JupyterLab Dark's.
UI: dict[str, tuple[str | None, str, str]] = {
    "bg": ("--jp-layout-color0", "#ffffff", "#111111"),  # canvas and chart backgrounds
    "bg_alt": ("--jp-layout-color2", "#eeeeee", "#424242"),  # tracks, thumbnails, masked cells
    "fg": ("--jp-ui-font-color1", "#1a1a1a", "#dedede"),  # text, axes, reference lines
    "fg_muted": ("--jp-ui-font-color2", "#555555", "#959595"),  # secondary text, unscaled lines
    "border": ("--jp-border-color1", "#bdbdbd", "#616161"),  # frames, control borders, axes
    "border_soft": ("--jp-border-color2", "#e0e0e0", "#424242"),  # boxes, grid lines
    "accent": ("--jp-brand-color0", "#0d47a1", "#1976d2"),  # the active tab/view button
    "on_accent": (None, "#ffffff", "#ffffff"),  # text on ``accent``, ``selection``, a full tint
    "error": ("--jp-error-color1", "#b00020", "#f44336"),
}
# hosts that mark a dark theme but may set no --jp-*: Colab (html[theme=dark]) and VS Code
# webviews (body.vscode-dark, documented in VS Code's webview API)
DARK_HOSTS = ("html[theme=dark]", "body.vscode-dark")

FONT: dict[str, Any] = {
    # the widgets (screen)
    "ui": 'system-ui, -apple-system, "Segoe UI", sans-serif',
    "mono": "ui-monospace, monospace",
    "size_px": 12, "small_px": 11, "tiny_px": 10,
    # figures (fonts kaleido finds everywhere); sizes in points per figure style below
    "figure": "Arial, Helvetica, 'Liberation Sans', 'DejaVu Sans', sans-serif",
}
# Figure styles (lensnb.export.style.FigureStyle): width in inches (None: plotly's own size),
# height / width, and text sizes in points.
FIGURE_STYLES: dict[str, dict[str, Any]] = {
    "screen": dict(width_in=None, aspect=0.75, font_pt=10, tick_pt=9, title_pt=12),
    "paper": dict(width_in=3.25, aspect=0.8, font_pt=9, tick_pt=8, title_pt=10),
    "paper-double": dict(width_in=6.75, aspect=0.45, font_pt=9, tick_pt=8, title_pt=10),
}
# Line widths (CSS px in the browser, plotly px in figures).
LINES: dict[str, float] = {"emphasis": 2.5, "normal": 1.5, "thin": 1.0, "reference": 1.0}


def series_colour(i: int) -> str:
    """The colour of data series ``i`` (cycles through ``SERIES``)."""
    return SERIES[i % len(SERIES)]


def ui(name: str, *, dark: bool = False) -> str:
    """The light (export/figure) value of the surrounding colour ``name`` (a key of ``UI``), or
    its dark value."""
    if name not in UI:
        raise UnknownNameError(f"unknown theme colour {name!r}; known: {', '.join(UI)}")
    return UI[name][2 if dark else 1]


def rgba(colour: str, alpha: float) -> str:
    """``"#rrggbb"`` with an opacity as ``"rgba(r,g,b,a)"`` (the string plotly and CSS read)."""
    if len(colour) != 7 or not colour.startswith("#"):
        raise InputError(f"expected a '#rrggbb' colour, got {colour!r}")
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def region_fill(region: str) -> str:
    """The band colour of a RoPE smoothing region, as ``rgba(...)``."""
    if region not in REGIONS:
        raise UnknownNameError(f"unknown RoPE region {region!r}; known: {', '.join(REGIONS)}")
    colour, alpha = REGIONS[region]
    return rgba(colour, alpha)


def colorscale(name: str) -> list[list[Any]]:
    """A colour map as a plotly colour scale ``[[t, "#rrggbb"], ...]``."""
    if name not in COLORMAPS:
        raise UnknownNameError(f"unknown colour map {name!r}; known: {', '.join(COLORMAPS)}")
    stops = COLORMAPS[name]
    return [[i / (len(stops) - 1), c] for i, c in enumerate(stops)]


def as_dict() -> dict[str, Any]:
    """The whole theme as JSON-ready data (what the browser's ``THEME`` holds)."""
    return {
        "named": NAMED, "palette": list(PALETTE), "series": list(SERIES),
        "colormaps": {k: list(v) for k, v in COLORMAPS.items()},
        "sequential": SEQUENTIAL_MAP, "diverging": DIVERGING_MAP,
        "roles": ROLES,
        "regions": {k: {"colour": c, "opacity": a, "fill": region_fill(k)}
                    for k, (c, a) in REGIONS.items()},
        "tint_text_flip": TINT_TEXT_FLIP, "overlay_opacity": OVERLAY_OPACITY,
        "ui": {k: {"var": _var(k), "jupyterlab": jp, "light": light, "dark": dark}
               for k, (jp, light, dark) in UI.items()},
        "font": FONT, "lines": LINES,
    }


def theme_js() -> str:
    """``const THEME = {...};``: the theme for the ES modules (put in front of common.js)."""
    body = json.dumps(as_dict(), separators=(",", ":"), sort_keys=True)
    return ("// generated from lensnb/core/theme.py (widgets/base.py): the one theme\n"
            f"const THEME = Object.freeze({body});\n")


def _var(name: str) -> str:
    return f"--lensnb-{name.replace('_', '-')}"


def theme_css() -> str:
    """CSS custom properties on every widget root (``.lensnb``): the surroundings follow
    JupyterLab's ``--jp-*`` variables (light values elsewhere, dark ones on a dark host without
    them), meaningful colours are fixed."""
    lines = ["/* generated from lensnb/core/theme.py (widgets/base.py): the one theme */",
             ".lensnb {"]
    for name, (jp, light, _) in UI.items():
        lines.append(f"  {_var(name)}: {f'var({jp}, {light})' if jp else light};")
    for name, colour in {**NAMED, **ROLES}.items():
        lines.append(f"  {_var(name)}: {colour};")
    lines += [f"  --lensnb-font: {FONT['ui']};", f"  --lensnb-mono: {FONT['mono']};",
              f"  --lensnb-size: {FONT['size_px']}px;",
              f"  --lensnb-size-small: {FONT['small_px']}px;",
              f"  --lensnb-size-tiny: {FONT['tiny_px']}px;", "}"]
    lines.append(", ".join(f"{host} .lensnb" for host in DARK_HOSTS) + " {")
    for name, (jp, _, dark) in UI.items():
        lines.append(f"  {_var(name)}: {f'var({jp}, {dark})' if jp else dark};")
    lines.append("}")
    return "\n".join(lines) + "\n"
