"""Fixtures for the export tests: a tiny widget with its own frontend (data/tiny_widget.js),
and a plotly heatmap with known axis labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import traitlets

from lensnb.export import apply_style
from lensnb.widgets.base import LensWidget
from lensnb.widgets.protocol import Array, Reply, Request, buffer, handles, param, request_schema

DATA = Path(__file__).parent / "data"
ROW_LENGTHS = (8, 6000, 16)  # row 1 is large enough to travel gzip-compressed in HTML exports


def tiny_row(index: int) -> np.ndarray:
    """Row ``index`` of the tiny widget: (index + 1) * arange(n) / 7 as float32."""
    return ((index + 1) * np.arange(ROW_LENGTHS[index], dtype=np.float64) / 7).astype(np.float32)


@request_schema("row")
class RowRequest(Request):
    index: int = param(ge=0)


@dataclass
class RowReply(Reply):
    index: int
    row: Array = buffer()


class TinyWidget(LensWidget):
    """A real LensWidget with a minimal frontend: shows ``label`` and row ``index``."""

    _esm_file = str(DATA / "tiny_widget.js")  # after common.js, like every widget
    label = traitlets.Unicode("tiny <b>label</b>").tag(sync=True)
    index = traitlets.Int(0).tag(sync=True)
    ROW_LENGTHS = ROW_LENGTHS
    row = staticmethod(tiny_row)

    @handles(RowRequest)
    def _on_row(self, request: RowRequest) -> RowReply:
        if not request.index < len(ROW_LENGTHS):
            raise ValueError(f"row {request.index} out of range")
        return RowReply(index=request.index, row=Array(tiny_row(request.index), "float32"))

    def export_requests(self) -> list[dict]:
        return [RowRequest(index=i).wire() for i in range(len(ROW_LENGTHS))]

    def figure(self, *, style: str | None = None) -> go.Figure:
        row = tiny_row(0)
        fig = go.Figure(go.Bar(x=np.arange(len(row)), y=row))
        fig.update_layout(xaxis_title="tiny position", yaxis_title="tiny value")
        return apply_style(fig, style)


@pytest.fixture
def tiny_widget() -> TinyWidget:
    return TinyWidget()


@pytest.fixture
def heatmap_figure() -> go.Figure:
    """A 64x64 attention-like heatmap (rows sum to 1) with distinctive axis labels."""
    rng = np.random.default_rng(0)
    z = np.tril(rng.random((64, 64)))
    z /= z.sum(axis=1, keepdims=True)
    fig = go.Figure(go.Heatmap(z=z))
    fig.update_layout(title="Layer 1 Head 3", xaxis_title="key position (src)",
                      yaxis_title="query position (dst)")
    return fig
