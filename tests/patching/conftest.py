"""Fixtures of the patching tests: the demo model's prompt pair (the answer is the function's
second argument, renamed in the corrupted prompt) and a check that no hook is left behind."""

from __future__ import annotations

import pytest
import torch

CLEAN = "def add(x, y):\n    return x +"
CORRUPTED = "def add(x, z):\n    return x +"
ANSWER, WRONG = " y", " z"


@pytest.fixture(scope="session")
def pair(demo_lens):
    """``(lens, clean, corrupted, answer_id, wrong_id)`` on the demo model: clean logit
    difference +4.3, corrupted -0.7."""
    tok = demo_lens.tokenizer
    answer = tok.encode(ANSWER, add_special_tokens=False)[0]
    wrong = tok.encode(WRONG, add_special_tokens=False)[0]
    return demo_lens, CLEAN, CORRUPTED, answer, wrong


def hooks_on(module: torch.nn.Module) -> set[tuple[str, int]]:
    """Every (module name, hook id) of a forward, forward-pre or backward hook under
    ``module`` (TransformerLens's HookPoints and the Hugging Face modules alike)."""
    return {(name, key) for name, m in module.named_modules()
            for hooks in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks)
            for key in hooks}


@pytest.fixture
def no_hooks_left(pair):
    """``check(lens)``: asserts no HookPoint holds a hook and every other module holds the
    hooks it held before the test (transformers installs its own output-capturing hooks on
    the first forward pass, and keeps them)."""
    lens = pair[0]
    with torch.no_grad():
        lens(lens.to_tokens("x"))
    before = hooks_on(lens.bridge)

    def check(lens) -> None:
        points = [n for n, hp in lens.bridge.hook_dict.items()
                  if hp._forward_hooks or hp._backward_hooks or hp.fwd_hooks or hp.bwd_hooks]
        assert points == []
        assert hooks_on(lens.bridge) == before

    return check
@pytest.fixture(scope="session")
def tl_metric():
    """``make(lens, clean, corrupted, answer, wrong)``: TransformerLens's convention, written
    here on the bridge's own logits: the logit difference at the last position, normalised so
    the corrupted run is 0 and the clean run 1."""

    def make(lens, clean, corrupted, answer, wrong):
        def diff(logits):
            return logits[:, -1, answer] - logits[:, -1, wrong]

        with torch.no_grad():
            c = float(diff(lens.bridge(lens.to_tokens(clean)))[0])
            r = float(diff(lens.bridge(lens.to_tokens(corrupted)))[0])
        return lambda logits: (diff(logits)[0] - r) / (c - r)

    return make
