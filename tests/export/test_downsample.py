"""Unit: the large-heatmap policy (max-pool to <= max_cells per axis, and say so)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from lensnb.export import MAX_CELLS, limit_heatmaps, max_pool


def _naive_pool(z: np.ndarray, fr: int, fc: int) -> np.ndarray:
    rows = -(-z.shape[0] // fr)
    cols = -(-z.shape[1] // fc)
    out = np.empty((rows, cols))
    for i in range(rows):
        for j in range(cols):
            block = z[i * fr:(i + 1) * fr, j * fc:(j + 1) * fc]
            out[i, j] = np.nan if np.isnan(block).all() else np.nanmax(block)
    return out


@pytest.mark.parametrize(("shape", "fr", "fc"), [((12, 12), 4, 4), ((13, 7), 4, 3),
                                                 ((5, 9), 1, 2)])
def test_max_pool_matches_blockwise_max(shape, fr, fc):
    z = np.random.default_rng(1).normal(size=shape)
    z[0, :2] = np.nan
    np.testing.assert_array_equal(max_pool(z, fr, fc), _naive_pool(z, fr, fc))


def test_4096_attention_map_is_pooled_to_1024_and_labelled():
    n = 4096
    rng = np.random.default_rng(0)
    z = np.tril(rng.random((n, n), dtype=np.float32) * 0.01)
    peaks = [(4000, 17), (123, 122), (2048, 2047)]  # sharp entries, like an induction head's
    for q, k in peaks:
        z[q, k] = 1.0
    fig = go.Figure(go.Heatmap(z=z))
    fig.update_layout(title="L2H5")
    out, notes = limit_heatmaps(fig, MAX_CELLS)
    pooled = np.asarray(out.data[0].z)
    assert pooled.shape == (1024, 1024)
    assert notes == ["max-pooled 4x from 4096x4096 cells"]
    assert "L2H5" in out.layout.title.text and "max-pooled 4x" in out.layout.title.text
    for q, k in peaks:  # every peak survives in the cell that covers it
        assert pooled[q // 4, k // 4] == 1.0
    np.testing.assert_array_equal(pooled[:3, :3], _naive_pool(z[:12, :12], 4, 4))
    # block centres in the original positions: cells 0..3 -> 1.5, 4..7 -> 5.5
    assert list(out.data[0].x[:2]) == [1.5, 5.5]
    assert np.asarray(fig.data[0].z).shape == (n, n)  # the caller's figure is untouched


def test_small_maps_and_max_cells_none_are_left_alone():
    z = np.ones((2000, 10))
    fig = go.Figure(go.Heatmap(z=z))
    same, notes = limit_heatmaps(fig, None)
    assert same is fig and notes == []
    out, notes = limit_heatmaps(fig, 1000)
    assert np.asarray(out.data[0].z).shape == (1000, 10) and notes == [
        "max-pooled 2x1 from 2000x10 cells"]
    with pytest.raises(ValueError, match="max_cells"):
        limit_heatmaps(fig, 0)
