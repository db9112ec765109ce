"""Static exports through kaleido + Debian's chromium: PDF page sizes, SVG text, PNG pixels."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import plotly.graph_objects as go
import pytest
from export_chromium import needs_chromium

import lensnb
from lensnb.export import ChromiumNotFoundError, save

pypdf = pytest.importorskip("pypdf", reason="pypdf (test extra) reads the exported PDFs")
Image = pytest.importorskip("PIL.Image", reason="Pillow reads the exported PNGs")



@needs_chromium
@pytest.mark.parametrize(("style", "width_pt"), [("paper", 234), ("paper-double", 486)])
def test_pdf_page_is_the_column_width_and_text_is_vector(tmp_path, heatmap_figure, style,
                                                         width_pt):
    path = save(heatmap_figure, tmp_path / "fig.pdf", style=style, height=2.0)
    reader = pypdf.PdfReader(path)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert float(box.width) == pytest.approx(width_pt, abs=0.5)  # 3.25 in * 72, 6.75 in * 72
    assert float(box.height) == pytest.approx(2.0 * 72, abs=0.5)
    text = reader.pages[0].extract_text()
    assert "key position (src)" in text and "query position (dst)" in text


@needs_chromium
def test_svg_parses_and_holds_the_axis_labels(tmp_path, heatmap_figure):
    path = save(heatmap_figure, tmp_path / "fig.svg", style="paper")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert float(root.get("width")) == pytest.approx(3.25 * 96)
    texts = {"".join(node.itertext()) for node in root.iter() if node.tag.endswith("text")}
    assert {"key position (src)", "query position (dst)", "Layer 1 Head 3"} <= texts


@needs_chromium
@pytest.mark.parametrize(("dpi", "width", "height"), [(300, 3.25, 2.5), (150, 6.75, 3.0)])
def test_png_has_inches_times_dpi_pixels(tmp_path, heatmap_figure, dpi, width, height):
    path = save(heatmap_figure, tmp_path / "fig.png", dpi=dpi, width=width, height=height)
    with Image.open(path) as image:
        assert image.size == (round(width * dpi), round(height * dpi))
        assert image.format == "PNG"


@needs_chromium
def test_widget_figure_exports_through_its_figure_method(tmp_path, tiny_widget):
    path = tiny_widget.save(tmp_path / "tiny.svg")
    texts = {"".join(n.itertext()) for n in ET.parse(path).getroot().iter()
             if n.tag.endswith("text")}
    assert {"tiny position", "tiny value"} <= texts


@needs_chromium
def test_4k_token_heatmap_export_stays_small(tmp_path):
    """4096x4096 cells: pooled to 1024x1024 and labelled; the PNG stays a few MB at most."""
    z = np.tril(np.random.default_rng(0).random((4096, 4096), dtype=np.float32))
    fig = go.Figure(go.Heatmap(z=z))
    fig.update_layout(xaxis_title="key", yaxis_title="query")
    png = save(fig, tmp_path / "big.png", dpi=300)
    assert png.stat().st_size < 8 * 2**20
    svg = save(fig, tmp_path / "big.svg")
    assert svg.stat().st_size < 16 * 2**20
    assert "max-pooled 4x from 4096x4096 cells" in svg.read_text(encoding="utf-8")


def test_bad_arguments_say_what_is_allowed(tmp_path, heatmap_figure):
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf, \.html"):
        save(heatmap_figure, tmp_path / "fig.jpeg")
    with pytest.raises(ValueError, match="dpi"):
        save(heatmap_figure, tmp_path / "fig.png", dpi=0)
    with pytest.raises(ValueError, match="allowed: None, 'paper'"):
        save(heatmap_figure, tmp_path / "fig.png", style="poster")
    with pytest.raises(TypeError, match="plotly Figure or a lensnb"):
        save(object(), tmp_path / "fig.png")


def test_missing_chromium_error_says_how_to_install(tmp_path, heatmap_figure, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    with pytest.raises(ChromiumNotFoundError, match="apt-get install -y chromium"):
        save(heatmap_figure, tmp_path / "fig.png")
    assert not (tmp_path / "fig.png").exists()


def test_top_level_import_is_cheap_and_exposes_save():
    assert lensnb.export.save is save
