"""``PatchingResult`` figures and tables: the theme's diverging scale centred at 0 with a
symmetric range, labels from the model's own numbers, token text kept literal (escaped, never
markup); a hand-built result is the truth, so every expected value is written here."""

from __future__ import annotations

import pytest
import torch

import lensnb
from lensnb.core import theme
from lensnb.core.kv_groups import KVGroups
from lensnb.patching.results import PatchingResult

TOKENS = ["<b>", " x", "\n", " y"]


def _result(site, scores, dims, *, layers=(3, 5), positions=(1, 3)):
    return PatchingResult(
        scores=scores, dims=dims, site=site, method="exact", layers=list(layers),
        positions=None if positions is None else list(positions), str_tokens=TOKENS,
        corrupted_str_tokens=TOKENS, clean_value=2.0, corrupted_value=-1.0, answer=7, wrong=8,
        kv_groups=KVGroups(4, 2))


def test_position_site_figure_and_table():
    res = _result("resid_pre", torch.tensor([[0.5, -0.25], [0.0, 1.0]]), ("layer", "position"))
    fig = res.figure()
    heat = fig.data[0]
    assert heat.zmid == 0 and heat.zmin == -1.0 and heat.zmax == 1.0
    assert [list(c) for c in heat.colorscale] == theme.colorscale(theme.DIVERGING_MAP)
    assert list(fig.layout.xaxis.ticktext) == [" x", " y"]
    assert list(fig.layout.yaxis.ticktext) == ["3", "5"]
    assert heat.customdata[1][0] == [5, 1, " x"]  # layer, position, token of scores[1, 0]
    frame = res.to_frame()
    assert frame.to_dict("records")[1] == dict(layer=3, position=3, token=" y", score=-0.25)
    assert res.top(2) == [((5, 3), 1.0), ((3, 1), 0.5)]
    styled = res.figure(style="paper", labels={"layer": "block"}, title="T")
    assert styled.layout.yaxis.title.text == "block" and styled.layout.title.text == "T"


def test_token_text_stays_literal():
    res = _result("resid_pre", torch.ones(2, 2), ("layer", "position"), positions=(0, 2))
    ticks = list(res.figure().layout.xaxis.ticktext)
    assert ticks == ["&lt;b&gt;", "\\n"]


def test_head_and_kv_group_figures():
    head = _result("head", torch.arange(8.0).reshape(2, 4) - 3, ("layer", "head"),
                   positions=None)
    fig = head.figure()
    assert fig.data[0].zmin == -4.0 and fig.data[0].zmax == 4.0
    assert [s.x0 for s in fig.layout.shapes] == [1.5]  # one line between the two KV groups
    assert head.to_frame()["kv_group"].tolist() == [0, 0, 1, 1] * 2
    kv = _result("kv_group", torch.tensor([[0.1, 0.2], [0.3, -0.4]]), ("layer", "kv_group"),
                 positions=None)
    assert list(kv.figure().layout.xaxis.ticktext) == ["0 (H0-1)", "1 (H2-3)"]
    assert kv.to_frame()["heads"].tolist() == [(0, 1), (2, 3)] * 2


def test_head_by_pos_figure_rows():
    scores = torch.arange(16.0).reshape(2, 2, 4)  # [layer, position, head]
    res = _result("head_by_pos", scores, ("layer", "position", "head"))
    fig = res.figure()
    assert list(fig.layout.yaxis.ticktext) == [f"L{la}H{h}" for la in (3, 5) for h in range(4)]
    z = fig.data[0].z
    assert z[4 + 2][1] == float(scores[1, 1, 2])  # row L5H2, second position
    assert res.top(1) == [((5, 3, 3), 15.0)]


def test_repr_is_cheap_and_informative():
    res = _result("resid_pre", torch.tensor([[0.5, -0.25], [0.0, 1.0]]), ("layer", "position"))
    assert "top: (5, 3) +1.000" in repr(res)


def test_sites_vocabulary():
    from lensnb.patching.sites import SITES

    assert list(SITES) == ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out",
                           "head", "head_by_pos", "kv_group"]
    with pytest.raises(lensnb.InputError, match="unknown site 'z'"):
        from lensnb.patching.sites import get_site

        get_site("z")
