"""The fast generation path's site table, derived from the TransformerLens adapter's component
mapping (lensnb.backends.bridge.fast_path), and generation through it on Gemma layouts.

Unit tier: tiny random models. Truths: the Hugging Face Llama layout written out by hand below,
the bridge's own hooks on a full forward without any cache, and Hugging Face ``generate``."""

from __future__ import annotations

import pytest
import torch
from layouts import LAYOUTS
from real_fixtures import load_real, load_reference

import lensnb
from lensnb.backends.bridge.fast_path import fast_site, fast_sites, plain_model

PROMPT = "def add(a, b):\n    return"
GEMMA3 = ("gemma3_text", dict(num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                              sliding_window=4,
                              layer_types=["sliding_attention", "full_attention"]))

# Hugging Face's Llama module tree (modeling_llama.py), written out by hand: TransformerLens
# hook (after "blocks.{i}.") -> (module, "in" = first input | "out" = output, per-head view).
_L = "model.layers.{i}"
LLAMA_BLOCK = {
    "hook_resid_pre": (_L, "in", False), "hook_resid_post": (_L, "out", False),
    "ln1.hook_in": (f"{_L}.input_layernorm", "in", False),
    "ln1.hook_out": (f"{_L}.input_layernorm", "out", False),
    "attn.hook_q": (f"{_L}.self_attn.q_proj", "out", True),
    "attn.hook_k": (f"{_L}.self_attn.k_proj", "out", True),
    "attn.hook_v": (f"{_L}.self_attn.v_proj", "out", True),
    "attn.hook_z": (f"{_L}.self_attn.o_proj", "in", True),
    "attn.o.hook_out": (f"{_L}.self_attn.o_proj", "out", False),
    "hook_attn_out": (f"{_L}.self_attn", "out", False),
    "hook_resid_mid": (f"{_L}.post_attention_layernorm", "in", False),
    "ln2.hook_out": (f"{_L}.post_attention_layernorm", "out", False),
    "mlp.hook_in": (f"{_L}.mlp", "in", False),
    "mlp.hook_pre": (f"{_L}.mlp.gate_proj", "out", False),
    "mlp.hook_pre_linear": (f"{_L}.mlp.up_proj", "out", False),
    "mlp.hook_post": (f"{_L}.mlp.down_proj", "in", False),
    "hook_mlp_out": (f"{_L}.mlp", "out", False),
}
LLAMA_GLOBAL = {
    "hook_embed": ("model.embed_tokens", "out", False),
    "ln_final.hook_in": ("model.norm", "in", False),
    "ln_final.hook_out": ("model.norm", "out", False),
    "unembed.hook_in": ("lm_head", "in", False),
    "hook_unembed": ("lm_head", "out", False),
}
BRIDGE_ONLY = ["blocks.0.attn.hook_pattern", "blocks.0.attn.hook_attn_scores",
               "blocks.0.attn.hook_rot_q", "blocks.1.ln1.hook_scale", "rotary_emb.hook_out"]


def _load(make_tiny_model, model_type, overrides, seed=4):
    return lensnb.load(make_tiny_model(model_type, seed=seed, **overrides))


def test_llama_sites_match_the_hf_layout(make_tiny_model):
    lens = _load(make_tiny_model, "llama", dict(num_attention_heads=8, num_key_value_heads=2))
    for i in range(lens.n_layers):
        for hook, (module, side, heads) in LLAMA_BLOCK.items():
            site = fast_site(lens.bridge, f"blocks.{i}.{hook}")
            assert site is not None, hook
            assert (site.module, site.side, site.heads) == (module.format(i=i), side, heads), hook
    for hook, want in LLAMA_GLOBAL.items():
        site = fast_site(lens.bridge, hook)
        assert (site.module, site.side, site.heads) == want, hook
    for name in BRIDGE_ONLY:
        assert name in lens.bridge.hook_dict and fast_site(lens.bridge, name) is None, name


def test_gemma3_sites_follow_its_extra_norms(make_tiny_model):
    """Gemma 3 normalises the attention and MLP outputs before adding them: hook_attn_out is
    post_attention_layernorm's output and hook_resid_mid pre_feedforward_layernorm's input
    (where Llama's would be wrong), as the adapter maps them."""
    lens = _load(make_tiny_model, *GEMMA3)
    want = {
        "blocks.0.hook_attn_out": ("model.layers.0.post_attention_layernorm", "out"),
        "blocks.0.hook_resid_mid": ("model.layers.0.pre_feedforward_layernorm", "in"),
        "blocks.0.hook_mlp_out": ("model.layers.0.post_feedforward_layernorm", "out"),
        "blocks.0.ln2.hook_out": ("model.layers.0.pre_feedforward_layernorm", "out"),
    }
    for name, (module, side) in want.items():
        site = fast_site(lens.bridge, name)
        assert (site.module, site.side) == (module, side), name
    # q/k norms see [batch, n_heads, pos, d_head]: only in the bridge
    assert fast_site(lens.bridge, "blocks.0.attn.q_norm.hook_out") is None
    plain, why = plain_model(lens.bridge)
    assert plain is not None, why
    modules = dict(plain.named_modules())
    assert all(s.module in modules for s in fast_sites(lens.bridge).values())


@pytest.mark.parametrize("layout", ["mqa-gemma", "gemma3-text-sliding"])
@pytest.mark.parametrize("hook", ["hook_resid_post", "attn.hook_z", "hook_attn_out"])
def test_gemma_patch_fast_equals_bridge_and_uncached(make_tiny_model, layout, hook):
    """A patch at one prompt position, generated on the fast path, the bridge path and by
    regenerating the whole sequence through the bridge's own hooks each step: same tokens,
    logits within 1e-4 (float32; the fast and bridge paths differ by ~1e-6)."""
    model_type, overrides = GEMMA3 if layout.startswith("gemma3") else LAYOUTS[layout]
    lens = _load(make_tiny_model, model_type, overrides)
    torch.manual_seed(0)
    name = lens.hook_name(hook, 0)
    _, cache = lens.run_with_cache(PROMPT, names=[name])
    value = torch.randn_like(cache[name][0, 0]) * 3  # [d_model] or [n_heads, d_head]
    p = lensnb.patch(0, hook, position=4, value=value)
    fast = lens.generate(PROMPT, 8, hooks=[p], return_logits=True, path="fast")
    bridge = lens.generate(PROMPT, 8, hooks=[p], return_logits=True, path="bridge")
    assert (fast.path, bridge.path) == ("fast", "bridge")

    def manual(t, hook):
        t = t.clone()
        t[:, 4] = value
        return t

    toks = lens.to_tokens(PROMPT)
    logits = []
    for _ in range(8):
        lg = lens.run_with_hooks(toks, fwd_hooks=[(name, manual)])[:, -1]
        logits.append(lg)
        toks = torch.cat([toks, lg.argmax(-1, keepdim=True)], dim=1)
    logits = torch.stack(logits, 1)
    unpatched = lens.generate(PROMPT, 8, return_logits=True)
    assert (unpatched.logits - logits).abs().max() > 1e-3  # the patch matters
    for got in (fast, bridge):
        assert torch.equal(got.tokens, toks)
        assert (got.logits - logits).abs().max() < 1e-4


def test_no_fast_path_in_compatibility_mode(make_tiny_model):
    lens = lensnb.load(make_tiny_model("gemma", seed=4, **LAYOUTS["mqa-gemma"][1]),
                       compatibility=True)
    plain, why = plain_model(lens.bridge)
    assert plain is None and "compatibility" in why
    with pytest.raises(ValueError, match="fast path cannot run this: compatibility"):
        lens.generate(PROMPT, 2, path="fast")


@pytest.mark.slow
def test_gemma3_270m_fast_generation_past_the_sliding_window_equals_hf():
    """The real Gemma 3 270M (scaled embeddings, (1 + w) norms, 512-token sliding window on 5 of
    every 6 layers): a 530-token prompt, so the window is in force, greedy on the fast path with
    a cached hook == Hugging Face ``generate`` on transformers' own GGUF-loaded model, and the
    cached activation == the bridge's hook on a full forward."""
    lens, hf = load_real("gemma3-270m"), load_reference("gemma3-270m")
    text = ("In 1879 the physicist wrote to his sister about the lake, the mountains and the "
            "long winter evenings spent reading by the fire. ") * 40
    ids = lens.to_tokens(text)[:, :530]
    assert ids.shape[1] == 530 > lens.hf_config.sliding_window
    want = hf.generate(ids, max_new_tokens=4, do_sample=False, eos_token_id=None,
                       pad_token_id=lens.tokenizer.pad_token_id or 0)
    name = "blocks.3.hook_resid_post"
    got = lens.generate(ids, 4, stop_at_eos=False, cache=name)
    assert got.path == "fast"
    assert torch.equal(got.tokens, want)
    _, full = lens.run_with_cache(got.tokens[:, :-1], names=name)
    for k, step in enumerate(got.steps):
        torch.testing.assert_close(step.cache[name], full[name][:, 529 + k], atol=1e-4,
                                   rtol=1e-4)
