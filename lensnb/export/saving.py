"""``save(view, path)``: one way to turn any lensnb view (or plotly figure) into a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import InputError, InputTypeError
from .downsample import MAX_CELLS, limit_heatmaps
from .html import MAX_BYTES, figure_html, widget_html, write_html
from .protocol import Exportable
from .render import render_image
from .style import CSS_PX_PER_INCH, apply_style, get_style

STATIC_FORMATS = (".png", ".svg", ".pdf")
HTML_FORMATS = (".html", ".htm")
DEFAULT_SIZE_PX = (700.0, 500.0)  # plotly's own default when neither figure nor style sizes it


def _is_plotly_figure(view: Any) -> bool:
    from plotly.basedatatypes import BaseFigure

    return isinstance(view, BaseFigure)


def to_figure(view: Any, *, style: str | None = "paper", width: float | None = None,
              height: float | None = None):
    """The plotly figure of ``view`` in ``style``: a copy of a plotly figure, styled, or the
    result of ``view.figure(style=style)`` for lensnb widgets. ``width``/``height`` in inches."""
    import plotly.graph_objects as go

    get_style(style)  # validate early, with the list of allowed names
    if _is_plotly_figure(view):
        return apply_style(go.Figure(view), style, width=width, height=height)
    if callable(getattr(view, "figure", None)):
        fig = go.Figure(view.figure(style=style))
        if width is not None:
            fig.update_layout(width=width * CSS_PX_PER_INCH)
        if height is not None:
            fig.update_layout(height=height * CSS_PX_PER_INCH)
        return fig
    raise InputTypeError(f"cannot export a {type(view).__name__}: pass a plotly Figure or a lensnb "
                         "view (anything with a .figure(style=...) method, e.g. a lensnb widget)")


def save(view: Any, path: str | Path, *, style: str | None = "paper", dpi: float = 300,
         width: float | None = None, height: float | None = None,
         max_cells: int | None = MAX_CELLS, max_bytes: int | None = MAX_BYTES,
         title: str | None = None) -> Path:
    """Write ``view`` to ``path``; the suffix picks the format.

    - ``.pdf``/``.svg``: vector (heatmap cells embedded as a raster, axes and text as vectors),
      page size = the style's width (``"paper"``: 3.25 in = 234 pt; ``"paper-double"``: 6.75 in).
    - ``.png``: ``width_in * dpi`` pixels wide.
    - ``.html``: one self-contained interactive file (a lensnb widget keeps working with no
      kernel and no network; a plotly figure gets plotly.js inlined).

    ``style``: ``"paper"``, ``"paper-double"`` or ``None`` (screen). ``width``/``height``: inches,
    overriding the style's size. ``max_cells``: heatmaps with more rows or columns are max-pooled
    to at most this many per axis, and the title says so (``None``: never). ``max_bytes``: refuse
    an HTML file larger than this. ``title``: the HTML page's title. Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in STATIC_FORMATS + HTML_FORMATS:
        allowed = ", ".join(STATIC_FORMATS + HTML_FORMATS)
        raise InputError(f"cannot tell the format of {str(path)!r} from its suffix; use one of "
                         f"{allowed}")
    if not isinstance(dpi, (int, float)) or isinstance(dpi, bool) or dpi <= 0:
        raise InputError(f"dpi must be a positive number, not {dpi!r}")
    for name, value in (("width", width), ("height", height)):
        if value is not None and (not isinstance(value, (int, float)) or value <= 0):
            raise InputError(f"{name} must be a positive number of inches or None, not {value!r}")
    path.parent.mkdir(parents=True, exist_ok=True)

    if suffix in HTML_FORMATS:
        if not _is_plotly_figure(view) and isinstance(view, Exportable):
            return write_html(widget_html(view, title=title), path, max_bytes=max_bytes)
        fig, _ = limit_heatmaps(to_figure(view, style=style, width=width, height=height),
                                max_cells)
        return write_html(figure_html(fig, title=title), path, max_bytes=max_bytes)

    data, _, _ = render_view(view, suffix[1:], style=style, width=width, height=height,
                             max_cells=max_cells, scale=dpi / CSS_PX_PER_INCH)
    path.write_bytes(data)
    return path


def render_view(view: Any, fmt: str, *, style: str | None = "paper", width: float | None = None,
                height: float | None = None, max_cells: int | None = MAX_CELLS,
                scale: float = 1.0) -> tuple[bytes, float, float]:
    """``view`` rendered to ``fmt`` (``"png"``, ``"svg"``, ``"pdf"``) through kaleido:
    ``(bytes, width_px, height_px)``, the sizes in CSS pixels (a PNG has ``round(size * scale)``
    pixels; ``scale`` is ignored for the vector formats)."""
    fig, _ = limit_heatmaps(to_figure(view, style=style, width=width, height=height), max_cells)
    width_px = float(fig.layout.width or DEFAULT_SIZE_PX[0])
    height_px = float(fig.layout.height or DEFAULT_SIZE_PX[1])
    data = render_image(fig.to_dict(), fmt=fmt, width_px=width_px, height_px=height_px,
                        scale=scale if fmt == "png" else 1.0)
    return data, width_px, height_px
