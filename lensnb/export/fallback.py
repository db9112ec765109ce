"""Static fallbacks: what a widget's display bundle holds beside its live view.

A lensnb widget's output is ``text/plain`` + ``application/vnd.jupyter.widget-view+json``; a
saved notebook opened where no kernel serves that view (``jupyter nbconvert --to html``,
nbviewer, GitHub) would show the plain text only. ``static_fallback(view)`` adds, as
``lensnb.options.static_fallback`` asks:

- ``"html"``: ``text/html``, the standalone interactive export of the current view
  (``html.widget_fragment``; the same as ``save("x.html")`` writes, in a host element with its
  own id). It runs where a page's scripts run (nbconvert, nbviewer) and needs no kernel and
  no network.
- ``"png"``: ``image/png`` of ``view.figure()`` rendered through kaleido and the local
  chromium (``saving.render_view``; never the network), with its CSS size in the metadata. It is
  rendered only in this mode or ``"html+png"`` (it takes a second or more).
- ``"html+png"``: both, the picture also inside the HTML, shown where scripts do not run.
- ``None``: nothing (the live view only).

Front ends with a widget manager (JupyterLab, Notebook 7, VS Code, Colab) rank the widget view
first and keep showing the live widget; the others pick ``text/html`` (or ``image/png``).
A fallback larger than ``lensnb.options.static_fallback_max_bytes`` is left out, and the
output says so (``text/plain`` and, in the HTML modes, a short ``text/html`` note). A fallback
that fails to build never breaks the live view: it becomes a note and a warning.
"""

from __future__ import annotations

import base64
import html
import warnings
from typing import Any

from ..core import theme
from ..core.errors import InputError, StaticFallbackWarning
from ..core.settings import STATIC_FALLBACKS, options
from .html import widget_fragment
from .protocol import Exportable
from .saving import render_view

PNG_SCALE = 2.0  # device pixels per CSS pixel of the fallback picture (sharp on HiDPI screens)
Bundle = tuple[dict[str, Any], dict[str, Any]]


def _note_html(name: str, message: str) -> str:
    return (f'<div class="lensnb-static-note" data-lensnb-widget="{html.escape(name)}" '
            f'style="font: 12px system-ui, sans-serif; color: {theme.ui("fg_muted")};">'
            f"{html.escape(message)}</div>")


def _kib(n: int | None) -> str:
    return "no limit" if n is None else f"{n / 1024:,.0f} KiB"


def static_fallback(view: Exportable, bundle: Bundle, mode: Any = "options", *,
                    max_bytes: Any = "options") -> Bundle:
    """``view``'s display ``bundle`` (``(data, metadata)``) with the static copies of its current
    view that ``mode`` asks for (default: ``lensnb.options``) added, within ``max_bytes``."""
    mode = options.static_fallback if mode == "options" else mode
    max_bytes = options.static_fallback_max_bytes if max_bytes == "options" else max_bytes
    if mode not in STATIC_FALLBACKS or isinstance(mode, bool):
        allowed = ", ".join(repr(v) for v in STATIC_FALLBACKS)
        raise InputError(f"static fallback mode must be one of {allowed}, not {mode!r}")
    data, metadata = dict(bundle[0]), dict(bundle[1])
    if mode is None:
        return data, metadata
    name = type(view).__name__
    try:
        extra, extra_metadata = _build(view, mode)
    except Exception as err:  # noqa: BLE001 - a fallback must never cost the live view
        message = (f"lensnb {name}: no static copy of this view ({type(err).__name__}: {err}); "
                   "the live widget is unaffected. Set lensnb.options.static_fallback = None to "
                   "skip it, or save the view with .save('view.html').")
        warnings.warn(message, StaticFallbackWarning, stacklevel=3)
        return _with_note(data, metadata, name, message, mode)
    size = sum(len(v.encode("utf-8")) for v in extra.values())
    if max_bytes is not None and size > max_bytes:
        message = (f"lensnb {name}: static copy left out of this output: it would add "
                   f"{_kib(size)}, over lensnb.options.static_fallback_max_bytes = "
                   f"{_kib(max_bytes)}. Raise the limit (None: no limit), show less (a shorter "
                   "text, fewer layers), or save the view: .save('view.html') / .save('view.png').")
        return _with_note(data, metadata, name, message, mode)
    data.update(extra)
    metadata.update(extra_metadata)
    return data, metadata


def _with_note(data: dict, metadata: dict, name: str, message: str, mode: str) -> Bundle:
    """The bundle with ``message`` after its plain text (and as the HTML, in the HTML modes)."""
    data["text/plain"] = f"{data.get('text/plain', name)}\n{message}"
    if "html" in mode:
        data["text/html"] = _note_html(name, message)
    return data, metadata


def _build(view: Exportable, mode: str) -> Bundle:
    """The fallback entries alone (base64 PNG, HTML fragment) and their metadata."""
    picture = None
    data: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if "png" in mode:
        png, width, height = render_view(view, "png", style=None, scale=PNG_SCALE)
        picture = (png, width, height)
        data["image/png"] = base64.b64encode(png).decode("ascii")
        metadata["image/png"] = {"width": round(width), "height": round(height)}
    if "html" in mode:
        data["text/html"] = widget_fragment(view, picture=picture)
    return data, metadata
