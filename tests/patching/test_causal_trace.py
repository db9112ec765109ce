"""ROME's causal tracing. Truth: the procedure written here as a loop, one restoration per forward
pass (the noised copies as the batch), with TransformerLens-style hooks on ``lens.run_with_hooks``
and the answer's probability from the full logits; the noise level from its formula."""

from __future__ import annotations

import pytest
import torch

import lensnb

CLEAN = "def add(x, y):\n    return x +"


@pytest.fixture(scope="module")
def trace(demo_lens):
    return lensnb.causal_trace(demo_lens, CLEAN, "x, y", " y", samples=2, window=2, seed=1,
                               progress=False)


def test_subject_and_noise_level(demo_lens, trace):
    toks = demo_lens.to_str_tokens(CLEAN)
    assert [toks[p] for p in trace.subject_positions] == ["x", ",", " y"]
    _, cache = demo_lens.run_with_cache(CLEAN, names="blocks.0.hook_resid_pre")
    embed = cache["blocks.0.hook_resid_pre"][0, trace.subject_positions]
    assert trace.noise_std == pytest.approx(3 * float(embed.double().std()), rel=1e-6)
    assert trace.noise.shape == (2, 3, demo_lens.facts.d_model)
    assert float(trace.noise.std()) == pytest.approx(trace.noise_std, rel=0.1)
    with torch.no_grad():
        p = demo_lens(CLEAN)[0, -1].softmax(-1)[trace.answer]
    assert trace.clean_prob == pytest.approx(float(p), abs=1e-5)


def _loop_maps(lens, text, trace):
    """The three maps, one restoration per forward pass (the noised copies as the batch), and
    the corrupted probability."""
    n_layers = lens.n_layers
    tokens = lens.to_tokens(text)
    n_pos, subj, samples = tokens.shape[1], trace.subject_positions, trace.noise.shape[0]
    hooks = {"state": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}
    names = [f"blocks.{la}.{h}" for la in range(n_layers) for h in hooks.values()]
    _, clean = lens.run_with_cache(tokens, names=names)

    def noise(x, hook):
        x = x.clone()
        x[:, subj] += trace.noise.to(x.dtype)
        return x

    def restore(name, pos):
        def fn(x, hook):
            x = x.clone()
            x[:, pos] = clean[name][0, pos]
            return x
        return fn

    def prob(fwd):
        logits = lens.run_with_hooks(tokens.expand(samples, -1), fwd_hooks=fwd)
        return float(logits[:, -1].softmax(-1)[:, trace.answer].mean())

    maps = {}
    for kind, hook in hooks.items():
        truth = torch.zeros(n_layers, n_pos)
        for la in range(n_layers):
            # ROME's window: layer - window // 2 .. layer + window // 2 - 1 (window=2: l-1, l)
            window = [la] if kind == "state" else [j for j in (la - 1, la) if j >= 0]
            for p in range(n_pos):
                fwd = [("blocks.0.hook_resid_pre", noise)] + [
                    (f"blocks.{j}.{hook}", restore(f"blocks.{j}.{hook}", p)) for j in window]
                truth[la, p] = prob(fwd)
        maps[kind] = truth
    return maps, prob([("blocks.0.hook_resid_pre", noise)])


def test_maps_equal_a_loop(demo_lens, trace):
    maps, corrupted = _loop_maps(demo_lens, CLEAN, trace)
    assert trace.corrupted_prob == pytest.approx(corrupted, abs=1e-6)
    for kind, truth in maps.items():
        # noise-floor: batched rows vs the loop's two-row passes, probabilities ~0.03-0.2
        assert torch.allclose(getattr(trace, kind), truth, atol=1e-5), kind
    assert float(trace.state[-1, -1]) == pytest.approx(trace.clean_prob, abs=1e-5)


def test_sliding_window_model_equals_a_loop(make_tiny_model):
    """Gemma 3 with a window shorter than the prompt builds its masks per row: the rows that
    join a pass later must still be masked as the loop's passes are."""
    lens = lensnb.load(make_tiny_model("gemma3_text", head_dim=16, sliding_window=4,
                                       layer_types=["sliding_attention", "full_attention"]))
    trace = lensnb.causal_trace(lens, CLEAN, "x, y", 9, samples=2, window=2, seed=1,
                                progress=False)
    maps, corrupted = _loop_maps(lens, CLEAN, trace)
    assert trace.corrupted_prob == pytest.approx(corrupted, abs=1e-6)
    for kind, truth in maps.items():
        assert torch.allclose(getattr(trace, kind), truth, atol=1e-5), kind


def test_kinds_table_figure_and_bad_subject(demo_lens, trace):
    only = lensnb.causal_trace(demo_lens, CLEAN, [4, 5, 6], " y", samples=2, window=2, seed=1,
                               kinds=["state"], progress=False)
    assert only.mlp is None and only.attn is None
    assert torch.allclose(only.state, trace.state)  # the same noise from the same seed
    frame = trace.to_frame()
    assert len(frame) == 3 * demo_lens.n_layers * len(trace.str_tokens)
    assert frame[frame.subject]["position"].unique().tolist() == trace.subject_positions
    fig = trace.figure()
    assert len(fig.data) == 3
    assert any(t.endswith(" *") for t in fig.layout.yaxis.ticktext)
    with pytest.raises(lensnb.InputError, match="not in the prompt"):
        lensnb.causal_trace(demo_lens, CLEAN, "Paris", " y")
    with pytest.raises(lensnb.InputError, match="kinds"):
        lensnb.causal_trace(demo_lens, CLEAN, "x", " y", kinds=["mlp_out"])
