"""What ``export/`` needs from a view: the ``Exportable`` protocol.

``export/`` sits below ``widgets/`` and never imports it: a lensnb widget (``LensWidget``) is
exportable because it has these members, and so is anything else that has them (a test's tiny
widget, a future view). ``save(view, ".png" | ".svg" | ".pdf")`` needs ``figure`` only;
``.html`` exports and the static fallbacks need all of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import plotly.graph_objects as go


@runtime_checkable
class Figured(Protocol):
    """A view with a static figure (``save`` to ``.png``/``.svg``/``.pdf``)."""

    def figure(self, *, style: str | None = None) -> go.Figure:
        """The current view as a plotly figure (``style="paper"`` for publication sizing)."""


@runtime_checkable
class Exportable(Figured, Protocol):
    """A widget that runs in a standalone page: its ES module and CSS (``_esm``, ``_css``), its
    synced state (``get_state``), the requests its frontend makes first (``export_requests``,
    in wire form ``{"name", "params"}``) and the answers to them (``answer``: the reply's JSON,
    with its named-buffer layout, and the buffers)."""

    _esm: Any
    _css: Any

    def get_state(self, key: Any = None) -> dict[str, Any]:
        """The synced traits (ipywidgets' ``Widget.get_state``)."""

    def export_requests(self) -> list[dict]:
        """Requests to pre-answer, in wire form."""

    def answer(self, request: Any) -> tuple[dict, list[bytes]]:
        """``(json, [bytes, ...])`` for one request in wire form."""
