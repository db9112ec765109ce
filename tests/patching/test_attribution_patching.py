"""Attribution patching. Truth: a finite-difference first-order estimate on a tiny float64 model,
written here: central differences ``(M(a + eps d) - M(a - eps d)) / (2 eps)`` along
``d = a_clean - a_corrupted`` at each cell (Richardson-extrapolated over eps and 2 eps), through
plain ``lens.run_with_hooks`` passes with ``lensnb.patch``; for AtP*'s
recomputed KV-group softmax, along ``z' - z`` where ``z'`` is the heads' output from an exact pass
with the group's clean keys and values. ``refine=k``: the exact sweep's values."""

from __future__ import annotations

import pytest
import torch

import lensnb

EPS = 0.02
# Noise floor: the weights are float64 but the softmax and RoPE run in float32 inside
# transformers/TransformerLens, so the metric carries ~1e-8 of round-off and plain differences
# at small eps are noisy (1e-3 at eps = 1e-5), while large eps meet the curvature (1e-4 at
# eps = 0.1 along a residual-stream difference). Richardson-extrapolated central differences at
# eps = 0.02 match the analytic gradient to 1e-6..3e-6 here (scores normalised by ~0.6).
TOL = 1e-5
POSITIONS = [2, 6, 8]


@pytest.fixture(scope="module")
def tiny(make_tiny_model):
    """A tiny random GQA Llama in float64 and a prompt pair (three tokens changed), with the
    answer and wrong tokens whose logit difference the change moves most: ``(lens, clean
    [1, 9], corrupted [1, 9], answer, wrong)``."""
    lens = lensnb.load(make_tiny_model("llama", seed=3), dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(5, 500, (1, 9), generator=gen)
    corrupted = clean.clone()
    corrupted[0, [2, 5, 6]] = torch.randint(5, 500, (3,), generator=gen)
    with torch.no_grad():
        moved = lens(clean)[0, -1] - lens(corrupted)[0, -1]
    return lens, clean, corrupted, int(moved.argmax()), int(moved.argmin())


def _diff(lens, tokens, answer, wrong, hooks=()):
    logits = lens.run_with_hooks(tokens, fwd_hooks=list(hooks))
    return float(logits[0, -1, answer] - logits[0, -1, wrong])


def _fd(lens, corrupted, answer, wrong, patch_of):
    """The metric's derivative along the direction ``patch_of(eps)`` shifts: central
    differences at eps and 2 eps, Richardson-extrapolated (error O(eps^4))."""

    def central(eps):
        up = _diff(lens, corrupted, answer, wrong, patch_of(eps))
        down = _diff(lens, corrupted, answer, wrong, patch_of(-eps))
        return (up - down) / (2 * eps)

    return (4 * central(EPS) - central(2 * EPS)) / 3


def _span(lens, clean, corrupted, answer, wrong):
    return _diff(lens, clean, answer, wrong) - _diff(lens, corrupted, answer, wrong)


def _acts(lens, tokens, names):
    _, cache = lens.run_with_cache(tokens, names=names)
    return {n: cache[n][0] for n in names}


def _shift(layer, hook, delta, **where):
    """A patch adding ``eps * delta`` (the activation's slice at ``where``)."""
    return lambda eps: [lensnb.patch(layer, hook, value=lambda old: old + eps * delta, **where)]


@pytest.mark.parametrize("site", ["resid_pre", "attn_out", "mlp_out"])
def test_position_sites_equal_finite_differences(tiny, site):
    lens, clean, corrupted, answer, wrong = tiny
    res = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site=site, method="attribution", progress=False)
    names = [f"blocks.{la}.hook_{site}" for la in range(lens.n_layers)]
    c, r = _acts(lens, clean, names), _acts(lens, corrupted, names)
    span = _span(lens, clean, corrupted, answer, wrong)
    truth = torch.tensor([[_fd(lens, corrupted, answer, wrong,
                               _shift(la, f"hook_{site}", (c[n] - r[n])[p], position=p)) / span
                           for p in range(clean.shape[1])] for la, n in enumerate(names)],
                         dtype=torch.float64)
    assert res.scores.shape == truth.shape
    assert torch.allclose(res.scores.double(), truth, atol=TOL), (res.scores.double() - truth)
    assert truth.abs().max() > 0.05


def test_resid_mid_equals_finite_differences(tiny):
    """``resid_mid = resid_pre + attn_out`` on a Llama block, so shifting the attention output
    shifts the residual stream between attention and MLP (both the MLP's input and the skip)."""
    lens, clean, corrupted, answer, wrong = tiny
    res = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site="resid_mid", method="attribution", progress=False)
    names = [f"blocks.{la}.hook_resid_mid" for la in range(lens.n_layers)]
    c, r = _acts(lens, clean, names), _acts(lens, corrupted, names)
    span = _span(lens, clean, corrupted, answer, wrong)
    truth = torch.tensor([[_fd(lens, corrupted, answer, wrong,
                               _shift(la, "hook_attn_out", (c[n] - r[n])[p], position=p)) / span
                           for p in range(clean.shape[1])] for la, n in enumerate(names)],
                         dtype=torch.float64)
    assert torch.allclose(res.scores.double(), truth, atol=TOL)


@pytest.mark.parametrize("site", ["head", "head_by_pos"])
def test_head_sites_equal_finite_differences(tiny, site):
    lens, clean, corrupted, answer, wrong = tiny
    res = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site=site, method="attribution", progress=False)
    names = [f"blocks.{la}.attn.hook_z" for la in range(lens.n_layers)]
    c, r = _acts(lens, clean, names), _acts(lens, corrupted, names)
    span = _span(lens, clean, corrupted, answer, wrong)
    truth = torch.zeros(res.scores.shape, dtype=torch.float64)
    for la, n in enumerate(names):
        for h in range(lens.n_heads):
            delta = (c[n] - r[n])[:, h]  # [pos, d_head]
            if site == "head":
                truth[la, h] = _fd(lens, corrupted, answer, wrong, _shift(
                    la, "attn.hook_z", delta, head=h, every_position=True)) / span
            else:
                for p in POSITIONS:  # the changed tokens and the metric's position
                    truth[la, p, h] = _fd(lens, corrupted, answer, wrong, _shift(
                        la, "attn.hook_z", delta[p], head=h, position=p)) / span
    scores = res.scores if site == "head" else res.scores[:, POSITIONS]
    truth = truth if site == "head" else truth[:, POSITIONS]
    assert torch.allclose(scores.double(), truth, atol=TOL)


def test_kv_group_plain_equals_finite_differences(tiny):
    lens, clean, corrupted, answer, wrong = tiny
    res = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site="kv_group", method="attribution", qk_fix=False,
                                     progress=False)
    names = [f"blocks.{la}.attn.hook_{x}" for la in range(lens.n_layers) for x in "kv"]
    c, r = _acts(lens, clean, names), _acts(lens, corrupted, names)
    span = _span(lens, clean, corrupted, answer, wrong)
    truth = torch.zeros(res.scores.shape, dtype=torch.float64)
    for la in range(lens.n_layers):
        for g in range(lens.n_key_value_heads):
            def both(eps, la=la, g=g):
                return [lensnb.patch(la, f"attn.hook_{x}", kv_group=g, every_position=True,
                                     value=lambda old, x=x: old + eps * (
                                         c[f"blocks.{la}.attn.hook_{x}"]
                                         - r[f"blocks.{la}.attn.hook_{x}"])[:, g])
                        for x in "kv"]
            truth[la, g] = _fd(lens, corrupted, answer, wrong, both) / span
    assert torch.allclose(res.scores.double(), truth, atol=TOL)


def test_kv_group_recomputes_the_softmax(tiny):
    """AtP*'s QK fix: the group's heads' output is recomputed exactly with the clean keys and
    values (here by an exact patched pass), and only what follows is linear."""
    lens, clean, corrupted, answer, wrong = tiny
    res = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site="kv_group", method="attribution", progress=False)
    span = _span(lens, clean, corrupted, answer, wrong)
    truth = torch.zeros(res.scores.shape, dtype=torch.float64)
    for la in range(lens.n_layers):
        z = f"blocks.{la}.attn.hook_z"
        kv = _acts(lens, clean, [f"blocks.{la}.attn.hook_{x}" for x in "kv"])
        z_corr = _acts(lens, corrupted, [z])[z]
        for g in range(lens.n_key_value_heads):
            patches = [lensnb.patch(la, f"attn.hook_{x}", kv_group=g, every_position=True,
                                    value=kv[f"blocks.{la}.attn.hook_{x}"][:, g]) for x in "kv"]
            _, cache = lens.run_with_cache(corrupted, names=[z], hooks=patches)
            heads = lens.heads_of_kv(g)
            delta = torch.zeros_like(z_corr)
            delta[:, heads] = (cache[z][0] - z_corr)[:, heads]
            truth[la, g] = _fd(lens, corrupted, answer, wrong,
                               _shift(la, "attn.hook_z", delta, every_position=True)) / span
    assert torch.allclose(res.scores.double(), truth, atol=TOL)
    plain = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                       site="kv_group", method="attribution", qk_fix=False,
                                       progress=False)
    assert not torch.allclose(plain.scores, res.scores, atol=1e-3)  # the fix changes them


def test_refine_runs_the_largest_exactly(tiny):
    lens, clean, corrupted, answer, wrong = tiny
    est = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site="head", method="attribution", refine=3,
                                     progress=False)
    exact = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                       site="head", progress=False)
    assert est.method == "attribution" and len(est.exact) == 3
    assert list(est.exact) == [cell for cell, _ in est.top(3)]
    for (layer, head), value in est.exact.items():
        assert value == pytest.approx(float(exact.scores[layer, head]), abs=1e-6)
    frame = est.to_frame()
    assert frame["exact"].notna().sum() == 3
