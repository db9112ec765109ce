"""Ablation as ``lensnb.Patch`` objects. Truth: ``lens.run_with_hooks`` with the same heads and
KV groups zeroed (or set to their mean over a reference text) by hand, in TransformerLens-style
hooks written here."""

from __future__ import annotations

import pytest
import torch

import lensnb

TEXT = "def add(x, y):\n    return x +"
REFERENCE = ["def f(a):\n    return a", "for i in range(3):\n    print(i)"]


def _by_hand(lens, heads, groups, values=None):
    """``fwd_hooks`` writing ``values[(hook, layer, index)]`` (default 0) into the heads'
    ``hook_z`` and the groups' ``hook_k``/``hook_v``."""
    values = values or {}
    hooks = []
    for la, h in heads:
        def z(t, hook, h=h, la=la):
            t = t.clone()
            t[:, :, h] = values.get(("z", la, h), 0.0)
            return t
        hooks.append((f"blocks.{la}.attn.hook_z", z))
    for la, g in groups:
        for x in "kv":
            def kv(t, hook, g=g, la=la, x=x):
                t = t.clone()
                t[:, :, g] = values.get((x, la, g), 0.0)
                return t
            hooks.append((f"blocks.{la}.attn.hook_{x}", kv))
    return hooks


def test_zero_ablation_equals_hooks_by_hand(demo_lens):
    lens = demo_lens
    heads, groups = [(2, 2), (2, 0)], [(0, 1)]
    patches = lensnb.ablation(lens, heads=heads, kv_groups=groups)
    assert all(isinstance(p, lensnb.Patch) for p in patches) and len(patches) == 4
    got = lens.run_with_hooks(TEXT, fwd_hooks=patches)
    truth = lens.run_with_hooks(TEXT, fwd_hooks=_by_hand(lens, heads, groups))
    assert torch.allclose(got, truth, atol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(got, lens(TEXT), atol=1e-2)  # the ablation does something
    # the same patches in generation: the first new token is the ablated forward's argmax
    out = lens.generate(TEXT, 1, hooks=patches)
    assert out.tokens[0, -1] == truth[0, -1].argmax()


def test_mean_ablation_equals_hooks_by_hand(demo_lens):
    lens = demo_lens
    names = ["blocks.1.attn.hook_z", "blocks.3.attn.hook_k", "blocks.3.attn.hook_v"]
    rows = {n: [] for n in names}
    for text in REFERENCE:
        _, cache = lens.run_with_cache(text, names=names)
        for n in names:
            rows[n].append(cache[n][0])
    mean = {n: torch.cat(rows[n]).mean(0) for n in names}  # [heads, d_head]
    values = {("z", 1, 5): mean[names[0]][5], ("k", 3, 0): mean[names[1]][0],
              ("v", 3, 0): mean[names[2]][0]}
    patches = lensnb.ablation(lens, heads=[(1, 5)], kv_groups=[(3, 0)], how="mean",
                              reference=REFERENCE)
    got = lens.run_with_hooks(TEXT, fwd_hooks=patches)
    truth = lens.run_with_hooks(TEXT, fwd_hooks=_by_hand(lens, [(1, 5)], [(3, 0)], values))
    assert torch.allclose(got, truth, atol=1e-5)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(), lensnb.InputError, "nothing to ablate"),
    (dict(heads=[(0, 8)]), lensnb.IndexRangeError, "query head 8"),
    (dict(kv_groups=[(0, 2)]), lensnb.IndexRangeError, "KV group 2"),
    (dict(heads=[(0, 1)], how="mean"), lensnb.InputError, "reference="),
    (dict(heads=[(0, 1)], how="drop"), lensnb.InputError, "how must be"),
    (dict(heads=[3]), lensnb.InputTypeError, r"\(layer, index\) pairs"),
])
def test_bad_ablations(demo_lens, kwargs, error, match):
    with pytest.raises(error, match=match):
        lensnb.ablation(demo_lens, **kwargs)
