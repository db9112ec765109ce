"""The one hook signature ``fn(activation, ctx)`` and the rule that still accepts
TransformerLens-style ``fn(tensor, hook)`` (``hook_context.is_transformer_lens_hook``).

Unit tier for the rule; integration tier (a tiny random GQA Llama) for what each form receives
in ``run_with_hooks``, ``run_with_cache(hooks=)`` and ``generate`` on both paths."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from transformer_lens.hook_points import HookPoint

import lensnb
from lensnb.interventions.hook_context import HookContext, is_transformer_lens_hook

PROMPT = "def add(a, b):\n    return"


@pytest.fixture(scope="module")
def tiny(make_tiny_model):
    path = make_tiny_model("llama", seed=3, num_attention_heads=8, num_key_value_heads=2)
    return lensnb.load(path)


def tl_named(t, hook):
    return t


def tl_annotated(t: torch.Tensor, h: HookPoint) -> torch.Tensor:
    return t


def tl_kwargs(t, **kwargs):
    return t


def ctx_named(act, ctx):
    return act


def ctx_annotated(act: torch.Tensor, hook: HookContext) -> torch.Tensor:  # annotation wins
    return act


def ctx_string_annotation(act, c: "HookContext"):  # noqa: UP037 (a string annotation on purpose)
    return act


@pytest.mark.parametrize("fn,tl", [
    (tl_named, True), (tl_annotated, True), (tl_kwargs, True), (lambda t, hook: t, True),
    (functools.partial(lambda scale, t, hook: t * scale, 2.0), True),
    (ctx_named, False), (ctx_annotated, False), (ctx_string_annotation, False),
    (lambda a, c: a, False), (lambda a, _: a, False),
    (lensnb.patch(0, "hook_resid_post", position=0, value=0.0), False),
])
def test_the_rule(fn, tl):
    assert is_transformer_lens_hook(fn) is tl


def _positions(n, batch=1):
    return torch.arange(n).expand(batch, n)


def test_plain_forward_context(tiny):
    lens = tiny
    texts = ["import os", "def add(a, b):\n    return a +"]
    tokens = lens.to_tokens(texts)  # [2, n] (right-padded)
    batch, n = tokens.shape
    seen: dict[str, HookContext] = {}

    def record(act, ctx):
        seen[ctx.name] = ctx

    lens.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_post", record),
                                           ("blocks.0.attn.hook_pattern", record),
                                           ("hook_embed", record)])
    assert set(seen) == {"blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern", "hook_embed"}
    for ctx in seen.values():
        assert ctx.step is None and ctx.is_prompt and not ctx.cross_attention
        assert torch.equal(ctx.positions, _positions(n, batch))
        assert torch.equal(ctx.prompt_lengths, torch.full((batch,), n))
        assert not bool(ctx.generated().any())
    assert seen["blocks.1.hook_resid_post"].layer == 1 and seen["hook_embed"].layer is None
    pattern = seen["blocks.0.attn.hook_pattern"]
    assert pattern.pos_axis == 2 and torch.equal(pattern.key_positions, _positions(n, batch))
    assert seen["blocks.1.hook_resid_post"].pos_axis == 1


def test_both_forms_in_run_with_hooks_and_run_with_cache(tiny):
    lens = tiny
    got: list[Any] = []

    def tl(t, hook):
        got.append(hook)
        return t * 0.5

    def mine(act, ctx):
        got.append(ctx)
        return act * 0.5

    name = "blocks.0.hook_resid_post"
    a = lens.run_with_hooks(PROMPT, fwd_hooks=[(name, tl)])
    b = lens.run_with_hooks(PROMPT, fwd_hooks=[(name, mine)])
    c, cache = lens.run_with_cache(PROMPT, names=[name], hooks=[(name, mine)])
    _, clean = lens.run_with_cache(PROMPT, names=[name])
    assert isinstance(got[0], HookPoint) and got[0] is lens.bridge.hook_dict[name]
    assert isinstance(got[1], HookContext) and got[1].name == name and got[1].step is None
    assert torch.equal(a, b) and torch.equal(b, c)
    assert torch.equal(cache[name], clean[name] * 0.5)  # the cache holds the hooked value
    assert (a - lens(PROMPT)).abs().max() > 1e-3
    # globs and lists name several hooks at once, in run_with_hooks as in generate
    names: list[str] = []
    lens.run_with_hooks(PROMPT, fwd_hooks=[("blocks.*.hook_resid_post",
                                            lambda act, ctx: names.append(ctx.name))])
    assert names == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


@pytest.mark.parametrize("path", ["fast", "bridge"])
def test_both_forms_in_generate(tiny, path):
    lens = tiny
    name = "blocks.1.hook_resid_post"
    points: list[Any] = []
    steps: list[int | None] = []

    def tl(t, hook):
        points.append(hook)

    def mine(act, ctx):
        steps.append(ctx.step)

    out = lens.generate(PROMPT, 4, hooks=[(name, tl), (name, mine)], path=path)
    assert out.path == path
    assert steps == [0, 1, 2, 3]
    assert len(points) == 4 and all(p is lens.bridge.hook_dict[name] for p in points)


def test_a_hook_context_at_each_step_equals_the_hand_built_one(tiny):
    """Generation contexts: prompt pass positions 0..n-1, then one position per step."""
    lens = tiny
    n = lens.to_tokens(PROMPT).shape[1]
    seen: list[HookContext] = []
    lens.generate(PROMPT, 3, hooks=[("blocks.0.hook_resid_pre",
                                     lambda act, ctx: seen.append(ctx))])
    assert [c.step for c in seen] == [0, 1, 2]
    assert [c.is_prompt for c in seen] == [True, False, False]
    assert torch.equal(seen[0].positions, _positions(n))
    assert [c.positions.tolist() for c in seen[1:]] == [[[n]], [[n + 1]]]
