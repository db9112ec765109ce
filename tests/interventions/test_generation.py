"""Step-by-step generation with the KV cache (lensnb.interventions.generation).

Integration tier: the demo model and tiny random models (whose greedy outputs vary token to
token, unlike an under-trained model). Truths: Hugging Face ``generate`` on a separately loaded
model (eager attention), and full-sequence forwards without any cache, recomputed every step."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
from layouts import DEMO_DIR, LAYOUTS
from transformers import AutoModelForCausalLM

import lensnb
from lensnb.backends import kv_cache
from lensnb.core.hooks import UnknownHookError

PROMPT = "def add(a, b):\n    return"
PROMPTS = ["import os", "def add(a, b):\n    return a +", "class A:\n    x = 1\n    def f(self"]


@pytest.fixture(scope="module")
def tiny(make_tiny_model):
    """A tiny random GQA Llama: (Lens, plain HF model, path)."""
    path = make_tiny_model("llama", seed=3, num_attention_heads=8, num_key_value_heads=2)
    hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    return lensnb.load(path), hf, path


def _greedy(model):
    """HF generate kwargs: greedy, padding with the model's EOS like lensnb does."""
    return dict(do_sample=False, pad_token_id=model.generation_config.eos_token_id)


def _uncached(lens, prompt, n, fwd_hooks=()):
    """Greedy generation recomputing the full sequence every step (no cache), through the
    bridge's own hooks: tokens [1, pos + n] and logits [1, n, d_vocab]."""
    toks = lens.to_tokens(prompt)
    logits = []
    for _ in range(n):
        lg = lens.run_with_hooks(toks, fwd_hooks=list(fwd_hooks))[:, -1]
        logits.append(lg)
        toks = torch.cat([toks, lg.argmax(-1, keepdim=True)], dim=1)
    return toks, torch.stack(logits, 1)


@pytest.mark.parametrize("path", ["fast", "bridge"])
def test_greedy_equals_hf_generate_on_demo(demo_lens, path):
    ref = AutoModelForCausalLM.from_pretrained(DEMO_DIR, attn_implementation="eager").eval()
    ids = demo_lens.to_tokens(PROMPT)
    want = ref.generate(ids, max_new_tokens=10, **_greedy(ref))
    got = demo_lens.generate(PROMPT, 10, path=path)
    assert got.path == path
    assert torch.equal(got.tokens, want)


# A tiny Gemma 3 text model: scaled embeddings, (1 + w) RMSNorms around attention and MLP, q/k
# norms, and a sliding window (4 keys) shorter than the prompt on layer 0.
GEMMA3 = ("gemma3_text", dict(num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                              sliding_window=4,
                              layer_types=["sliding_attention", "full_attention"]))
# GPT-2 and Phi-3 fuse q/k/v (and Phi-3 gate/up) into one module that the bridge splits:
# those hooks stay in the bridge, the rest is on the fast path.
FAST_LAYOUTS = {"gqa-llama3": LAYOUTS["gqa-llama3"], "mqa-gemma": LAYOUTS["mqa-gemma"],
                "gemma3-text-sliding": GEMMA3,
                "gpt2-fused-qkv": ("gpt2", dict(num_key_value_heads=4)),
                "phi3-fused-qkv": ("phi3", {})}


@pytest.mark.parametrize("model_type,overrides", [
    ("llama", dict(num_attention_heads=8, num_key_value_heads=2)),
    ("qwen2", dict(num_attention_heads=8, num_key_value_heads=2)),
    LAYOUTS["mqa-gemma"],
    GEMMA3,
    FAST_LAYOUTS["gpt2-fused-qkv"],
    FAST_LAYOUTS["phi3-fused-qkv"],
], ids=["llama", "qwen2", "mqa-gemma", "gemma3-text-sliding", "gpt2", "phi3"])
def test_greedy_equals_hf_generate_tiny(make_tiny_model, model_type, overrides):
    path = make_tiny_model(model_type, seed=1, **overrides)
    lens = lensnb.load(path)
    ref = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    ids = lens.to_tokens(PROMPT)
    want = ref.generate(ids, max_new_tokens=12, **_greedy(ref))
    got = lens.generate(PROMPT, 12)
    assert got.path == "fast"
    assert len(set(got.new_tokens[0].tolist())) > 3  # a varied continuation, not one repeat
    assert torch.equal(got.tokens, want)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_bridge_path_greedy_equals_hf_generate_every_layout(make_tiny_model, layout):
    """Every attention layout lensnb supports, through the bridge's own attention (a
    ``hook_pattern`` hook) with the KV cache: HF ``generate``'s tokens, and the pattern grows
    by one key per step."""
    model_type, overrides = LAYOUTS[layout]
    path = make_tiny_model(model_type, seed=2, **overrides)
    lens = lensnb.load(path)
    ref = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    ids = lens.to_tokens(PROMPT)
    want = ref.generate(ids, max_new_tokens=8, **_greedy(ref))
    keys = []
    got = lens.generate(PROMPT, 8, hooks=[("blocks.1.attn.hook_pattern",
                                           lambda t, ctx: keys.append(t.shape[-1]))])
    assert got.path == "bridge"
    assert keys == [ids.shape[1] + s for s in range(8)]
    assert torch.equal(got.tokens, want)


@pytest.mark.parametrize("hook,path", [
    ("hook_resid_post", "fast"), ("attn.hook_z", "fast"), ("hook_resid_post", "bridge"),
])
def test_patch_with_cache_equals_uncached_regeneration(tiny, hook, path):
    lens, _, _ = tiny
    torch.manual_seed(0)
    name = lens.hook_name(hook, 0)  # layer 0 of 2: later layers carry the patch onwards
    _, cache = lens.run_with_cache(PROMPT, names=[name])
    value = torch.randn_like(cache[name][0, 0]) * 3  # [d_model] or [n_heads, d_head]
    p = lensnb.patch(0, hook, position=4, value=value)
    got = lens.generate(PROMPT, 8, hooks=[p], return_logits=True, path=path)
    assert got.path == path

    def manual(t, hook):
        t = t.clone()
        t[:, 4] = value
        return t

    toks, logits = _uncached(lens, PROMPT, 8, [(name, manual)])
    unpatched = lens.generate(PROMPT, 8, return_logits=True)
    assert (unpatched.logits - logits).abs().max() > 1e-3  # the patch matters
    assert torch.equal(got.tokens, toks)
    assert (got.logits - logits).abs().max() < 1e-4


def test_patch_every_generated_equals_uncached(tiny):
    """Steering every generated position (and prompt position 2): positions must line up on
    every step, cached or not."""
    lens, _, _ = tiny
    torch.manual_seed(1)
    v = torch.randn(lens.facts.d_model) * 4
    p = lensnb.patch(0, "hook_resid_post", position=2, value=v, every_generated=True)
    got = lens.generate(PROMPT, 6, hooks=[p], return_logits=True)
    prompt_len = lens.to_tokens(PROMPT).shape[1]

    def manual(t, hook):
        t = t.clone()
        t[:, 2] = v
        t[:, prompt_len:] = v
        return t

    toks, logits = _uncached(lens, PROMPT, 6, [("blocks.0.hook_resid_post", manual)])
    assert torch.equal(got.tokens, toks)
    assert (got.logits - logits).abs().max() < 1e-4


def test_hook_context_positions_on_pattern(tiny):
    """A bridge-only hook (attention pattern) sees query positions on axis 2 and every key."""
    lens, _, _ = tiny
    seen = []

    def record(t, ctx):
        seen.append((ctx.step, ctx.pos_axis, ctx.positions.tolist(), ctx.key_positions.tolist(),
                     tuple(t.shape)))

    n = lens.to_tokens(PROMPT).shape[1]
    out = lens.generate(PROMPT, 3, hooks=[("blocks.0.attn.hook_pattern", record)])
    assert out.path == "bridge"
    assert seen[0] == (0, 2, [list(range(n))], [list(range(n))], (1, lens.n_heads, n, n))
    assert seen[2] == (2, 2, [[n + 1]], [list(range(n + 2))], (1, lens.n_heads, 1, n + 2))


@pytest.mark.parametrize("path", ["fast", "bridge"])
def test_no_cache_deprecation_warning(tiny, path):
    """transformers >= 5.24 warns (FutureWarning, and a log line) when handed
    ``past_key_values``; neither path may trigger it (nor read ``output.past_key_values``)."""
    import transformers.utils.logging as tf_logging

    lens, _, _ = tiny
    tf_logging.warning_once.cache_clear()  # it logs each message once per process
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    logging.getLogger("transformers").addHandler(handler)
    hooks = [("blocks.0.attn.hook_pattern", lambda t, ctx: None)] if path == "bridge" else []
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning):
                warnings.filterwarnings("error", message=".*(past_key_values|cache).*",
                                        category=category)
            out = lens.generate(PROMPT, 4, hooks=hooks, path=path)
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert out.path == path
    assert not [m for m in records if "deprecated" in m and ("cache" in m or "past_key" in m)]


def test_pattern_has_prompt_plus_step_keys_every_step(tiny):
    """On the bridge path every layer's pattern at step s has prompt_len + s keys (the KV
    cache is read and extended), one query after the prompt, and matches ctx.key_positions."""
    lens, _, _ = tiny
    n = lens.to_tokens(PROMPT).shape[1]
    seen: dict[tuple[int, int], tuple[int, int, int]] = {}

    def record(t, ctx):
        seen[(ctx.layer, ctx.step)] = (t.shape[-2], t.shape[-1], ctx.key_positions.shape[-1])

    lens.generate(PROMPT, 5, hooks=[("blocks.*.attn.hook_pattern", record)])
    assert len(seen) == lens.n_layers * 5
    for (_layer, step), (q, k, kp) in seen.items():
        assert q == (n if step == 0 else 1)
        assert k == kp == n + step


def test_cache_not_filled_raises_instead_of_wrong_tokens(tiny, monkeypatch):
    """A planted fault: the bridge's attention stops storing keys (what transformers 5.24 did
    to TransformerLens 4.3's attention). Generation must stop with an error, not continue
    attending to the new token alone."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    lens, _, _ = tiny
    monkeypatch.setattr(AttentionBridge, "_update_kv_cache", lambda self, k, v, **kw: (k, v))
    with pytest.raises(kv_cache.CacheNotFilledError, match="holds 0 positions"):
        lens.generate(PROMPT, 3, hooks=[("blocks.0.attn.hook_pattern", lambda t, ctx: None)])


def test_cache_argument_follows_the_signature():
    class New(torch.nn.Module):
        def forward(self, input_ids, cache=None, use_cache=None):
            pass

    class Old(torch.nn.Module):
        def forward(self, input_ids, past_key_values=None, **kwargs):
            pass

    assert kv_cache.cache_kwargs(New(), "C") == {"cache": "C", "use_cache": True}
    assert kv_cache.cache_kwargs(Old(), "C") == {"past_key_values": "C", "use_cache": True}


@pytest.mark.parametrize("with_patch", [False, True])
def test_left_padded_batch_equals_each_row_alone(tiny, with_patch):
    lens, _, _ = tiny
    torch.manual_seed(2)
    hooks = [lensnb.patch(1, "hook_resid_pre", position=1, value=torch.randn(
        lens.facts.d_model) * 3)] if with_patch else []
    batch = lens.generate(PROMPTS, 7, hooks=hooks, return_logits=True)
    lengths = [lens.to_tokens(p).shape[1] for p in PROMPTS]
    assert batch.prompt_lengths == lengths and len(set(lengths)) == 3
    for i, prompt in enumerate(PROMPTS):
        alone = lens.generate(prompt, 7, hooks=hooks, return_logits=True)
        assert torch.equal(batch.new_tokens[i], alone.new_tokens[0]), prompt
        assert (batch.logits[i] - alone.logits[0]).abs().max() < 1e-4


@pytest.mark.parametrize("layout", sorted(FAST_LAYOUTS))
def test_cached_activations_equal_bridge_hooks(make_tiny_model, layout):
    """Every fast-path hook (TransformerLens name -> HF module, derived from the adapter's
    component mapping) caches what the bridge's own hook gives on an uncached forward, at the
    position that predicted each token: same shape (per-head views included), same values."""
    model_type, overrides = FAST_LAYOUTS[layout]
    lens = lensnb.load(make_tiny_model(model_type, seed=3, **overrides))
    names = [n for n in lens.hook_names() if lens.fast_path().serves(n)
             and (n.startswith("blocks.1.") or "blocks." not in n)]
    assert len(names) > 25
    out = lens.generate(PROMPT, 3, cache=names)
    assert out.path == "fast"
    _, full = lens.run_with_cache(out.tokens[:, :-1], names=names)
    n = lens.to_tokens(PROMPT).shape[1]
    for k, s in enumerate(out.steps):
        for name in names:
            assert s.cache[name].shape == full[name][:, n - 1 + k].shape, name
            torch.testing.assert_close(s.cache[name], full[name][:, n - 1 + k], msg=name)


def test_step_top_k_and_logit_lens(tiny):
    lens, hf, _ = tiny
    gen = lens.steps(PROMPT, 3, top_k_probs=4, logit_lens=3)
    steps = list(gen)
    ids = lens.to_tokens(PROMPT)
    full = torch.cat([ids, torch.stack([s.token_ids for s in steps], 1)], 1)
    with torch.no_grad():
        out = hf(full, output_hidden_states=True)
    n = ids.shape[1]
    for k, s in enumerate(steps):
        probs = out.logits[0, n - 1 + k].softmax(-1)
        top = probs.topk(4)
        assert s.token == int(top.indices[0]) and s.text == lens.tokenizer.decode([s.token])
        torch.testing.assert_close(s.top_probs[0], top.values, atol=1e-5, rtol=1e-4)
        assert [t for t, _ in s.top_k] == [lens.tokenizer.decode([i]) for i in top.indices]
        assert int(s.positions[0]) == n + k
        # logit lens: HF hidden_states[l + 1] is block l's output (the last one is normed)
        for layer in range(lens.n_layers):
            h = out.hidden_states[layer + 1][0, n - 1 + k]
            if layer < lens.n_layers - 1:
                h = hf.model.norm(h)
            p = hf.lm_head(h).softmax(-1)
            torch.testing.assert_close(s.logit_lens.top_probs[0, layer], p.topk(3).values,
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(s.logit_lens.chosen_probs[0, layer], p[s.token],
                                       atol=1e-5, rtol=1e-4)


def test_stops_on_eos_stop_string_and_max(tiny):
    lens, _, _ = tiny
    eos = lens.tokenizer.eos_token_id

    def force_eos(t, ctx):  # unembed output: make EOS win at step 2
        if ctx.step == 2:
            t = t.clone()
            t[..., eos] = t.max() + 10
            return t

    out = lens.generate(PROMPT, 10, hooks=[("unembed.hook_out", force_eos)])
    assert out.stop_reason == "eos" and out.new_tokens.shape[1] == 3
    assert out.new_tokens[0, -1] == eos
    free = lens.generate(PROMPT, 10)
    assert free.stop_reason == "max_new_tokens" and free.new_tokens.shape[1] == 10
    stop = lens.tokenizer.decode(free.new_tokens[0, 3:4])
    first = lens.tokenizer.decode(free.new_tokens[0, :4]).find(stop)
    stopped = lens.generate(PROMPT, 10, stop_strings=stop)
    assert stopped.stop_reason == "stop"
    assert stop in stopped.text and stop not in lens.tokenizer.decode(stopped.new_tokens[0, :-1])
    assert stopped.new_tokens.shape[1] <= 4 and first >= 0


def _hook_count(lens) -> int:
    plain = lens.fast_path().model
    n = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in plain.modules())
    return n + sum(len(hp._forward_hooks) for hp in lens.bridge.hook_dict.values())


def test_interrupt_and_close_remove_hooks(tiny):
    lens, _, _ = tiny
    # transformers installs its output-capturing hooks (utils/output_capturing.py) on a model's
    # first forward and keeps them: run one first, so the count does not depend on test order
    lens.generate(PROMPT, 1)
    before = _hook_count(lens)

    def interrupt(t, ctx):
        if ctx.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lens.generate(PROMPT, 8, hooks=[("blocks.0.hook_resid_post", interrupt)])
    assert _hook_count(lens) == before
    gen = lens.steps(PROMPT, 8, cache="blocks.*.attn.hook_pattern",
                     hooks=[lensnb.patch(0, "hook_resid_post", position=1, value=0.0)])
    next(gen)
    assert _hook_count(lens) > before
    assert torch.is_grad_enabled()  # grad mode is not left off in the caller between steps
    gen.close()
    assert _hook_count(lens) == before
    # and the model is unchanged afterwards
    assert torch.equal(lens.generate(PROMPT, 4).tokens, lens.generate(PROMPT, 4).tokens)


def test_sampling_is_seeded(tiny):
    lens, _, _ = tiny
    a = lens.generate(PROMPT, 8, do_sample=True, temperature=2.0, seed=5)
    b = lens.generate(PROMPT, 8, do_sample=True, temperature=2.0, seed=5)
    greedy = lens.generate(PROMPT, 8)
    one = lens.generate(PROMPT, 8, do_sample=True, top_k=1, seed=6)
    assert torch.equal(a.tokens, b.tokens)
    assert torch.equal(one.tokens, greedy.tokens)
    assert not torch.equal(a.tokens, greedy.tokens)


def test_bad_input(tiny):
    lens, _, _ = tiny
    n = lens.to_tokens(PROMPT).shape[1]
    with pytest.raises(IndexError, match="outside the sequence"):
        lens.generate(PROMPT, 4, hooks=[lensnb.patch(0, "hook_resid_post", position=n + 4,
                                                     value=0.0)])
    with pytest.raises(IndexError, match="outside the sequence"):
        lens.generate(PROMPT, 4, hooks=[lensnb.patch(0, "hook_resid_post", position=-n - 1,
                                                     value=0.0)])
    with pytest.raises(IndexError, match="out of range"):
        lens.generate(PROMPT, 4, hooks=[lensnb.patch(9, "hook_resid_post", position=1,
                                                     value=0.0)])
    with pytest.raises(UnknownHookError, match="blocks.0.hook_resid_post"):
        lens.generate(PROMPT, 4, hooks=[lensnb.patch(0, "hook_resid_pots", position=1,
                                                     value=0.0)])
    with pytest.raises(UnknownHookError, match="hook_resid_post"):
        lens.steps(PROMPT, 4, cache="blocks.0.hook_resid_pots")
    with pytest.raises(ValueError, match="max_new_tokens"):
        lens.generate(PROMPT, 0)
    with pytest.raises(TypeError, match="lensnb.patch"):
        lens.generate(PROMPT, 2, hooks=["blocks.0.hook_resid_post"])
    with pytest.raises(ValueError, match="fast path"):
        lens.generate(PROMPT, 2, cache="blocks.0.attn.hook_pattern", path="fast")
    with pytest.raises(ValueError, match="position"):
        lensnb.patch(0, "hook_resid_post", value=0.0)
    with pytest.raises(ValueError, match="does not fit"):
        lens.generate(PROMPT, 2, hooks=[lensnb.patch(0, "hook_resid_post", position=1,
                                                     value=torch.zeros(7))])
