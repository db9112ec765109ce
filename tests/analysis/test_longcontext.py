"""Distance mass, sink mass and reach equal loops over the exact pattern on short inputs."""

from __future__ import annotations

import pytest
import torch
from layouts import LAYOUTS

import lensnb
from lensnb.analysis.longcontext import head_stats, log_bins, stdlib_files, stdlib_tokens

TEXT = "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n" * 3


@pytest.fixture(scope="module")
def kept(demo_lens):
    return lensnb.attention_patterns(demo_lens, TEXT, layers=[0, 3])


def loops(p: torch.Tensor, n_sink: int, fraction: float, q0: int, q1: int):
    """The three statistics of one head's exact pattern ``p [q, k]``, one query at a time."""
    n = p.shape[0]
    edges = [0] + [2**i for i in range(20) if 2 ** (i - 1) < n]
    dist = [0.0] * (len(edges) - 1)
    sink, reach = 0.0, []
    for i in range(q0, q1):
        for j in range(i + 1):
            d = i - j
            b = next(b for b in range(len(edges) - 1) if edges[b] <= d < edges[b + 1])
            dist[b] += float(p[i, j])
        sink += float(p[i, :n_sink].sum())
        acc, big_d = 0.0, None
        for d in range(i + 1):
            acc += float(p[i, i - d])
            if acc >= fraction * float(p[i, :i + 1].sum()):
                big_d = d
                break
        reach.append(big_d)
    m = q1 - q0
    return [x / m for x in dist], sink / m, reach


@pytest.mark.parametrize("layer,q0,q1,n_sink,fraction", [(0, 0, None, 4, 0.5),
                                                         (3, 5, 40, 1, 0.9),
                                                         (3, 0, None, 3, 0.25)])
def test_stats_equal_loops(kept, layer, q0, q1, n_sink, fraction):
    q1 = kept.n_pos if q1 is None else q1
    stats = head_stats(kept, layer, [1, 4, 6], queries=(q0, q1), n_sink=n_sink,
                       fractions=(fraction,))
    assert list(stats.edges[:4]) == [0, 1, 2, 4] and stats.edges[-1] >= kept.n_pos
    for j, head in enumerate([1, 4, 6]):
        dist, sink, reach = loops(kept.pattern(layer, head), n_sink, fraction, q0, q1)
        torch.testing.assert_close(stats.distance[j, :len(dist)],
                                   torch.tensor(dist, dtype=torch.float32), atol=1e-5, rtol=0)
        assert stats.distance[j, len(dist):].abs().max() < 1e-6 if len(dist) < len(
            stats.edges) - 1 else True
        assert float(stats.sink[j]) == pytest.approx(sink, abs=1e-5)
        assert stats.reach[fraction][j].tolist() == reach
    torch.testing.assert_close(stats.distance.sum(-1), torch.ones(3), atol=1e-5, rtol=0)


def test_profile_table_and_figure(demo_lens, kept):
    prof = lensnb.long_context_profile(demo_lens, kept=kept, progress=False)
    assert prof.layers == [0, 3] and prof.distance.shape == (2, 8, len(log_bins(kept.n_pos)) - 1)
    table = prof.table()
    assert len(table) == 16 and set(table.columns) >= {"sink_mass", "reach_50", "reach_90"}
    per = prof.per_layer[3]
    assert table.query("layer == 3 and head == 2").reach_90.item() == int(
        per.reach[0.9][2].float().median())
    # the wavelengths shown are rope.spectrum's, original and smoothed
    spec = lensnb.rope.spectrum(demo_lens)
    assert prof.spectrum["wavelength"].tolist() == spec["wavelength"].tolist()
    row = table.query("layer == 0 and head == 5").iloc[0]
    for col, name in (("base_wavelength", "original"), ("wavelength", "smoothed")):
        assert row[f"pairs_unwrapped_{name}"] == sum(w >= row.reach_90 for w in spec[col])
    fig = prof.figure(3)
    assert len(fig.layout.updatemenus[0].buttons) == 2
    names = {t.name for t in fig.data}
    assert {"RoPE wavelength (original)", "RoPE wavelength (smoothed)", "H0"} <= names


def test_stdlib_tokens_are_held_out_source(demo_lens):
    toks = stdlib_tokens(demo_lens, 600)
    assert toks.shape == (1, 600) and int(toks[0, 0]) == demo_lens.tokenizer.bos_token_id
    first = stdlib_files()[0].read_text(encoding="utf-8")
    assert demo_lens.tokenizer.decode(toks[0, 1:60]) in first
    assert len(stdlib_files()) * 19 < len(stdlib_files(held_out=False)) < (
        len(stdlib_files()) + 1) * 20
    with pytest.raises(ValueError, match="n_tokens"):
        stdlib_tokens(demo_lens, 1)


def test_bad_arguments(kept):
    with pytest.raises(IndexError, match="queries"):
        head_stats(kept, 0, queries=(5, 2))
    with pytest.raises(ValueError, match="fractions"):
        head_stats(kept, 0, fractions=(1.5,))
    with pytest.raises(IndexError, match="not kept"):
        head_stats(kept, 1)


def test_every_argument_is_checked_before_the_model_runs(demo_lens, kept, monkeypatch):
    """An empty text, a bad n_sink, queries, fractions or layers: an error that names the
    argument and what is allowed, raised before any forward pass (the counting hook stays 0)."""
    ran = []
    monkeypatch.setattr(lensnb.KeptQK, "from_lens",
                        classmethod(lambda cls, *a, **k: ran.append(1)))
    with pytest.raises(lensnb.InputError, match=r"at least 2 tokens .*'' is 1 token \(the BOS"):
        lensnb.long_context_profile(demo_lens, "")
    with pytest.raises(lensnb.InputError, match=r"n_sink must be in 1\.\.\d+ .* got 0"):
        lensnb.long_context_profile(demo_lens, TEXT, n_sink=0)
    with pytest.raises(lensnb.InputTypeError, match="n_sink is an int"):
        lensnb.long_context_profile(demo_lens, TEXT, n_sink=2.5)
    with pytest.raises(lensnb.IndexRangeError, match=r"queries \(5, 2\) are not inside"):
        lensnb.long_context_profile(demo_lens, TEXT, queries=(5, 2))
    with pytest.raises(lensnb.InputTypeError, match="queries is a pair of ints"):
        lensnb.long_context_profile(demo_lens, TEXT, queries=5)
    with pytest.raises(lensnb.InputError, match=r"fractions must be numbers in \(0, 1\]"):
        lensnb.long_context_profile(demo_lens, TEXT, fractions=(0.5, 1.5))
    with pytest.raises(lensnb.InputError, match="fractions is empty"):
        lensnb.long_context_profile(demo_lens, TEXT, fractions=())
    with pytest.raises(lensnb.InputError, match="not both"):
        lensnb.long_context_profile(demo_lens, TEXT, kept=kept)
    with pytest.raises(lensnb.InputError, match="n_tokens must be at least 2"):
        lensnb.long_context_profile(demo_lens, n_tokens=1)
    assert not ran
    with pytest.raises(lensnb.IndexRangeError, match=r"layers \[1\] were not kept"):
        lensnb.long_context_profile(demo_lens, kept=kept, layers=[0, 1], progress=False)


def test_a_short_text_takes_fewer_sink_tokens(demo_lens):
    """Three tokens: the sink is the first two by default (4 would be the whole text)."""
    prof = lensnb.long_context_profile(demo_lens, "a b", progress=False)
    assert prof.n_pos == 3 and prof.n_sink == 2


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_family_profile_equals_loops_over_hf_eager(make_tiny_model, layout):
    """GPT-2 (no RoPE: no wavelengths), partial rotary, q/k norms, soft-caps, sliding windows:
    the profile's statistics equal the loops run on Hugging Face's own eager weights."""
    from transformers import AutoModelForCausalLM

    model_type, overrides = LAYOUTS[layout]
    path = make_tiny_model(model_type, **overrides)
    lens = lensnb.load(path)
    tokens = lens.to_tokens(TEXT)
    prof = lensnb.long_context_profile(lens, tokens, n_sink=2, fractions=(0.9,), progress=False)
    hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    with torch.no_grad():
        attentions = hf(tokens, output_attentions=True).attentions
    assert prof.layers == list(range(lens.n_layers))
    for layer, att in enumerate(attentions):
        for head in range(lens.n_heads):
            dist, sink, reach = loops(att[0, head], 2, 0.9, 0, tokens.shape[1])
            torch.testing.assert_close(prof.distance[layer, head, :len(dist)],
                                       torch.tensor(dist, dtype=torch.float32), atol=1e-5, rtol=0)
            assert float(prof.sink[layer, head]) == pytest.approx(sink, abs=1e-5)
            assert prof.per_layer[layer].reach[0.9][head].tolist() == reach
    assert (prof.spectrum is None) == (model_type == "gpt2")
    assert len(prof.table()) == lens.n_layers * lens.n_heads
