"""One ``Patch`` everywhere: ``run_with_hooks``, ``run_with_cache(hooks=)``, ``generate``/``steps``
and the split-QKV inputs (``head=``/``kv_group=``).

Integration tier on a tiny random GQA Llama (8 query heads, 2 KV heads). Truths: hand-written
TransformerLens hooks ``fn(tensor, hook)`` (which ``run_with_hooks`` hands to the bridge as they
are, in the same attention mode), and full-sequence forwards recomputed every step without a
cache."""

from __future__ import annotations

import pytest
import torch
from mllama_fixtures import mllama_dir, vision_lens  # noqa: F401  (fixtures)

import lensnb
from lensnb import UnsupportedFeatureError

PROMPT = "def add(a, b):\n    return"
ATOL = 1e-4  # cached vs uncached float32 on this model: measured 2.4e-7 (3.0e-7 split QKV)


@pytest.fixture(scope="module")
def tiny(make_tiny_model):
    path = make_tiny_model("llama", seed=3, num_attention_heads=8, num_key_value_heads=2)
    return lensnb.load(path)


def _bridge_logits(lens, tokens, name, manual, split=False):
    """Logits ``[batch, pos, d_vocab]`` with a hand-written TL hook."""
    if split:
        with lens.split_qkv():
            return lens.run_with_hooks(tokens, fwd_hooks=[(name, manual)])
    return lens.run_with_hooks(tokens, fwd_hooks=[(name, manual)])


def _uncached_tokens(lens, prompt, n, name, manual, split=False):
    """Greedy tokens and logits recomputing the whole sequence every step with ``manual``."""
    toks = lens.to_tokens(prompt)
    logits = []
    for _ in range(n):
        lg = _bridge_logits(lens, toks, name, manual, split)[:, -1]
        logits.append(lg)
        toks = torch.cat([toks, lg.argmax(-1, keepdim=True)], dim=1)
    return toks, torch.stack(logits, 1)


# ------------------------------------------------------------------ the Done-when of #16
@pytest.mark.parametrize("path", ["fast", "bridge"])
def test_patch_has_the_same_effect_in_run_with_hooks_and_generate(tiny, path):
    lens = tiny
    torch.manual_seed(0)
    v = torch.randn(lens.facts.d_model) * 3
    p = lensnb.patch(0, "hook_resid_post", position=3, value=v)
    tokens = lens.to_tokens(PROMPT)

    def manual(t, hook):
        t = t.clone()
        t[:, 3] = v
        return t

    want = _bridge_logits(lens, tokens, "blocks.0.hook_resid_post", manual)
    got = lens.run_with_hooks(PROMPT, fwd_hooks=[p])
    assert torch.equal(got, want)
    assert (got - lens(PROMPT)).abs().max() > 1e-3  # the patch matters

    gen = lens.generate(PROMPT, 6, hooks=[p], return_logits=True, path=path)
    assert gen.path == path
    toks, logits = _uncached_tokens(lens, PROMPT, 6, "blocks.0.hook_resid_post", manual)
    assert torch.equal(gen.tokens, toks)
    assert (gen.logits - logits).abs().max() < ATOL
    # and step by step, the same Patch object in run_with_hooks on the sequence so far
    n = tokens.shape[1]
    for k in range(6):
        again = lens.run_with_hooks(gen.tokens[:, :n + k], fwd_hooks=[p])[:, -1]
        assert (again - gen.logits[:, k]).abs().max() < ATOL


def test_patch_in_run_with_cache_is_what_the_cache_holds(tiny):
    lens = tiny
    v = torch.full((lens.facts.d_model,), 0.5)
    p = lensnb.patch(1, "hook_resid_mid", position=[1, -1], value=v)
    names = ["blocks.1.hook_resid_mid", "blocks.1.hook_resid_post"]
    logits, cache = lens.run_with_cache(PROMPT, names=names, hooks=[p])
    _, clean = lens.run_with_cache(PROMPT, names=names)
    n = lens.to_tokens(PROMPT).shape[1]
    mid = cache[names[0]][0]
    assert torch.equal(mid[1], v) and torch.equal(mid[n - 1], v)
    others = [i for i in range(n) if i not in (1, n - 1)]
    assert torch.equal(mid[others], clean[names[0]][0, others])
    assert not torch.equal(cache[names[1]], clean[names[1]])
    assert torch.equal(logits, lens.run_with_hooks(PROMPT, fwd_hooks=[p]))


def test_patch_of_one_head_of_hook_z_forward_and_generate(tiny):
    lens = tiny
    torch.manual_seed(1)
    vec = torch.randn(lens.facts.d_head) * 4
    p = lensnb.patch(1, "attn.hook_z", head=3, position=2, value=vec)

    def manual(t, hook):  # [batch, pos, n_heads, d_head]
        t = t.clone()
        t[:, 2, 3] = vec
        return t

    tokens = lens.to_tokens(PROMPT)
    assert torch.equal(lens.run_with_hooks(tokens, fwd_hooks=[p]),
                       _bridge_logits(lens, tokens, "blocks.1.attn.hook_z", manual))
    gen = lens.generate(PROMPT, 5, hooks=[p], return_logits=True)
    toks, logits = _uncached_tokens(lens, PROMPT, 5, "blocks.1.attn.hook_z", manual)
    assert torch.equal(gen.tokens, toks)
    assert (gen.logits - logits).abs().max() < ATOL


# ------------------------------------------------------------------ split QKV
def test_kv_group_patch_equals_the_context_manager_and_a_hand_written_hook(tiny):
    lens = tiny
    tokens = lens.to_tokens(PROMPT)
    p = lensnb.patch(1, "attn.hook_k_input", kv_group=1, every_position=True,
                     value=torch.zeros_like)

    def manual(t, hook):  # [batch, pos, n_kv, d_model]
        t = t.clone()
        t[:, :, 1] = 0
        return t

    want = _bridge_logits(lens, tokens, "blocks.1.attn.hook_k_input", manual, split=True)
    got = lens.run_with_hooks(tokens, fwd_hooks=[p])  # turns split QKV on for the call
    assert not lens.split_qkv_enabled
    assert torch.equal(got, want)
    with lens.patch_kv_input(1, 1, torch.zeros_like):
        assert torch.equal(lens(tokens), want)
    # only the query heads of KV group 1 see it
    name = "blocks.1.attn.hook_pattern"
    with lens.split_qkv():
        _, clean = lens.run_with_cache(tokens, names=name)
    _, patched = lens.run_with_cache(tokens, names=name, hooks=[p])
    changed = {h for h in range(8) if not torch.equal(patched[name][0, h], clean[name][0, h])}
    assert changed == {4, 5, 6, 7}  # 8 heads / 2 KV heads: group 1 is heads 4..7


@pytest.mark.parametrize("hook,index,kind", [("attn.hook_v_input", 0, "kv_group"),
                                             ("attn.hook_q_input", 6, "head")])
def test_split_qkv_patch_in_generate_equals_uncached(tiny, hook, index, kind):
    lens = tiny
    torch.manual_seed(2)
    noise = torch.randn(lens.facts.d_model) * 3
    p = lensnb.patch(0, hook, position=2, value=noise, **{kind: index})

    def manual(t, hook):  # [batch, pos, heads, d_model]
        t = t.clone()
        t[:, 2, index] = noise
        return t

    gen = lens.generate(PROMPT, 5, hooks=[p], return_logits=True)
    assert gen.path == "bridge" and not lens.split_qkv_enabled
    toks, logits = _uncached_tokens(lens, PROMPT, 5, f"blocks.0.{hook}", manual, split=True)
    assert torch.equal(gen.tokens, toks)
    assert (gen.logits - logits).abs().max() < ATOL
    unpatched = lens.generate(PROMPT, 5, return_logits=True)
    assert (unpatched.logits - logits).abs().max() > 1e-4


def test_every_position_value_is_read_at_absolute_positions_while_generating(tiny):
    """A ``[1, pos, d_model]`` value with ``every_position=True``: the prompt pass and every
    later one-token pass read it at their own absolute positions."""
    lens = tiny
    n_new = 4
    n = lens.to_tokens(PROMPT).shape[1]
    torch.manual_seed(3)
    value = torch.randn(1, n + n_new, lens.facts.d_model)
    p = lensnb.patch(0, "hook_resid_post", every_position=True, value=value)

    def manual(t, hook):
        return value[:, :t.shape[1]].clone()

    gen = lens.generate(PROMPT, n_new, hooks=[p], return_logits=True)
    toks, logits = _uncached_tokens(lens, PROMPT, n_new, "blocks.0.hook_resid_post", manual)
    assert torch.equal(gen.tokens, toks)
    assert (gen.logits - logits).abs().max() < ATOL


def test_the_same_patches_in_the_stepper(tiny):
    lens = tiny
    torch.manual_seed(4)
    ps = [lensnb.patch(0, "hook_resid_post", position=2, value=torch.randn(lens.facts.d_model)),
          lensnb.patch(1, "attn.hook_k_input", kv_group=0, every_position=True,
                       value=lambda old: old * -2.0)]
    w = lensnb.GenerationStepper(lens, PROMPT, max_new_tokens=5, return_logits=True)
    for p in ps:
        w.add_patch(p)
    w.run()
    gen = lens.generate(PROMPT, 5, hooks=ps, return_logits=True)
    plain = lens.generate(PROMPT, 5, return_logits=True)
    assert torch.equal(w.tokens, gen.tokens)
    mine = torch.stack([s.logits for s in w.steps], 1)  # [1, 5, d_vocab]
    assert (mine - gen.logits).abs().max() < ATOL
    assert (mine - plain.logits).abs().max() > 1e-3  # the patches matter
    assert [(d["name"], d["position"], d["value"]) for d in w.patches] == [
        ("blocks.0.hook_resid_post", 2, "tensor (64,)"),
        ("blocks.1.attn.hook_k_input KV group 0", "every position", "function")]
    assert not lens.split_qkv_enabled


# ------------------------------------------------------------------ errors
def test_patch_errors_name_what_is_allowed(tiny):
    lens = tiny

    def run(**kw):
        return lens.run_with_hooks(PROMPT, fwd_hooks=[lensnb.patch(value=0.0, **kw)])

    with pytest.raises(ValueError, match="pass kv_group="):
        run(layer=0, hook="attn.hook_k_input", head=1, every_position=True)
    with pytest.raises(ValueError, match="pass head="):
        run(layer=0, hook="attn.hook_q_input", kv_group=1, every_position=True)
    with pytest.raises(ValueError, match="query-head axis"):
        run(layer=0, hook="hook_resid_post", head=1, position=0)
    with pytest.raises(IndexError, match=r"valid heads are 0\.\.7"):
        run(layer=0, hook="attn.hook_z", head=8, position=0)
    with pytest.raises(IndexError, match="query head -1 is out of range"):  # no from-the-end
        run(layer=0, hook="attn.hook_z", head=-1, position=0)
    with pytest.raises(IndexError, match=r"KV group 2 is out of range: valid KV groups are 0\.\.1"):
        run(layer=0, hook="attn.hook_k_input", kv_group=2, every_position=True)
    with pytest.raises(IndexError, match="outside the sequence"):
        run(layer=0, hook="hook_resid_post", position=99)
    with pytest.raises(IndexError, match="layer 2 is out of range"):
        run(layer=2, hook="hook_resid_post", position=0)
    with pytest.raises(ValueError, match="every_position=True already"):
        lensnb.patch(0, "hook_resid_post", value=0.0, position=1, every_position=True)
    with pytest.raises(ValueError, match="not both"):
        lensnb.patch(0, "attn.hook_z", value=0.0, position=1, head=0, kv_group=0)
    with pytest.raises(ValueError, match="does not fit"):
        lens.run_with_hooks(PROMPT, fwd_hooks=[lensnb.patch(0, "hook_resid_post", position=1,
                                                            value=torch.zeros(7))])
    with pytest.raises(TypeError, match="lensnb.patch"):
        lens.run_with_hooks(PROMPT, fwd_hooks=["blocks.0.hook_resid_post"])
    assert not lens.split_qkv_enabled


@pytest.mark.parametrize("call", [
    lambda lens, p: lens.run_with_hooks("def f(x):", fwd_hooks=[p]),
    lambda lens, p: lens.run_with_cache("def f(x):", hooks=[p]),
    lambda lens, p: lens.generate("def f(x):", 2, hooks=[p]),
    lambda lens, p: lens.generate("def f(x):", 2, hooks=[("blocks.0.attn.hook_k_input",
                                                          lambda act, ctx: None)]),
])
def test_split_qkv_patches_are_refused_up_front_on_a_vision_lens(vision_lens, call):  # noqa: F811
    p = lensnb.patch(0, "attn.hook_k_input", kv_group=0, every_position=True, value=0.0)
    with pytest.raises(UnsupportedFeatureError, match=r"split QKV .* not supported on Llama 3\.2"):
        call(vision_lens, p)
    assert not vision_lens.split_qkv_enabled
