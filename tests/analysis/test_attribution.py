"""Direct logit attribution per head, grouped by KV head, on every family. Unit tier: tiny random
models (norm weights and biases randomised so the norms matter). Truths: TransformerLens's own
``tools.analysis.direct_logit_attribution`` on a compatibility-mode bridge of the same weights
(pre-norm families), a loop over the Hugging Face modules with the norms' scales frozen (post-norm
families, which TransformerLens does not decompose through), and a plain HF forward's logits."""

from __future__ import annotations

import pytest
import torch
from layouts import LAYOUTS
from transformers import AutoModelForCausalLM

import lensnb

TEXT = "for i in range(10):\n    print(i)"
POST_NORM = ("olmo2", "gemma2", "gemma3")  # a norm on the attention output, inside the residual
PRE_NORM = [lay for lay in LAYOUTS if lay not in POST_NORM]


@pytest.fixture(scope="module")
def built(make_tiny_model, tmp_path_factory):
    """layout -> (path, Lens, HF model); norm weights and every bias randomised so the norms'
    gains and biases, value biases and b_O matter (fresh inits are ones and zeros, or zeros for
    Gemma's ``1 + w``)."""
    cache: dict[str, tuple] = {}

    def get(layout: str):
        if layout not in cache:
            model_type, overrides = LAYOUTS[layout]
            source = make_tiny_model(model_type, **overrides)
            hf = AutoModelForCausalLM.from_pretrained(source, attn_implementation="eager").eval()
            torch.manual_seed(1)
            with torch.no_grad():
                for name, param in hf.named_parameters():
                    if "norm" in name or ".ln_" in name:
                        param.copy_(torch.rand_like(param) + 0.5)
                    elif name.endswith(".bias"):
                        param.copy_(torch.randn_like(param) * 0.1)
            path = tmp_path_factory.mktemp(f"{layout}-norms")
            hf.save_pretrained(path)
            lensnb.load(source).tokenizer.save_pretrained(path)
            cache[layout] = (path, lensnb.load(path), hf)
        return cache[layout]

    return get


def targets(lens):
    tokens = lens.to_tokens(TEXT)
    pos = tokens.shape[1] - 2
    return tokens, pos, int(tokens[0, pos + 1]), int(tokens[0, 1])


@torch.no_grad()
def hf_logits(hf, tokens):
    """The logits before any final soft-cap: lm_head's own output."""
    seen = {}
    handle = hf.lm_head.register_forward_hook(lambda m, a, out: seen.__setitem__("y", out))
    capped = hf(tokens).logits
    handle.remove()
    return seen["y"][0].double(), capped[0].double()


@pytest.mark.parametrize("layout", PRE_NORM)
def test_heads_equal_transformer_lens_dla_on_a_compatibility_bridge(built, layout):
    """GPT-2 and GPT-NeoX (LayerNorm with bias), Phi-3, Qwen3 and the Llama-likes (RMSNorm): each
    head's part equals TransformerLens's per-head DLA (its final norm folded into W_U), and
    the parts sum to the logit difference of a plain HF forward."""
    from transformer_lens.tools.analysis import direct_logit_attribution

    path, lens, hf = built(layout)
    tokens, pos, target, other = targets(lens)
    dla = lens.logit_attribution(tokens, target, other, pos=pos)
    compat = lensnb.load(path, compatibility=True).bridge
    truth = direct_logit_attribution(compat, tokens, torch.tensor([target]),
                                     torch.tensor([other]), unit="head", pos=pos)
    values = dict(zip(truth.labels, truth.attribution.reshape(-1).tolist(), strict=True))
    want = torch.tensor([[values[f"L{la}H{h}"] for h in range(lens.n_heads)]
                         for la in range(lens.n_layers)], dtype=torch.float64)
    torch.testing.assert_close(dla.heads, want, rtol=0, atol=1e-6)  # measured: <= 4e-8
    pre_cap, _ = hf_logits(hf, tokens)
    hf_diff = float(pre_cap[pos, target] - pre_cap[pos, other])
    assert dla.logit_diff == pytest.approx(hf_diff, abs=1e-5)
    assert dla.total == pytest.approx(hf_diff, abs=1e-5)
    centres = layout in ("gpt2", "gpt-neox")  # LayerNorm: its bias is a part of its own
    assert (abs(dla.norm_bias) > 1e-6) == centres


@torch.no_grad()
def post_norm_heads(hf, tokens, pos, direction):
    """Per-head direct effects of a post-norm model (Gemma 2/3, OLMo-2), by hand from the HF
    modules: o_proj's input split per head through o_proj's weight slices, through the
    post-attention RMSNorm with its scale frozen (sqrt(mean(x^2) + eps) of its input at ``pos``),
    through the final RMSNorm frozen the same way, onto ``direction``."""
    cfg = hf.config
    layers = hf.model.layers
    seen: dict[str, torch.Tensor] = {}

    def keep(name):
        return lambda m, args: seen.__setitem__(name, args[0][0, pos].double())

    handles = [hf.model.norm.register_forward_pre_hook(keep("final"))]
    for i, layer in enumerate(layers):
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(keep(f"z{i}")))
        handles.append(layer.post_attention_layernorm.register_forward_pre_hook(keep(f"o{i}")))
    hf(tokens)
    for h in handles:
        h.remove()

    def gain(norm):  # Gemma's RMSNorm scales by 1 + w, OLMo-2's by w
        w = norm.weight.double()
        return 1 + w if cfg.model_type.startswith("gemma") else w

    def rms(x):
        return torch.sqrt(x.pow(2).mean() + cfg.rms_norm_eps)

    n_heads = cfg.num_attention_heads
    d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    readout = direction * gain(hf.model.norm) / rms(seen["final"])
    heads = torch.zeros(len(layers), n_heads, dtype=torch.float64)
    for i, layer in enumerate(layers):
        w_o = layer.self_attn.o_proj.weight.double()  # [d_model, n_heads * d_head]
        post = gain(layer.post_attention_layernorm) / rms(seen[f"o{i}"])
        for h in range(n_heads):
            cols = slice(h * d_head, (h + 1) * d_head)
            heads[i, h] = readout @ (post * (w_o[:, cols] @ seen[f"z{i}"][cols]))
    return heads


@pytest.mark.parametrize("layout", POST_NORM)
def test_post_norm_heads_equal_a_loop_over_hf_modules(built, layout):
    """Gemma 2/3 and OLMo-2 add post_norm(attention output) to the residual: heads go through
    that norm with its scale frozen, heads + attn_bias are what the block adds, and every part
    sums to HF's logit difference (before Gemma 2's final soft-cap; after it, capped_logit_diff
    is HF's own logits)."""
    path, lens, hf = built(layout)
    tokens, pos, target, other = targets(lens)
    dla = lens.logit_attribution(tokens, target, other, pos=pos)
    w_u = hf.lm_head.weight.detach().double()
    want = post_norm_heads(hf, tokens, pos, w_u[target] - w_u[other])
    torch.testing.assert_close(dla.heads, want, rtol=1e-5, atol=1e-7)
    pre_cap, capped = hf_logits(hf, tokens)
    assert dla.total == pytest.approx(float(pre_cap[pos, target] - pre_cap[pos, other]), abs=1e-5)
    assert dla.logit_diff == pytest.approx(dla.total, abs=1e-5)
    assert dla.capped_logit_diff == pytest.approx(
        float(capped[pos, target] - capped[pos, other]), abs=1e-5)
    _, cache = lens.run_with_cache(tokens, names="blocks.*.hook_attn_out")
    for layer in range(lens.n_layers):  # heads + bias == what the block adds, read out
        added = cache[f"blocks.{layer}.hook_attn_out"][0, pos].double()
        assert float(dla.heads[layer].sum() + dla.attn_bias[layer]) == pytest.approx(
            float(added @ (dla_readout(lens, hf, tokens, pos, target, other))), abs=1e-6)


def dla_readout(lens, hf, tokens, pos, target, other):
    """(W_U[t] - W_U[b]) * g_final / s_final: how a residual-stream vector reads out (RMSNorm)."""
    seen = {}
    handle = hf.model.norm.register_forward_pre_hook(
        lambda m, a: seen.__setitem__("x", a[0][0, pos].double()))
    with torch.no_grad():
        hf(tokens)
    handle.remove()
    w = hf.model.norm.weight.double()
    gain = 1 + w if hf.config.model_type.startswith("gemma") else w
    s = torch.sqrt(seen["x"].pow(2).mean() + hf.config.rms_norm_eps)
    w_u = hf.lm_head.weight.detach().double()
    return (w_u[target] - w_u[other]) * gain / s


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_kv_grouping_and_frame(built, layout):
    _, lens, hf = built(layout)
    tokens, pos, target, other = targets(lens)
    dla = lens.logit_attribution(tokens, target, other, pos=pos)
    n_heads, n_kv, n_layers = lens.n_heads, lens.n_key_value_heads, lens.n_layers
    assert dla.by_kv_group.shape == (n_layers, n_kv, n_heads // n_kv)
    for layer in range(n_layers):
        for g in range(n_kv):
            heads = lens.heads_of_kv(g)
            for i, h in enumerate(heads):
                assert dla.by_kv_group[layer, g, i] == dla.heads[layer, h]
            assert dla.kv_group_totals[layer, g] == pytest.approx(
                float(sum(dla.heads[layer, h] for h in heads)), abs=1e-9)
    frame = dla.to_frame()
    assert frame["attribution"].sum() == pytest.approx(dla.total, abs=1e-9)
    assert (frame[frame.component == "head"]["kv_head"].tolist()
            == [lens.kv_head_of(h) for _ in range(n_layers) for h in range(n_heads)])


def test_single_token_logit_and_text_tokens(built):
    _, lens, hf = built("gqa-llama3")
    dla = lens.logit_attribution(TEXT, "print")
    tokens = lens.to_tokens(TEXT)
    with torch.no_grad():
        logits = hf(tokens).logits[0, -1]
    assert dla.pos == tokens.shape[1] - 1 and dla.baseline is None
    assert dla.total == pytest.approx(float(logits[dla.token]), abs=1e-4)
    assert lens.tokenizer.decode([dla.token]) == "print"


def test_attribution_errors(built):
    _, lens, _ = built("gqa-llama3")
    with pytest.raises(ValueError, match="not one: pass a single token"):
        lens.logit_attribution(TEXT, "print(i) for everything")
    with pytest.raises(IndexError, match=r"valid ids are 0\.\.4095"):
        lens.logit_attribution(TEXT, 4096)
    with pytest.raises(IndexError, match="position 99 is out of range"):
        lens.logit_attribution(TEXT, 5, pos=99)
    with pytest.raises(ValueError, match="one text"):
        lens.logit_attribution(["a b", "c d"], 5)


@pytest.mark.parametrize("layout", ["gpt2", "gemma2"])
def test_half_precision_models_attribute_too(built, layout):
    """A bfloat16 model: norms are probed as float32 copies, and the parts-add-up checks allow
    bfloat16's rounding; heads within 1e-2 of the float32 model's, parts summing to its logits."""
    path, lens, _ = built(layout)
    half = lensnb.load(path, dtype="bfloat16")
    tokens, pos, target, other = targets(lens)
    full, low = (m.logit_attribution(tokens, target, other, pos=pos) for m in (lens, half))
    torch.testing.assert_close(low.heads, full.heads, rtol=0, atol=1e-2)  # measured: <= 1e-3
    assert low.total == pytest.approx(low.logit_diff, abs=1e-2)
