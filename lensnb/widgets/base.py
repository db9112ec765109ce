"""The shared base of every lensnb widget.

A widget is an anywidget: a Python class with synced traitlets plus one ES module. The module is
assembled from real files in ``static/``: ``common.js`` (helpers every widget uses: buffer
decoding, requests to Python, HTML escaping, colour maps) and ``theme.js`` (theme colours for
canvas drawing, redraws when the notebook's theme changes) followed by the widget's own file (or
files: ``_esm_file = ("helpers.js", "widget.js")``, one scope, the last one exports render).
In front of it all ``const THEME = {...}`` and, in front of the CSS, the ``--lensnb-*``
variables, both generated from ``lensnb/core/theme.py`` (the one theme, read by the figures too).

State flows one way: Python owns the data; the frontend asks for what it shows with
``request(model, {...})`` and Python answers in ``answer()`` with JSON plus binary buffers
(tensors travel as bytes, never as JSON lists). Standalone HTML exports pre-answer the
requests listed by ``export_requests()``, so the same frontend runs with no kernel. The same
export rides in every display bundle as a static fallback (``text/html``, optionally
``image/png``; ``lensnb.options.static_fallback``) for nbconvert, nbviewer and GitHub, where no
kernel serves the live view.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import anywidget
import numpy as np
import torch

from ..core import theme

if TYPE_CHECKING:
    import plotly.graph_objects as go

STATIC = Path(__file__).parent / "static"
Buffers = list[bytes]


def pack(array: torch.Tensor | np.ndarray, dtype: str = "float32") -> tuple[dict, bytes]:
    """An array as ``({"dtype", "shape"}, bytes)``; ``common.js``'s ``unpack`` reverses it.

    ``dtype``: ``"float32"``, ``"float16"``, ``"uint8"`` (values in [0, 1] quantised to 0..255),
    ``"int32"``. bf16 is converted first (JS has no bf16).
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().to("cpu", torch.float32 if array.is_floating_point() else None)
        array = array.numpy()
    array = np.asarray(array)
    if dtype == "uint8":
        out = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    else:
        out = array.astype({"float32": np.float32, "float16": np.float16,
                            "int32": np.int32}[dtype])
    return {"dtype": dtype, "shape": list(out.shape)}, np.ascontiguousarray(out).tobytes()


class LensWidget(anywidget.AnyWidget):
    """Base class: assembles the ES module and CSS, routes frontend requests to ``answer``.

    Subclasses set ``_esm_file``/``_css_file`` (names in ``static/``), implement ``answer``
    for the requests their frontend makes, ``figure()`` for static export, and may list
    ``export_requests()`` for standalone HTML.
    """

    _esm_file: ClassVar[str | tuple[str, ...]] = ""  # a tuple: concatenated in that order
    _css_file: ClassVar[str] = ""
    # front-end parts shared by several widgets (e.g. the picture overlay), placed between
    # common.js/.css and the widget's own file
    _shared_files: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if cls.__dict__.get("_esm_file"):
            files = cls._esm_file if isinstance(cls._esm_file, tuple) else (cls._esm_file,)
            shared = tuple(f"{n}.js" for n in cls._shared_files)
            cls._esm = theme.theme_js() + "\n".join(
                (STATIC / f).read_text(encoding="utf-8")
                for f in ("common.js", "theme.js", *shared, *files)
            )
            cls._css = theme.theme_css() + "\n".join(
                (STATIC / f).read_text(encoding="utf-8")
                for f in ("common.css", *(f"{n}.css" for n in cls._shared_files),
                          cls.__dict__.get("_css_file", ""))
                if f and (STATIC / f).is_file()
            )
        super().__init_subclass__(**kwargs)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._on_frontend_msg)

    # -- requests from the frontend ------------------------------------------------------
    def _on_frontend_msg(self, _widget: Any, content: dict, _buffers: list) -> None:
        if not isinstance(content, dict) or content.get("kind") != "request":
            return
        try:
            reply, buffers = self.answer(content.get("request") or {})
            self.send({"kind": "reply", "id": content.get("id"), "reply": reply}, buffers)
        except Exception as err:  # the frontend shows the message instead of hanging
            self.send({"kind": "reply", "id": content.get("id"),
                       "error": f"{type(err).__name__}: {err}"})

    def answer(self, request: dict) -> tuple[dict, Buffers]:
        """Reply to one frontend request: ``(json_content, [buffer, ...])``."""
        raise ValueError(f"{type(self).__name__} does not answer requests ({request!r})")

    def export_requests(self) -> list[dict]:
        """Requests to pre-answer in a standalone HTML export (bounded; default none)."""
        return []

    # -- static figures and files -----------------------------------------------------------
    def figure(self, *, style: str | None = None) -> go.Figure:
        """The current view as a plotly figure (``style="paper"`` for publication sizing)."""
        raise NotImplementedError(f"{type(self).__name__} has no static figure yet")

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
