"""Standalone HTML: self-contained, interactive with no kernel, and never touching the network.

A lensnb widget (anything ``protocol.Exportable``) is exported as its own ES module (inlined),
its CSS, its synced state at export time and the replies to the requests its
``export_requests()`` lists (buffers base64-encoded and gzip-compressed when large).
``static/standalone.js`` (inlined too) runs the module against a small stand-in for the
anywidget model that answers requests from those replies.

All of it lives in one host element (``static/host.html``) with an id unique to that export, so
``widget_fragment`` can be a notebook output (the static fallback beside the live widget view)
and a converted notebook can hold any number of them, the same view twice included;
``widget_html`` is a page around one host. A plain plotly figure is written with plotly.js
inlined. Nothing references a URL: nothing is fetched.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import theme
from ..core.errors import ExportError, InputError
from .protocol import Exportable

if TYPE_CHECKING:
    import plotly.graph_objects as go

STATIC = Path(__file__).parent / "static"
GZIP_ABOVE_BYTES = 4096  # smaller buffers are not worth a decompression step
MAX_BYTES = 64 * 2**20  # refuse to write a standalone file larger than this by default
# ipywidgets/DOMWidget bookkeeping that means nothing outside a kernel
_NOT_STATE = {"layout", "tabbable", "tooltip"}


def _buffer_spec(data: bytes | memoryview | bytearray) -> dict:
    raw = bytes(data)
    if len(raw) > GZIP_ABOVE_BYTES:
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        if len(packed) < len(raw):
            return {"b64": base64.b64encode(packed).decode("ascii"), "gzip": True}
    return {"b64": base64.b64encode(raw).decode("ascii"), "gzip": False}


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def widget_payload(view: Exportable) -> dict:
    """Everything the standalone page needs: ES module, CSS, state and pre-computed replies."""
    from ipywidgets.widgets.widget import _remove_buffers

    state = {k: v for k, v in view.get_state().items()
             if not k.startswith("_") and k not in _NOT_STATE}
    state, buffer_paths, state_buffers = _remove_buffers(state)
    replies = []
    for request in view.export_requests():
        try:
            reply, buffers = view.answer(request)
        except Exception as err:
            raise ExportError(f"{type(view).__name__}.answer failed on its own export request "
                              f"{request!r}: {type(err).__name__}: {err}") from err
        replies.append({"request": request, "reply": reply,
                        "buffers": [_buffer_spec(b) for b in buffers]})
    return {
        "esm": str(view._esm),
        "css": str(getattr(view, "_css", "") or ""),
        "state": state,
        "buffer_paths": buffer_paths,
        "state_buffers": [_buffer_spec(b) for b in state_buffers],
        "replies": replies,
    }


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def widget_fragment(view: Exportable, *, picture: tuple[bytes, float, float] | None = None,
                    host_id: str | None = None) -> str:
    """One exported view as an HTML fragment: a ``<div class="lensnb-static">`` host with its
    data and the inline module that runs it. ``picture``: ``(png, width_px, height_px)`` shown
    where scripts do not run (removed once the live view is up). ``host_id``: the host's id
    (default: a fresh ``lensnb-<uuid>``, so every fragment in a page has its own)."""
    payload = widget_payload(view)
    name = type(view).__name__
    host_id = host_id or f"lensnb-{uuid.uuid4().hex}"
    n_replies = len(payload["replies"])
    note = (f"lensnb {name}: a static copy of the view at export time with {n_replies} "
            f"pre-computed answer{'s' if n_replies != 1 else ''}; works offline, with no "
            "kernel (the live widget needs one).")
    image = ""
    if picture is not None:
        png, width, height = picture
        image = (f'<img class="lensnb-static-picture" alt="{html.escape(name)} (static picture)" '
                 f'width="{round(width)}" height="{round(height)}" src="{_data_url(png)}">')
    host = (STATIC / "host.html").read_text(encoding="utf-8")
    return (host.replace("<!--lensnb:id-json-->", json.dumps(host_id))
            .replace("<!--lensnb:error-colour-->", theme.ui("error"))
            .replace("<!--lensnb:muted-colour-->", theme.ui("fg_muted"))
            .replace("<!--lensnb:id-->", html.escape(host_id))
            .replace("<!--lensnb:widget-->", html.escape(name))
            .replace("<!--lensnb:picture-->", image)
            .replace("<!--lensnb:note-->", html.escape(note))
            .replace("<!--lensnb:data-->", _script_json(payload))
            .replace("<!--lensnb:shim-->", (STATIC / "standalone.js").read_text(encoding="utf-8")))


def widget_html(view: Exportable, *, title: str | None = None) -> str:
    """The standalone page of a lensnb widget (one ``widget_fragment`` in a page)."""
    page = (STATIC / "standalone.html").read_text(encoding="utf-8")
    title = title or f"lensnb {type(view).__name__}"
    return (page.replace("<!--lensnb:title-->", html.escape(title))
            .replace("<!--lensnb:bg-->", theme.ui("bg")).replace("<!--lensnb:fg-->", theme.ui("fg"))
            .replace("<!--lensnb:host-->", widget_fragment(view, host_id="lensnb-host")))


def figure_html(fig: go.Figure, *, title: str | None = None) -> str:
    """A plotly figure as one HTML file with plotly.js inlined (no CDN, no MathJax)."""
    page = fig.to_html(include_plotlyjs=True, include_mathjax=False, full_html=True,
                       config={"displaylogo": False, "responsive": True},
                       div_id="lensnb-figure")
    if title:
        page = page.replace("<head>", f"<head><title>{html.escape(title)}</title>", 1)
    return page


def write_html(text: str, path: Path, *, max_bytes: int | None = MAX_BYTES) -> Path:
    """Write ``text`` to ``path`` unless it is larger than ``max_bytes`` (a clear error then)."""
    data = text.encode("utf-8")
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(
            f"the standalone HTML would be {len(data) / 2**20:.1f} MiB, over max_bytes="
            f"{max_bytes / 2**20:.0f} MiB. Export fewer views (a shorter sequence or fewer "
            f"layers), use a static format (.png/.svg/.pdf pool large heatmaps), or pass a "
            f"larger max_bytes= (None for no limit).")
    path.write_bytes(data)
    return path
