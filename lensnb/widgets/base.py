"""The shared base of every lensnb widget.

A widget is an anywidget: a Python class with synced traitlets plus one ES module. The module is
assembled from real files in ``static/``: the widget's request schemas (``LENSNB_REQUESTS``,
from ``protocol.schema_of``), ``common.js`` (helpers every widget uses: buffer decoding, the
request helper, HTML escaping, colour maps, element/SVG/canvas builders), ``theme.js`` (theme
colours for canvas drawing, redraws when the notebook's theme changes), the shared parts
(``_shared_files``) and the widget's own files (``_esm_file = ("view_a.js", "widget.js")``,
one scope, the last one exports render). After the schemas ``const THEME = {...}`` and, in
front of the CSS, the ``--lensnb-*`` variables, both generated from ``lensnb/core/theme.py``
(the one theme, read by the figures too).

State flows one way: Python owns the data; the frontend asks for what it shows with
``request(model, name, params)`` and Python answers through the widget's handlers
(``@handles(Schema)`` methods, ``protocol.py``): a ``Reply`` with JSON fields and named binary
buffers (tensors travel as bytes, never as JSON lists). The envelope of one exchange is
``REQUEST``/``REPLY`` below. Standalone HTML exports pre-answer the requests listed by
``export_requests()``, so the same frontend runs with no kernel. The same export rides in every
display bundle as a static fallback (``text/html``, optionally ``image/png``;
``lensnb.options.static_fallback``) for nbconvert, nbviewer and GitHub, where no kernel serves
the live view.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anywidget

from ..core import theme
from ..core.errors import UnsupportedFeatureError
from .protocol import Answer, Buffers, decode, handlers_of, parse_request, schema_of

if TYPE_CHECKING:
    import plotly.graph_objects as go

STATIC = Path(__file__).parent / "static"
# The envelope of one exchange (custom widget messages): the frontend sends
# {"kind": REQUEST, "id", "request": {"name", "params"}}; Python answers
# {"kind": REPLY, "id", "reply": {..., "buffers": {name: layout}}} with the binary buffers,
# or {"kind": REPLY, "id", "error": "Type: message"} (common.js's request() and the standalone
# stand-in in export/static/standalone.js speak the same).
REQUEST, REPLY = "request", "reply"


class LensWidget(anywidget.AnyWidget):
    """Base class: assembles the ES module and CSS, routes frontend requests to ``answer``.

    Subclasses set ``_esm_file``/``_css_file`` (names in ``static/``), mark the handlers of
    the requests their frontend makes with ``@handles(Schema)``, implement ``figure()`` for
    static export, and may list ``export_requests()`` for standalone HTML.
    """

    _esm_file: ClassVar[str | tuple[str, ...]] = ""  # a tuple: concatenated in that order
    _css_file: ClassVar[str | tuple[str, ...]] = ""  # a tuple: several style sheets, in order
    # front-end parts shared by several widgets (e.g. the picture overlay), placed between
    # common.js/.css and the widget's own file
    _shared_files: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if cls.__dict__.get("_esm_file"):
            files = cls._esm_file if isinstance(cls._esm_file, tuple) else (cls._esm_file,)
            shared = tuple(f"{n}.js" for n in cls._shared_files)
            schemas = json.dumps(schema_of(cls), separators=(",", ":"), sort_keys=True)
            cls._esm = "\n".join(
                [f"const LENSNB_REQUESTS = {schemas};", theme.theme_js()]
                + [(STATIC / f).read_text(encoding="utf-8")
                   for f in ("common.js", "theme.js", *shared, *files)]
            )
            own = cls.__dict__.get("_css_file", "")
            own = own if isinstance(own, tuple) else (own,)
            cls._css = theme.theme_css() + "\n".join(
                (STATIC / f).read_text(encoding="utf-8")
                for f in ("common.css", *(f"{n}.css" for n in cls._shared_files), *own)
                if f and (STATIC / f).is_file()
            )
        super().__init_subclass__(**kwargs)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._on_frontend_msg)

    # -- requests from the frontend ------------------------------------------------------
    def _on_frontend_msg(self, _widget: Any, content: dict, _buffers: list) -> None:
        if not isinstance(content, dict) or content.get("kind") != REQUEST:
            return
        try:
            reply, buffers = self.answer(content.get("request"))
            self.send({"kind": REPLY, "id": content.get("id"), "reply": reply}, buffers)
        except Exception as err:  # the frontend shows the message instead of hanging
            self.send({"kind": REPLY, "id": content.get("id"),
                       "error": f"{type(err).__name__}: {err}"})

    def answer(self, request: Any) -> tuple[dict, Buffers]:
        """Reply to one request (``{"name", "params"}`` as the frontend sends it, or a
        ``Request``): ``(json, [buffer, ...])``, the json with the named buffers' layout.
        Raises ``RequestError`` for an unknown name or a field that does not fit."""
        req = parse_request(type(self), request)
        _, method = handlers_of(type(self))[req.NAME]
        return getattr(self, method)(req).encode()

    def ask(self, name: str, **params: Any) -> Answer:
        """Answer request ``name`` from Python, decoded as the frontend sees it: ``.reply``
        (JSON fields) and ``.buffers`` (numpy arrays under their names)."""
        return decode(*self.answer({"name": name, "params": params}))

    def export_requests(self) -> list[dict]:
        """Requests to pre-answer in a standalone HTML export, in wire form (``Request.wire()``;
        bounded; default none)."""
        return []

    # -- static figures and files -----------------------------------------------------------
    def figure(self, *, style: str | None = None) -> go.Figure:
        """The current view as a plotly figure (``style="paper"`` for publication sizing)."""
        raise UnsupportedFeatureError(f"{type(self).__name__} has no static figure yet")

    def save(self, path: str | Path, *, style: str | None = "paper", **options: Any) -> Path:
        """Write the current view to ``.png``/``.svg``/``.pdf`` (static) or ``.html``."""
        from ..export import save

        return save(self, path, style=style, **options)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict] | None:
        """The live widget view plus a static copy of the current view for front ends without
        a widget manager (``lensnb.options.static_fallback``; see ``lensnb.export.fallback``)."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        from ..export.fallback import static_fallback

        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        return static_fallback(self, (data, metadata))

    def __repr__(self) -> str:  # cheap: never serialises traits
        return f"<{type(self).__name__}>"
