"""Position-aware hooks, ``lensnb.patch`` and ``lensnb.patchscope``.

Unit tier for ``HookContext``/``Patch`` (hand-built contexts); integration tier for patchscopes,
checked against a hand-built equivalent on plain Hugging Face models: the source hidden state
read from ``output_hidden_states``, injected by a torch forward hook into an uncached forward
recomputed every step."""

from __future__ import annotations

import pytest
import torch
from layouts import DEMO_DIR
from transformers import AutoModelForCausalLM

import lensnb
from lensnb.interventions.patchscope import IDENTITY_PROMPT, HookContext, Patch

SOURCE = "def read_file(path):\n    with open(path) as f:"


def _ctx(positions, prompt_lengths, step=0):
    pos = torch.tensor(positions)
    return HookContext(name="blocks.0.hook_resid_post", layer=0, step=step, positions=pos,
                       key_positions=pos, prompt_lengths=torch.tensor(prompt_lengths))


def test_context_positions_with_left_padding():
    # row 0: 2 pads then a 4-token prompt; row 1: a 6-token prompt
    ctx = _ctx([[-1, -1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]], [4, 6])
    assert ctx.where(1).nonzero().tolist() == [[0, 3], [1, 1]]
    assert ctx.where(-1).nonzero().tolist() == [[0, 5], [1, 5]]  # last prompt token per row
    assert ctx.where(-5).nonzero().tolist() == [[1, 1]]  # row 0 has no 5th-from-last
    step = _ctx([[4], [6]], [4, 6], step=1)
    assert step.generated().tolist() == [[True], [True]]


def test_patch_writes_only_its_positions_per_row():
    ctx = _ctx([[-1, 0, 1, 2], [0, 1, 2, 3]], [3, 4])
    act = torch.arange(2 * 4 * 3, dtype=torch.float).reshape(2, 4, 3)
    p = lensnb.patch(0, "hook_resid_post", position=2, value=torch.tensor([[7.0, 7, 7],
                                                                           [9.0, 9, 9]]))
    out = p(act, ctx)
    want = act.clone()
    want[0, 3] = 7.0  # row 0's position 2 sits at index 3 (one pad)
    want[1, 2] = 9.0
    assert torch.equal(out, want)
    assert torch.equal(act, torch.arange(24, dtype=torch.float).reshape(2, 4, 3))  # not in place
    scaled = Patch(layer=0, hook="hook_resid_post", value=lambda old: old * 0, position=[0, 1])
    out = scaled(act, ctx)
    assert out[0, 1:3].abs().sum() == 0 and out[1, :2].abs().sum() == 0
    assert torch.equal(out[0, 3], act[0, 3]) and torch.equal(out[1, 2:], act[1, 2:])
    # an attention map [batch, heads, q, k]: positions are on axis 2
    attn = torch.rand(2, 2, 4, 4)
    actx = _ctx([[-1, 0, 1, 2], [0, 1, 2, 3]], [3, 4])
    actx.pos_axis = 2
    out = lensnb.patch(0, "attn.hook_pattern", position=0, value=0.0)(attn, actx)
    assert out[0, :, 1].abs().sum() == 0 and out[1, :, 0].abs().sum() == 0
    assert torch.equal(out[0, :, 2:], attn[0, :, 2:])


def _hand_patchscope(src_model, tgt_model, src_ids, src_layer, src_pos, tgt_ids, tgt_layer,
                     tgt_pos, n, mapping=lambda h: h):
    """Patchscope on plain HF models: read block ``src_layer``'s output, overwrite block
    ``tgt_layer``'s output at ``tgt_pos`` on every uncached forward, greedy decode."""
    with torch.no_grad():
        h = src_model(src_ids, output_hidden_states=True).hidden_states[src_layer + 1][0, src_pos]
        h = mapping(h)

        def hook(_m, _args, out):
            t = out[0] if isinstance(out, tuple) else out
            t = t.clone()
            t[:, tgt_pos] = h
            return (t, *out[1:]) if isinstance(out, tuple) else t

        handle = tgt_model.model.layers[tgt_layer].register_forward_hook(hook)
        try:
            ids = tgt_ids
            for _ in range(n):
                nxt = tgt_model(ids).logits[:, -1].argmax(-1, keepdim=True)
                ids = torch.cat([ids, nxt], 1)
        finally:
            handle.remove()
    return ids[:, tgt_ids.shape[1]:]


def test_patchscope_equals_hand_built(demo_lens):
    hf = AutoModelForCausalLM.from_pretrained(DEMO_DIR, attn_implementation="eager").eval()
    src = demo_lens.to_tokens(SOURCE)
    tgt = demo_lens.to_tokens(IDENTITY_PROMPT)
    out = lensnb.patchscope(demo_lens, SOURCE, 1, 5, IDENTITY_PROMPT, 0, -1, max_new_tokens=6)
    want = _hand_patchscope(hf, hf, src, 1, 5, tgt, 0, tgt.shape[1] - 1, 6)
    assert torch.equal(out.generation.new_tokens, want)
    assert out.text == demo_lens.tokenizer.decode(want[0], skip_special_tokens=True)
    assert out.source_name == "blocks.1.hook_resid_post"
    with torch.no_grad():
        h = hf(src, output_hidden_states=True).hidden_states[2][0, 5]
    torch.testing.assert_close(out.source_vector, h)


def test_cross_model_patchscope_with_matrix(demo_lens, make_tiny_model):
    path = make_tiny_model("llama", seed=4, num_attention_heads=4, num_key_value_heads=2)
    small = lensnb.load(path)  # d_model 64 -> the demo's 128
    hf_small = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    hf = AutoModelForCausalLM.from_pretrained(DEMO_DIR, attn_implementation="eager").eval()
    torch.manual_seed(0)
    matrix = torch.randn(small.facts.d_model, demo_lens.facts.d_model) * 0.5
    out = lensnb.patchscope(small, SOURCE, 0, 3, IDENTITY_PROMPT, 1, -1, max_new_tokens=5,
                            target_lens=demo_lens, mapping=matrix)
    want = _hand_patchscope(hf_small, hf, small.to_tokens(SOURCE), 0, 3,
                            demo_lens.to_tokens(IDENTITY_PROMPT), 1,
                            demo_lens.to_tokens(IDENTITY_PROMPT).shape[1] - 1, 5,
                            mapping=lambda h: h @ matrix)
    assert torch.equal(out.generation.new_tokens, want)
    fn = lensnb.patchscope(small, SOURCE, 0, 3, IDENTITY_PROMPT, 1, -1, max_new_tokens=5,
                           target_lens=demo_lens, mapping=lambda h: h @ matrix)
    assert torch.equal(fn.generation.new_tokens, want)
    with pytest.raises(ValueError, match="pass mapping"):
        lensnb.patchscope(small, SOURCE, 0, 3, target_lens=demo_lens)
    with pytest.raises(ValueError, match="mapping matrix must be"):
        lensnb.patchscope(small, SOURCE, 0, 3, target_lens=demo_lens, mapping=matrix.T)


def test_patchscope_bad_input(demo_lens):
    n = demo_lens.to_tokens(SOURCE).shape[1]
    with pytest.raises(IndexError, match="source_position .* outside the prompt"):
        lensnb.patchscope(demo_lens, SOURCE, 1, n, IDENTITY_PROMPT, 0, -1)
    with pytest.raises(IndexError, match="target_position .* outside the prompt"):
        lensnb.patchscope(demo_lens, SOURCE, 1, 0, "x", 0, 5)
    with pytest.raises(IndexError, match="layer 4 is out of range"):
        lensnb.patchscope(demo_lens, SOURCE, 4, 0)
    with pytest.raises(KeyError, match="Did you mean"):
        lensnb.patchscope(demo_lens, SOURCE, 1, 0, hook="hook_resid_psot")
