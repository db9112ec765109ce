"""Every family lensnb loads: the batched sweeps equal a loop written here, one cell per plain
forward pass through ``lensnb.patch`` (tiny random models of each layout); a site a model lacks
refuses before any forward pass, naming the sites it has; the vision lens refuses, pointing to
``lens.text_only()``."""

from __future__ import annotations

import pytest
import torch

import lensnb

# (model_type, config overrides): fused q/k/v (GPT-2, GPT-NeoX, Phi-3), parallel attention
# (GPT-NeoX), MQA (Gemma), sliding windows shorter than the prompt (Gemma 3), q/k/v bias (Qwen2),
# q/k norms per head (Qwen3) and over all heads (OLMo-2)
FAMILIES = {
    "gpt2": ("gpt2", dict(num_key_value_heads=4)),
    "gpt-neox-parallel": ("gpt_neox", dict(num_key_value_heads=4, use_parallel_residual=True)),
    "phi3": ("phi3", dict()),
    "gemma-mqa": ("gemma", dict(num_key_value_heads=1, head_dim=16)),
    "gemma3-sliding": ("gemma3_text", dict(head_dim=16, sliding_window=4,
                                            layer_types=["sliding_attention", "full_attention"])),
    "qwen2-bias": ("qwen2", dict()),
    "qwen3": ("qwen3", dict()),  # a k_norm per KV head
    "olmo2": ("olmo2", dict()),  # one k_norm over every KV head's keys (shared_k_norm)
}
CLEAN = "def add(x, y):\n    return x +"
CORRUPTED = "def add(x, z):\n    return x +"


@pytest.fixture(scope="module")
def family(make_tiny_model):
    made = {}

    def get(name):
        if name not in made:
            model_type, overrides = FAMILIES[name]
            lens = lensnb.load(make_tiny_model(model_type, seed=2, **overrides))
            with torch.no_grad():
                moved = lens(CLEAN)[0, -1] - lens(CORRUPTED)[0, -1]
            made[name] = (lens, int(moved.argmax()), int(moved.argmin()))
        return made[name]

    return get


def _loop(lens, answer, wrong, patches_per_cell):
    def diff(text, hooks=()):
        logits = lens.run_with_hooks(text, fwd_hooks=list(hooks))
        return float(logits[0, -1, answer] - logits[0, -1, wrong])

    c, r = diff(CLEAN), diff(CORRUPTED)
    return torch.tensor([(diff(CORRUPTED, p) - r) / (c - r) for p in patches_per_cell])


@pytest.mark.parametrize("name", list(FAMILIES))
def test_sweeps_equal_a_loop_on_every_family(family, name):
    lens, answer, wrong = family(name)
    layer, positions = 1, [4, 6, 11]
    names = [f"blocks.{layer}.{h}" for h in ("hook_resid_pre", "attn.hook_z", "attn.hook_k",
                                             "attn.hook_v", "hook_mlp_out")]
    _, cache = lens.run_with_cache(CLEAN, names=names)
    act = {n.split(".", 2)[2]: cache[n][0] for n in names}
    cases = {
        "resid_pre": [[lensnb.patch(layer, "hook_resid_pre", position=p,
                                    value=act["hook_resid_pre"][p])] for p in positions],
        "mlp_out": [[lensnb.patch(layer, "hook_mlp_out", position=p,
                                  value=act["hook_mlp_out"][p])] for p in positions],
        "head": [[lensnb.patch(layer, "attn.hook_z", head=h, every_position=True,
                               value=act["attn.hook_z"][:, h])] for h in range(lens.n_heads)],
        "kv_group": [[lensnb.patch(layer, f"attn.hook_{x}", kv_group=g, every_position=True,
                                   value=act[f"attn.hook_{x}"][:, g]) for x in "kv"]
                     for g in range(lens.n_key_value_heads)],
    }
    for site, patches in cases.items():
        res = lensnb.activation_patching(
            lens, CLEAN, CORRUPTED, answer=answer, wrong=wrong, site=site, layers=[layer],
            positions=positions if site in ("resid_pre", "mlp_out") else None, progress=False)
        truth = _loop(lens, answer, wrong, patches)
        assert torch.allclose(res.scores.flatten(), truth, atol=1e-4), (name, site)
    est = lensnb.activation_patching(lens, CLEAN, CORRUPTED, answer=answer, wrong=wrong,
                                     site="kv_group", method="attribution", progress=False)
    assert est.scores.shape == (lens.n_layers, lens.n_key_value_heads)
    assert torch.isfinite(est.scores).all()


@pytest.mark.parametrize("name", ["gpt2", "gemma-mqa", "gemma3-sliding", "qwen3", "olmo2"])
def test_kv_group_qk_fix_equals_a_loop_on_every_family(family, name):
    """AtP*'s QK fix per KV group == a loop written here: ``z'``, the query heads' output of an
    exact pass with that group's clean keys and values (at one layer), and ``dM/dz`` at the
    corrupted run by autograd: ``sum over the group's heads (z' - z) . dM/dz``. On OLMo-2 a
    patch of one group's keys rescales every group's (one k_norm), so this checks that too."""
    lens, answer, wrong = family(name)
    assert lens.capabilities.shared_k_norm == (name == "olmo2")
    res = lensnb.activation_patching(lens, CLEAN, CORRUPTED, answer=answer, wrong=wrong,
                                     site="kv_group", method="attribution", progress=False)
    span = res.clean_value - res.corrupted_value
    truth = torch.zeros(res.scores.shape, dtype=torch.float64)
    for la in range(lens.n_layers):
        z, kv = f"blocks.{la}.attn.hook_z", [f"blocks.{la}.attn.hook_{x}" for x in "kv"]
        _, cache = lens.run_with_cache(CLEAN, names=kv)
        held = {}

        def leaf(act, hook, held=held):
            held["z"] = act.detach().requires_grad_(True)
            return held["z"]

        with torch.enable_grad():  # the hooked model itself: lens.run_with_hooks is no_grad
            logits = lens.bridge.run_with_hooks(lens.to_tokens(CORRUPTED), fwd_hooks=[(z, leaf)])
            (grad,) = torch.autograd.grad(logits[0, -1, answer] - logits[0, -1, wrong],
                                          held["z"])
        z_corr = held["z"].detach()
        for g in range(lens.n_key_value_heads):
            patches = [lensnb.patch(la, f"attn.hook_{x}", kv_group=g, every_position=True,
                                    value=cache[f"blocks.{la}.attn.hook_{x}"][0][:, g])
                       for x in "kv"]
            _, patched = lens.run_with_cache(CORRUPTED, names=[z], hooks=patches)
            heads = lens.heads_of_kv(g)
            truth[la, g] = float(((patched[z] - z_corr) * grad)[0, :, heads].double().sum())
    truth /= span
    assert torch.allclose(res.scores.double(), truth, atol=1e-4), (res.scores, truth)


def test_parallel_attention_has_no_resid_mid(family):
    lens, answer, wrong = family("gpt-neox-parallel")
    assert "resid_mid" not in lensnb.patching_sites(lens)
    with pytest.raises(lensnb.UnsupportedFeatureError,
                       match=r"'resid_mid'.*parallel.*'resid_pre', 'resid_post', 'attn_out'"):
        lensnb.activation_patching(lens, CLEAN, CORRUPTED, answer=answer, wrong=wrong,
                                   site="resid_mid")


def test_the_vision_lens_points_to_its_text_model():
    vision = lensnb.load("demo-vision")
    for call in (lambda: lensnb.activation_patching(vision, "a b", "a c", answer=1, wrong=2),
                 lambda: lensnb.causal_trace(vision, "a b", "a", 1)):
        with pytest.raises(lensnb.UnsupportedFeatureError, match=r"lens\.text_only\(\)"):
            call()
    text = vision.text_only()
    clean = torch.tensor([[5, 9, 7, 3, 12]])  # its tokenizer knows few words: ids
    corrupted = torch.tensor([[5, 11, 7, 3, 12]])
    with torch.no_grad():
        moved = text(clean)[0, -1] - text(corrupted)[0, -1]
    res = lensnb.activation_patching(text, clean, corrupted, answer=int(moved.argmax()),
                                     wrong=int(moved.argmin()), site="head", progress=False)
    assert res.scores.shape == (text.n_layers, text.n_heads)
