"""GenerationStepper's Python side: its state after Step/Run/patches, the replies its frontend
decodes, and its static figure. Truths: ``lens.generate`` (itself checked against Hugging Face
in tests/backend) and plain forwards through the bridge's hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lensnb
from lensnb.widgets.generation_stepper import GenerationStepper

PROMPT = "def add(a, b):\n    return"


@pytest.fixture(scope="module")
def lens(make_tiny_model):
    return lensnb.load(make_tiny_model("llama", seed=3, num_attention_heads=8,
                                       num_key_value_heads=2))


def _buffer(meta, buf):
    return np.frombuffer(buf, dtype=meta["dtype"]).reshape(meta["shape"])


def test_step_and_run_follow_generate(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=6, top_k=4)
    want = lens.generate(PROMPT, 6)
    s = w.step()
    assert s.token == int(want.new_tokens[0, 0])
    assert w.generated == [s.text] and w.text == PROMPT + s.text
    assert len(w.steps) == 1 and not w.done
    w.run()
    assert w.done and w.stop_reason == "max_new_tokens" and w.step() is None
    assert [t.token for t in w.steps] == want.new_tokens[0].tolist()
    assert w.text == PROMPT + "".join(lens.tokenizer.decode([t]) for t in want.new_tokens[0])
    assert torch.equal(w.tokens, want.tokens)
    w.reset()
    assert w.steps == [] and w.generated == [] and not w.done


def test_patch_reruns_from_prompt(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=5)
    w.run(2)
    torch.manual_seed(0)
    v = torch.randn(lens.facts.d_model) * 5
    w.add_patch(0, "hook_resid_post", position=3, value=v)
    assert w.steps == [] and len(w.patches) == 1 and w.patches[0]["position"] == 3
    w.run()
    want = lens.generate(PROMPT, 5, hooks=[lensnb.patch(0, "hook_resid_post", position=3,
                                                        value=v)], return_logits=True)
    assert [s.token for s in w.steps] == want.new_tokens[0].tolist()
    w.add_patch(0, "hook_mlp_out", position=-1, value="scale", scale=0.0)
    assert len(w.patches) == 2 and w.patches[1]["value"] == "×0"
    w.clear_patches()
    w.run()
    assert [s.token for s in w.steps] == lens.generate(PROMPT, 5).new_tokens[0].tolist()


def test_replies_decode_to_the_steps(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=4, top_k=3)
    reply, bufs = w.answer({"kind": "step"})
    s = w.steps[0]
    assert reply["step"]["token"] == s.text and reply["step"]["top_texts"] == s.top_texts[0]
    np.testing.assert_allclose(_buffer(reply["step"]["top"], bufs[0]), s.top_probs[0].numpy())
    np.testing.assert_allclose(_buffer(reply["step"]["lens"], bufs[1]),
                               s.logit_lens.chosen_probs[0].numpy())
    w.answer({"kind": "step"})
    state, bufs = w.answer({"kind": "state"})
    assert [j["token"] for j in state["steps"]] == [t.text for t in w.steps]
    lo, hi = state["steps"][1]["buffers"]
    np.testing.assert_allclose(_buffer(state["steps"][1]["top"], bufs[lo]),
                               w.steps[1].top_probs[0].numpy())
    assert hi - lo == 2
    state, _ = w.answer({"kind": "add_patch", "layer": 1, "hook": "hook_resid_post",
                         "position": 1, "value": "zero"})
    assert state["steps"] == [] and w.patches[0]["name"] == "blocks.1.hook_resid_post"
    with pytest.raises(ValueError, match="unknown request"):
        w.answer({"kind": "nope"})


def test_attention_of_the_new_token(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=4)
    w.run(2)
    att = w.attention(1)
    # the second new token was predicted from the sequence prompt + first new token
    _, cache = lens.run_with_cache(w.tokens[:, :-1], names=["blocks.1.attn.hook_pattern"])
    torch.testing.assert_close(att, cache["blocks.1.attn.hook_pattern"][0, :, -1])
    reply, bufs = w.answer({"kind": "attention", "layer": 1})
    assert reply["meta"]["shape"] == [lens.n_heads, w.tokens.shape[1] - 1]
    assert len(reply["tokens"]) == w.tokens.shape[1] - 1
    explorer = w.attention_explorer()
    assert type(explorer).__name__ == "AttentionExplorer" and explorer.tokens[-1] == w.generated[-1]


def test_figure_has_logit_lens_and_top_k(lens):
    w = GenerationStepper(lens, PROMPT, max_new_tokens=3, top_k=4)
    w.run()
    fig = w.figure()
    heat, bars = fig.data
    z = np.asarray(heat.z)
    assert z.shape == (lens.n_layers, 3)
    np.testing.assert_allclose(z[:, -1], w.steps[-1].logit_lens.chosen_probs[0].numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(list(bars.x)[::-1], w.steps[-1].top_probs[0].numpy(), rtol=1e-6)


def test_bad_input(lens):
    with pytest.raises(ValueError, match="prompt"):
        GenerationStepper(lens, "")
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationStepper(lens, PROMPT, max_new_tokens=0)
    w = GenerationStepper(lens, PROMPT, max_new_tokens=3)
    with pytest.raises(ValueError, match="'zero', 'scale', 'source'"):
        w.add_patch(0, value="nonsense")
    with pytest.raises(IndexError, match="outside the sequence"):
        w.add_patch(0, position=50)
    with pytest.raises(KeyError, match="Did you mean"):
        w.add_patch(0, "hook_resid_pots")
    assert w.patches == []
