"""The one index rule (``lensnb.core.indices``): an int, not a bool, in ``0..n-1``; layers and
positions may also count from the end (``-n..-1``), heads and KV groups may not.

Unit tier for the rule itself; integration tier (the demo model: 4 layers, 8 heads, 2 KV heads)
for the places that must follow it, each compared with the rule's own answer and message."""

from __future__ import annotations

import pytest
import torch

import lensnb
from lensnb.analysis.patterns import KeptQK
from lensnb.core.indices import check_index, check_layer, check_position
from lensnb.core.kv_groups import KVGroups


# ------------------------------------------------------------------ the rule
@pytest.mark.parametrize("n", [1, 4, 7])
def test_every_valid_index_and_nothing_else(n):
    for i in range(-2 * n, 2 * n):
        if 0 <= i < n:
            assert check_index(i, n, "thing") == i
        else:
            with pytest.raises(IndexError, match=rf"thing {i} is out of range: valid things are "
                                                 rf"0\.\.{n - 1}$"):
                check_index(i, n, "thing")
        if -n <= i < n:
            assert check_index(i, n, "thing", from_end=True) == i % n  # as Python counts
        else:
            with pytest.raises(IndexError, match=rf"or -{n}\.\.-1 from the end"):
                check_index(i, n, "thing", from_end=True)


@pytest.mark.parametrize("bad", [True, False, 1.0, "1", None, torch.tensor(1)])
def test_only_ints(bad):
    with pytest.raises(TypeError, match="a layer index is an int"):
        check_index(bad, 4, "layer")


def test_messages_name_what_holds_the_items_and_why():
    with pytest.raises(IndexError) as err:
        check_layer(5, 4)
    assert str(err.value) == ("layer 5 is out of range: valid layers are 0..3, or -4..-1 from the "
                              "end (this model has 4 layers (0..3))")
    with pytest.raises(IndexError, match=r"position -7 is out of range: valid positions are "
                                         r"0\.\.5, or -6\.\.-1 from the end \(the text has 6"):
        check_position(-7, 6)
    with pytest.raises(IndexError, match="valid things are none"):
        check_index(0, 0, "thing")
    with pytest.raises(IndexError, match="; because 3 so far$"):
        check_index(3, 3, "thing", why="because 3 so far")


def test_counting_back_a_different_number_keeps_the_sign():
    """A generation's positions: ``-prompt..-1`` from the prompt's end, ``0..prompt+new-1``."""
    for p in (-3, -1, 0, 7):
        assert check_index(p, 8, "position", from_end=True, n_back=3) == p
    for p in (-4, 8):
        with pytest.raises(IndexError, match=r"0\.\.7, or -3\.\.-1 from the end"):
            check_index(p, 8, "position", from_end=True, n_back=3)


@pytest.mark.parametrize("n_heads,n_kv", [(8, 2), (4, 4), (6, 1)])
def test_heads_and_kv_groups_do_not_count_from_the_end(n_heads, n_kv):
    g = KVGroups(n_heads, n_kv)
    assert [g.check_head(h) for h in range(n_heads)] == list(range(n_heads))
    for bad in (-1, n_heads):
        with pytest.raises(IndexError, match=rf"valid heads are 0\.\.{n_heads - 1}$"):
            g.check_head(bad)
    with pytest.raises(IndexError, match=rf"KV group -1 is out of range: valid KV groups are "
                                         rf"0\.\.{n_kv - 1}$"):
        g.heads_of_kv(-1)
    with pytest.raises(IndexError, match="query head -1"):
        g.kv_head_of(-1)


# ------------------------------------------------------------------ every place follows it
def _message(fn):
    with pytest.raises(IndexError) as err:
        fn()
    return str(err.value)


def test_layers_count_from_the_end_everywhere(demo_lens):
    lens = demo_lens
    rule = _message(lambda: check_layer(4, 4))
    for where in (lambda: lens.hook_name("hook_resid_post", 4),
                  lambda: lensnb.patch(4, "hook_resid_post", position=0, value=0.0).resolve(lens),
                  lambda: lens.require_self_attention(4, "this"),
                  lambda: KeptQK.from_lens(lens, "x = 1", [4]),
                  lambda: lens.kv_group_view("x = 1", 4)):
        assert _message(where) == rule
    assert lens.hook_name("hook_resid_post", -1) == "blocks.3.hook_resid_post"
    assert KeptQK.from_lens(lens, "x = 1", [-1, 0]).layers == [3, 0]  # in the order asked
    assert lens.require_self_attention(-4, "this") == 0


def test_heads_kv_groups_and_positions_everywhere(demo_lens):
    lens = demo_lens
    kept = KeptQK.from_lens(lens, "x = 1", [0])
    n = kept.n_pos
    assert _message(lambda: kept.pattern(0, 8)) == _message(lambda: lens.kv_groups.check_head(8))
    assert "query head -1 is out of range" in _message(lambda: kept.pattern(0, -1))
    assert torch.equal(kept.row(0, 2, -1), kept.row(0, 2, n - 1))  # positions: from the end
    assert "query position" in _message(lambda: kept.row(0, 2, n))
    assert _message(lambda: lens.patch_kv_input(0, 2, torch.zeros_like)) == _message(
        lambda: lens.kv_groups.check_kv_head(2))
    assert "position 99 is out of range" in _message(
        lambda: lens.logit_attribution("x = 1", 5, pos=99))
