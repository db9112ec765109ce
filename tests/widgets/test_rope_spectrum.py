"""RopeSpectrum: its figure data and its replies to the frontend equal lensnb.rope's numbers
(themselves tested against Meta's formula and transformers in tests/backend/test_rope.py), and
slider values reach the data. Unit tier on catalogue/published configs; one integration test on
the demo model for the usage tab."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from mllama_fixtures import mllama_dir, vision_lens  # noqa: F401

import lensnb
from lensnb import UnsupportedFeatureError, rope
from lensnb.core.facts import catalogue
from lensnb.widgets.base import STATIC

LLAMA31 = {  # published Llama 3.1 values (independent of the catalogue)
    "_name_or_path": "llama31-test", "model_type": "llama", "hidden_size": 512,
    "num_attention_heads": 4, "head_dim": 128, "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
}
LLAMA3 = {**LLAMA31, "_name_or_path": "llama3-test", "rope_scaling": None,
          "max_position_embeddings": 8192}


def _f32(array: np.ndarray) -> np.ndarray:
    """A named float32 buffer of a reply (``LensWidget.ask``)."""
    assert array.dtype == np.float32
    return array


def _trace(fig, name: str):
    found = [t for t in fig.data if t.name == name]
    assert found, f"no trace {name!r} in {[t.name for t in fig.data]}"
    return found[0]


@pytest.fixture(scope="module")
def widget():
    return lensnb.RopeSpectrum(LLAMA31, compare={"Llama 3": LLAMA3})


def test_spectrum_figure_is_lensnb_rope(widget):
    widget.tab, widget.y_axis, widget.log_y = "spectrum", "wavelength", True
    fig = widget.figure()
    truth = rope.spectrum(LLAMA31)
    np.testing.assert_allclose(_trace(fig, "llama31-test (scaled)").y, truth["wavelength"])
    np.testing.assert_allclose(_trace(fig, "llama31-test (unscaled)").y,
                               truth["base_wavelength"])
    np.testing.assert_allclose(_trace(fig, "Llama 3").y, rope.spectrum(LLAMA3)["wavelength"])
    assert fig.layout.yaxis.type == "log"
    # three shaded regions at orig/high and orig/low; original context marked
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    edges = sorted({round(v, 6) for s in rects for v in (s.y0, s.y1)})
    assert len(rects) == 3 and 2048.0 in edges and 8192.0 in edges
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert [s.y0 for s in lines] == [8192]
    texts = [a.text for a in fig.layout.annotations]
    assert set(rope.REGIONS) <= set(texts) and "original context 8,192" in texts


def test_inverse_frequency_view(widget):
    widget.tab, widget.y_axis = "spectrum", "inv_freq"
    try:
        fig = widget.figure()
    finally:
        widget.y_axis = "wavelength"
    np.testing.assert_allclose(_trace(fig, "llama31-test (scaled)").y,
                               rope.inv_freq(LLAMA31).double().numpy(), rtol=1e-7)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert lines[0].y0 == pytest.approx(2 * math.pi / 8192)


def test_sliders_recompute_through_lensnb_rope():
    w = lensnb.RopeSpectrum(LLAMA31, compare=None)
    assert w.params() == {"theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_context": 8192}
    w.factor, w.high_freq_factor, w.original_context, w.theta = 32.0, 8.0, 4096, 1e6
    expected = rope.inv_freq(LLAMA31, factor=32.0, high_freq_factor=8.0,
                             original_max_position_embeddings=4096, rope_theta=1e6)
    w.y_axis = "inv_freq"
    np.testing.assert_allclose(_trace(w.figure(), "llama31-test (scaled)").y,
                               expected.double().numpy(), rtol=1e-7)
    # the frontend's request carries the slider values; the reply is the same numbers
    got = w.ask("spectrum", params={"factor": 16.0, "theta": 1e4})
    reply, buffers = got.reply, got.buffers  # named buffers, one per series each
    truth = rope.spectrum(LLAMA31, factor=16.0, rope_theta=1e4, high_freq_factor=8.0,
                          original_max_position_embeddings=4096)
    np.testing.assert_allclose(_f32(buffers["inv_freq"][0]), truth["inv_freq"], rtol=1e-6)
    np.testing.assert_allclose(_f32(buffers["wavelength"][0]), truth["wavelength"], rtol=1e-6)
    np.testing.assert_allclose(_f32(buffers["smooth"][0]), truth["smooth"], atol=1e-6)
    regions = [reply["regions"][int(i)] for i in buffers["region"][0]]
    assert regions == list(truth["region"])
    assert reply["bands"] == {"high_freq_wavelen": 512.0, "low_freq_wavelen": 4096.0,
                              "original_context": 4096.0}


def test_bad_slider_values_are_refused_with_a_reason():
    w = lensnb.RopeSpectrum(LLAMA31, compare=None)
    with pytest.raises(ValueError, match="high_freq_factor .* greater than low_freq_factor"):
        w.ask("spectrum", params={"low_freq_factor": 4.0, "high_freq_factor": 2.0})
    with pytest.raises(ValueError, match="factor >= 1"):
        w.ask("spectrum", params={"factor": 0.5})
    with pytest.raises(ValueError, match="unknown request"):
        w.ask("nope")
    with pytest.raises(Exception, match="expected any of"):
        w.tab = "3d"
    with pytest.raises(ValueError, match="needs a loaded model"):
        w.ask("usage", which="q")


def test_unscaled_config_stays_unscaled_until_a_slider_moves():
    w = lensnb.RopeSpectrum(LLAMA3, compare=None)
    assert set(w.spectrum_data()["series"][0]["frame"]["region"]) == {"unscaled"}
    assert w.spectrum_data()["bands"] is None
    w.factor = 4.0  # now Llama 3.1-style scaling with theta and d_head of this model
    torch.testing.assert_close(
        torch.tensor(w.spectrum_data()["series"][0]["frame"]["inv_freq"].to_numpy()),
        rope.inv_freq(LLAMA3, rope_type="llama3", factor=4.0, low_freq_factor=1.0,
                      high_freq_factor=4.0, original_max_position_embeddings=8192).double())


def test_catalogue_default_and_comparisons():
    names = ("meta-llama/Llama-3.1-8B", "meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-3.2-3B")
    if not all(n in catalogue() for n in names):
        pytest.skip("the Llama 3 / 3.1 / 3.2 configs are not in the shipped catalogue")
    w = lensnb.RopeSpectrum()
    assert w.label == "Llama-3.1-8B"
    assert w.compare_labels == ["Meta-Llama-3-8B", "Llama-3.2-3B"]
    fig = w.figure()
    np.testing.assert_allclose(_trace(fig, "Llama-3.2-3B").y,
                               rope.spectrum("meta-llama/Llama-3.2-3B")["wavelength"])
    np.testing.assert_allclose(_trace(fig, "Llama-3.1-8B (scaled)").y,
                               rope.spectrum("meta-llama/Llama-3.1-8B")["wavelength"])


def test_decay_tab_is_mean_cosine_of_the_rotation(widget):
    widget.tab = "decay"
    try:
        fig = widget.figure()
    finally:
        widget.tab = "spectrum"
    scaled = _trace(fig, "llama31-test (scaled)")
    unscaled = _trace(fig, "llama31-test (unscaled)")
    d = np.asarray(scaled.x)
    assert d[0] == 1 and d[-1] == 4 * 131072 and fig.layout.xaxis.type == "log"
    f = rope.inv_freq(LLAMA31).double().numpy()
    base = 500000.0 ** (-np.arange(0, 128, 2) / 128)
    for i in (0, len(d) // 2, len(d) - 1):
        assert scaled.y[i] == pytest.approx(np.cos(d[i] * f).mean(), abs=1e-9)
        # float32 frequencies differ from float64 ones by < 1e-6 relative: |dcos| < d * 1e-6
        assert unscaled.y[i] == pytest.approx(np.cos(d[i] * base).mean(), abs=d[i] * 1e-6)
    got = widget.ask("decay", params=widget.params())
    np.testing.assert_allclose(_f32(got.buffers["distances"]), d)
    np.testing.assert_allclose(_f32(got.buffers["score"][0]), scaled.y, rtol=1e-6, atol=1e-7)


def test_usage_tab_is_frequency_usage(demo_lens):
    text = "x = [i * i for i in range(5)]\n"
    w = lensnb.RopeSpectrum(demo_lens, text=text, compare=None)
    assert w.has_usage and w.label == demo_lens.name
    for which, n in (("q", demo_lens.n_heads), ("k", demo_lens.n_key_value_heads)):
        w.usage_which, w.tab = which, "usage"
        truth = rope.frequency_usage(demo_lens, text, which=which)  # [L, H, P]
        heat = w.figure().data[0]
        np.testing.assert_allclose(np.asarray(heat.z), truth.reshape(-1, truth.shape[-1]),
                                   rtol=1e-6)
        assert len(heat.y) == demo_lens.n_layers * n
        got = w.ask("usage", which=which)
        reply = got.reply
        np.testing.assert_allclose(_f32(got.buffers["usage"]),
                                   truth.reshape(-1, truth.shape[-1]).numpy())
        assert (reply["n_layers"], reply["n_heads"]) == (demo_lens.n_layers, n)
    # standalone exports pre-answer every tab; replies are plain JSON
    requests = w.export_requests()
    assert {r["name"] for r in requests} == {"spectrum", "decay", "usage"}
    for req in requests:
        json.dumps(w.answer(req)[0], allow_nan=False)


def test_paper_figure_and_frontend_files(widget):
    fig = widget.figure(style="paper")
    assert fig.layout.width == pytest.approx(3.25 * 96, abs=1)
    esm = "\n".join((STATIC / f).read_text()
                    for f in ("rope_chart.js", "rope_views.js", "rope_spectrum.js"))
    assert "http://" not in esm.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in esm and "import " not in esm.split("export default")[0]
    assert "innerHTML" not in esm  # labels are untrusted text: textContent only
    assert widget._esm.endswith(esm)
    assert repr(widget).startswith("<RopeSpectrum")


def test_vision_lens_spectrum_without_usage(vision_lens):  # noqa: F811
    """Llama 3.2 Vision: the spectrum from its config; no per-head usage tab (its
    cross-attention layers have no RoPE), and asking for one raises up front."""
    w = lensnb.RopeSpectrum(vision_lens)
    assert not w.has_usage
    w.figure()
    for kwargs in ({"text": "def f(x):"}, {"tab": "usage"}):
        with pytest.raises(UnsupportedFeatureError, match=r"frequency usage .*text_only\(\)"):
            lensnb.RopeSpectrum(vision_lens, **kwargs)
