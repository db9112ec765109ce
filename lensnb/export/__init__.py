"""Paper-ready export: ``save(view, "fig.pdf" | ".svg" | ".png" | ".html", style="paper")``.

- ``style``: figure styling shared by every widget's ``figure(style=...)`` (sizes, fonts,
  colour-blind-safe palettes).
- ``downsample``: the stated policy for very large heatmaps (max-pooled, and labelled so).
- ``render``: PNG/SVG/PDF through kaleido and a local Chromium, offline.
- ``html``: standalone interactive HTML (static/standalone.js runs the widget with no kernel).
- ``fallback``: the static copies (HTML, PNG) a widget's display bundle holds beside its live
  view, for nbconvert, nbviewer and GitHub (``lensnb.options.static_fallback``).
- ``notebook``: saved notebooks (``drop_lensnb_state``, the ``StaticFallbacks`` nbconvert
  preprocessor) so that nbconvert shows those copies after ``--execute``.
"""

from __future__ import annotations

from .downsample import MAX_CELLS, limit_heatmaps, max_pool
from .fallback import StaticFallbackWarning, static_fallback
from .notebook import drop_lensnb_state
from .render import ChromiumNotFoundError, chromium_path, shutdown
from .saving import save, to_figure
from .style import DIVERGING, OKABE_ITO, SEQUENTIAL, STYLES, FigureStyle, apply_style, get_style

__all__ = [
    "DIVERGING", "MAX_CELLS", "OKABE_ITO", "SEQUENTIAL", "STYLES", "ChromiumNotFoundError",
    "FigureStyle", "StaticFallbackWarning", "apply_style", "chromium_path", "drop_lensnb_state",
    "get_style", "limit_heatmaps", "max_pool", "save", "shutdown", "static_fallback", "to_figure",
]
