"""AttentionExplorer's Python side: requests answered with the right numbers, synced traits,
static figure, CircuitsVis interop offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets
from layouts import LAYOUTS
from mllama_fixtures import hf_mllama, mllama_dir, vision_lens  # noqa: F401

import lensnb
from lensnb import AttentionExplorer, UnsupportedFeatureError
from lensnb.widgets import attention as attention_module

XSS = "<img src=x onerror=alert(1)>"
TEXT = f"def add(a, b):\n    return a + b  # {XSS}"


@pytest.fixture(scope="module")
def explorer(demo_lens):
    return AttentionExplorer(demo_lens, TEXT, layers=[1, 3], layer=3)


@pytest.fixture(scope="module")
def truth(demo_lens):
    """hook_pattern of the kept layers, [n_heads, q, k] each."""
    _, cache = demo_lens.run_with_cache(TEXT, names="blocks.*.attn.hook_pattern")
    return {la: cache[f"blocks.{la}.attn.hook_pattern"][0] for la in (1, 3)}


def decode(data, vmax=None):
    """A named buffer as weights (uint8 tiles are scaled to their vmax)."""
    return data.astype(np.float32) / 255.0 * vmax if data.dtype == np.uint8 else data


def test_overview_tile_matches_pattern(explorer, truth):
    got = explorer.ask("tile", layer=3, head=5)
    reply = got.reply
    assert (reply["fq"], reply["fk"]) == (1, 1)  # a short text is sent at full resolution
    got = decode(got.buffers["tile"], reply["vmax"])
    np.testing.assert_allclose(got, truth[3][5].numpy(), atol=reply["vmax"] / 510 + 1e-6)


def test_zoom_tile_is_pooled_window(explorer, truth, monkeypatch):
    monkeypatch.setattr(attention_module, "OVERVIEW", 4)
    n = len(explorer.tokens)
    got = explorer.ask("tile", layer=1, head=2, q0=2, q1=n, k0=0, k1=10, size=4)
    reply = got.reply
    fq, fk = reply["fq"], reply["fk"]
    assert (fq, fk) == (-(-(n - 2) // 4), 3)
    got = decode(got.buffers["tile"], reply["vmax"])
    want = truth[1][2, 2:n, 0:10]
    for i in range(got.shape[0]):
        for j in range(got.shape[1]):
            block = want[i * fq:(i + 1) * fq, j * fk:(j + 1) * fk].max().item()
            assert got[i, j] == pytest.approx(block, abs=reply["vmax"] / 510 + 1e-6)


def test_rows_and_columns_are_exact_float32(explorer, truth):
    n = len(explorer.tokens)
    got = explorer.ask("row", layer=3, head=6, pos=n - 1)
    np.testing.assert_allclose(decode(got.buffers["weights"]), truth[3][6, n - 1].numpy(),
                               rtol=1e-5, atol=1e-7)
    got = explorer.ask("column", layer=3, head=6, pos=2)
    np.testing.assert_allclose(decode(got.buffers["weights"]), truth[3][6, :, 2].numpy(),
                               rtol=1e-5, atol=1e-7)


def test_thumbnails_and_group_view(explorer, truth, demo_lens):
    got = explorer.ask("thumb", layer=3, head=0)
    assert max(got.buffers["thumb"].shape) <= attention_module.THUMB
    thumb = decode(got.buffers["thumb"], got.reply["vmax"])
    assert thumb.max() == pytest.approx(truth[3][0].max().item(), abs=1 / 255)
    got = explorer.ask("group", layer=3, kv_group=1)
    reply = got.reply
    heads = demo_lens.heads_of_kv(1)
    assert [p["name"] for p in reply["panels"]] == [f"H{h}" for h in heads] + [
        "mean", "max", "spread"]
    g = truth[3][heads]  # [group, q, k]
    spread = decode(got.buffers["tiles"]["spread"], reply["panels"][-1]["vmax"])
    np.testing.assert_allclose(spread, (g.max(0).values - g.min(0).values).numpy(),
                               atol=reply["panels"][-1]["vmax"] / 510 + 1e-6)


def test_requests_report_errors_clearly(explorer):
    with pytest.raises(IndexError, match=r"kept layers are \[1, 3\]"):
        explorer.ask("tile", layer=0, head=0)
    with pytest.raises(ValueError, match="unknown request kind 'nope'"):
        explorer.ask("nope")
    sent = []
    explorer.send = lambda content, buffers=None: sent.append(content)  # capture the reply
    try:
        explorer._on_frontend_msg(explorer, {"kind": "request", "id": "x",
                                             "request": {"name": "row", "params": {
                                                 "layer": 3, "head": 99, "pos": 0}}}, [])
    finally:
        del explorer.send
    assert "valid heads are 0..7" in sent[0]["error"]


def test_synced_traits(demo_lens):
    ex = AttentionExplorer(demo_lens, "x = 1", layers=[0, 2], head=6)
    assert (ex.layer, ex.head, ex.kv_group) == (0, 6, demo_lens.kv_head_of(6))
    ex.kv_group = 0
    assert ex.head in demo_lens.heads_of_kv(0)
    ex.head = 7
    assert ex.kv_group == demo_lens.kv_head_of(7)
    for name, bad, msg in [("head", 8, "valid query heads are 0..7"),
                           ("layer", 1, r"choose one of \[0, 2\]"),
                           ("kv_group", 2, "valid KV groups are 0..1"),
                           ("view", "grid", "expected any of"),
                           ("text_role", "both", "expected any of"),
                           ("text_token", 99, "out of range")]:
        with pytest.raises(traitlets.TraitError, match=msg):
            setattr(ex, name, bad)
    state = ex.get_state()
    assert {"layer", "head", "kv_group", "view", "tokens"} <= set(state)
    assert "x = 1".replace(" ", "") in "".join(state["tokens"]).replace(" ", "")


def test_export_requests_answerable_and_small(explorer):
    total = 0
    for req in explorer.export_requests():
        _, bufs = explorer.answer(req)
        total += sum(len(b) for b in bufs)
    n = len(explorer.tokens)
    assert total <= (explorer.n_heads + 1) * n * n + 4 * n  # uint8 tiles + one float32 row


def test_figure_is_selected_head(explorer, truth):
    explorer.head = 4
    fig = explorer.figure(style="paper")
    heat = fig.data[0]
    np.testing.assert_allclose(np.asarray(heat.z, dtype=np.float32), truth[3][4].numpy(),
                               atol=1e-6)
    assert "L3H4" in fig.layout.title.text
    text = " ".join(fig.layout.yaxis.ticktext)
    assert "&lt;" in text and "<" not in text  # plotly labels are markup: escaped


def test_to_circuitsvis_offline(explorer, truth, no_network):
    html = explorer.to_circuitsvis(3, heads=[0, 5])
    out = html._repr_html_()  # CircuitsVis's own object would ping a website here
    assert "unpkg.com" not in out and "CircuitsVis.render" in out
    assert repr(round(float(truth[3][5, 3, 1]), 4))[:5] in out
    assert "AttentionPatterns" in out


def test_to_circuitsvis_bounded(explorer, monkeypatch):
    monkeypatch.setattr(attention_module, "CIRCUITSVIS_MAX_CELLS", 3 * len(explorer.tokens) ** 2)
    with pytest.raises(ValueError, match="pass at most 3 heads"):
        explorer.to_circuitsvis(3)
    assert isinstance(explorer.to_circuitsvis(3, heads=[1]), attention_module.CircuitsVisHTML)


def test_bytes_sent_counts_replies(explorer):
    before = explorer.bytes_sent
    explorer._on_frontend_msg(explorer, {"kind": "request", "id": "1",
                                         "request": {"name": "row", "params": {
                                             "layer": 1, "head": 0, "pos": 0}}}, [])
    assert explorer.bytes_sent - before >= 4 * len(explorer.tokens)


def test_long_text_builds_first_overview_and_survives_interrupt(demo_lens, monkeypatch):
    """Above PRECOMPUTE_FROM tokens the first view's overview is made while building; an
    interrupt during a request becomes an error reply and caches nothing half-made."""
    monkeypatch.setattr(attention_module, "PRECOMPUTE_FROM", 8)
    ex = AttentionExplorer(demo_lens, TEXT, layers=[2], head=3)
    assert list(ex._overviews) == [(2, 3)]
    kept = ex.kept

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kept, "_scores", interrupted)
    ex.send = lambda content, buffers=None: sent.append(content)
    sent = []
    ex._on_frontend_msg(ex, {"kind": "request", "id": "7",
                             "request": {"name": "tile", "params": {"layer": 2, "head": 6}}}, [])
    assert sent[-1]["id"] == "7" and "interrupted" in sent[-1]["error"]
    assert (2, 6) not in ex._overviews and (2, 6) not in kept._lse
    monkeypatch.undo()
    reply = ex.ask("tile", layer=2, head=6).reply  # usable afterwards
    assert reply["vmax"] > 0


# --------------------------------------------------------------------- Llama 3.2 Vision lenses
VISION_TEXT = f"def f(x):\n    return x  # {XSS}"


@pytest.fixture(scope="module")
def vision_explorer(vision_lens):  # noqa: F811
    return AttentionExplorer(vision_lens, VISION_TEXT)


def test_vision_lens_shows_its_self_attention_layers(vision_explorer, vision_lens, hf_mllama):  # noqa: F811
    """Layers 1 and 3 of the tiny Mllama are cross-attention: the explorer keeps 0 and 2, per
    query head and KV group, equal to HF's eager attentions of those layers (text alone)."""
    e = vision_explorer
    assert e.layers == [0, 2] and e.layer == 0
    assert (e.n_heads, e.n_kv) == (4, 2)
    assert "ImageAttention" in e.notice and "[1, 3]" in e.notice
    ids = vision_lens.to_tokens(VISION_TEXT)
    with torch.no_grad():
        want = hf_mllama(input_ids=ids, output_attentions=True).attentions  # self layers only
    assert len(want) == 2
    for layer, ref in zip(e.layers, want, strict=True):
        torch.testing.assert_close(e.kept.pattern(layer), ref[0], atol=1e-5, rtol=0)
        got = e.ask("tile", layer=layer, head=3)
        reply = got.reply
        np.testing.assert_allclose(decode(got.buffers["tile"], reply["vmax"]), ref[0, 3].numpy(),
                                   atol=reply["vmax"] / 510 + 1e-6)
    got = e.ask("group", layer=2, kv_group=1)
    assert [p["name"] for p in got.reply["panels"]] == ["H2", "H3", "mean", "max", "spread"]
    assert len(got.buffers["tiles"]) == 5


def test_text_lens_has_no_notice(explorer):
    assert explorer.notice == ""


@pytest.mark.parametrize("layers", [[1], [0, 3], [-1]])
def test_cross_attention_layer_points_to_image_attention(vision_lens, layers):  # noqa: F811
    with pytest.raises(UnsupportedFeatureError,
                       match=r"cross-attention layer .*ImageAttention.*self-attention layers "
                             r"\[0, 2\]"):
        AttentionExplorer(vision_lens, VISION_TEXT, layers=layers)


def test_selecting_a_cross_attention_layer_says_where_it_is(vision_explorer):
    with pytest.raises(traitlets.TraitError, match="cross-attention layer.*ImageAttention"):
        vision_explorer.layer = 1
    assert vision_explorer.layer == 0


def test_image_token_in_text_points_to_image_attention(vision_lens):  # noqa: F811
    with pytest.raises(UnsupportedFeatureError, match=r"<\|image\|>.*ImageAttention"):
        AttentionExplorer(vision_lens, "<|image|>a picture of")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_family_tiles_rows_and_groups_equal_hf_eager(make_tiny_model, layout):
    """The explorer on GPT-2, NeoX, Phi-3, Qwen3, OLMo-2, Gemma 2/3 and the Llama-likes: every
    layer's overview tile, an exact row and a column, and a KV group's mean panel, against the
    weights Hugging Face's eager attention returns (output_attentions=True)."""
    from transformers import AutoModelForCausalLM

    model_type, overrides = LAYOUTS[layout]
    path = make_tiny_model(model_type, **overrides)
    lens = lensnb.load(path)
    text = "def add(a, b):\n    return a + b\n"
    explorer = AttentionExplorer(lens, text)
    hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    with torch.no_grad():
        attentions = hf(lens.to_tokens(text), output_attentions=True).attentions
    n = len(explorer.tokens)
    assert explorer.layers == list(range(lens.n_layers))
    for layer, att in enumerate(attentions):
        want = att[0]  # [heads, q, k]
        head = lens.n_heads - 1
        got = explorer.ask("tile", layer=layer, head=head)
        tile = decode(got.buffers["tile"], got.reply["vmax"])
        np.testing.assert_allclose(tile, want[head].numpy(), atol=got.reply["vmax"] / 510 + 1e-6)
        row = explorer.ask("row", layer=layer, head=0, pos=n - 1).buffers["weights"]
        np.testing.assert_allclose(row, want[0, n - 1].numpy(), rtol=0, atol=1e-6)
        col = explorer.ask("column", layer=layer, head=head, pos=1).buffers["weights"]
        np.testing.assert_allclose(col, want[head, :, 1].numpy(), rtol=0, atol=1e-6)
        group = lens.n_key_value_heads - 1
        got = explorer.ask("group", layer=layer, kv_group=group)
        mean = decode(got.buffers["tiles"]["mean"], got.reply["panels"][-3]["vmax"])
        heads = lens.heads_of_kv(group)
        np.testing.assert_allclose(mean, want[heads].mean(0).numpy(),
                                   atol=got.reply["panels"][-3]["vmax"] / 510 + 1e-6)
