"""Direct logit attribution per head, grouped by KV head. Unit tier: tiny random models of every
attention layout; the truth is a plain Hugging Face forward pass (eager attention), with head
outputs and the final RMSNorm recomputed here from the HF modules and the formula."""

from __future__ import annotations

import pytest
import torch
from layouts import LAYOUTS
from transformers import AutoModelForCausalLM

import lensnb

TEXT = "for i in range(10):\n    print(i)"


@pytest.fixture(scope="module")
def built(make_tiny_model, tmp_path_factory):
    """layout -> (Lens, HF model); norm weights randomised so the final norm's gain matters
    (fresh inits are all ones, or all zeros for Gemma's ``1 + w``)."""
    cache: dict[str, tuple] = {}

    def get(layout: str):
        if layout not in cache:
            model_type, overrides = LAYOUTS[layout]
            path = make_tiny_model(model_type, **overrides)
            hf = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
            torch.manual_seed(1)
            with torch.no_grad():
                for name, param in hf.named_parameters():
                    if "norm" in name:
                        param.copy_(torch.rand_like(param) + 0.5)
            path = tmp_path_factory.mktemp(f"{layout}-norms")
            hf.save_pretrained(path)
            lensnb.load(make_tiny_model(model_type, **overrides)).tokenizer.save_pretrained(path)
            cache[layout] = (lensnb.load(path), hf)
        return cache[layout]

    return get


@torch.no_grad()
def hf_direct_effects(hf, tokens, pos, direction):
    """Per-head direct effects from the HF model: o_proj inputs split per head, through o_proj's
    weight slices, through the final RMSNorm with its scale frozen, onto ``direction``."""
    cfg = hf.config
    n_heads = cfg.num_attention_heads
    d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_heads
    seen: dict[str, torch.Tensor] = {}
    handles = [hf.model.norm.register_forward_pre_hook(
        lambda m, args: seen.__setitem__("resid_final", args[0]))]
    for i, layer in enumerate(hf.model.layers):
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(
            lambda m, args, i=i: seen.__setitem__(f"z{i}", args[0])))
    logits = hf(tokens).logits
    for h in handles:
        h.remove()
    x = seen["resid_final"][0, pos].double()
    rms = torch.sqrt(x.pow(2).mean() + cfg.rms_norm_eps)
    weight = hf.model.norm.weight.double()
    gain = 1 + weight if cfg.model_type == "gemma" else weight  # Gemma's RMSNorm scales by 1 + w
    heads = torch.zeros(cfg.num_hidden_layers, n_heads, dtype=torch.float64)
    for i, layer in enumerate(hf.model.layers):
        w_o = layer.self_attn.o_proj.weight.double()  # [d_model, n_heads * d_head]
        z = seen[f"z{i}"][0, pos].double()  # [n_heads * d_head]
        for h in range(n_heads):
            cols = slice(h * d_head, (h + 1) * d_head)
            out = w_o[:, cols] @ z[cols]  # [d_model]
            heads[i, h] = (direction * gain * out / rms).sum()
    return logits[0, pos].double(), heads


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_parts_sum_to_the_logit_difference_of_plain_transformers(built, layout):
    lens, hf = built(layout)
    tokens = lens.to_tokens(TEXT)
    pos = tokens.shape[1] - 2
    target, other = int(tokens[0, pos + 1]), int(tokens[0, 1])
    dla = lens.logit_attribution(tokens, target, other, pos=pos)

    w_u = hf.lm_head.weight.detach().double()
    hf_logits, hf_heads = hf_direct_effects(hf, tokens, pos, w_u[target] - w_u[other])
    hf_diff = float(hf_logits[target] - hf_logits[other])
    assert dla.logit_diff == pytest.approx(hf_diff, abs=1e-4)
    assert dla.total == pytest.approx(hf_diff, abs=1e-4)
    torch.testing.assert_close(dla.heads, hf_heads, atol=1e-5, rtol=1e-4)

    n_heads, n_kv = hf.config.num_attention_heads, hf.config.num_key_value_heads
    assert dla.by_kv_group.shape == (hf.config.num_hidden_layers, n_kv, n_heads // n_kv)
    for layer in range(hf.config.num_hidden_layers):
        for g in range(n_kv):
            heads = [h for h in range(n_heads) if h // (n_heads // n_kv) == g]
            for i, h in enumerate(heads):
                assert dla.by_kv_group[layer, g, i] == dla.heads[layer, h]
            assert dla.kv_group_totals[layer, g] == pytest.approx(
                float(sum(dla.heads[layer, h] for h in heads)), abs=1e-9)
    frame = dla.to_frame()
    assert frame["attribution"].sum() == pytest.approx(dla.total, abs=1e-9)
    assert (frame[frame.component == "head"]["kv_head"].tolist()
            == [h // (n_heads // n_kv) for _ in range(hf.config.num_hidden_layers)
                for h in range(n_heads)])


def test_single_token_logit_and_text_tokens(built):
    lens, hf = built("gqa-llama3")
    dla = lens.logit_attribution(TEXT, "print")
    tokens = lens.to_tokens(TEXT)
    with torch.no_grad():
        logits = hf(tokens).logits[0, -1]
    assert dla.pos == tokens.shape[1] - 1 and dla.baseline is None
    assert dla.total == pytest.approx(float(logits[dla.token]), abs=1e-4)
    assert lens.tokenizer.decode([dla.token]) == "print"


def test_attribution_errors(built):
    lens, _ = built("gqa-llama3")
    with pytest.raises(ValueError, match="not one: pass a single token"):
        lens.logit_attribution(TEXT, "print(i) for everything")
    with pytest.raises(IndexError, match=r"valid ids are 0\.\.4095"):
        lens.logit_attribution(TEXT, 4096)
    with pytest.raises(IndexError, match="position 99 is out of range"):
        lens.logit_attribution(TEXT, 5, pos=99)
    with pytest.raises(ValueError, match="one text"):
        lens.logit_attribution(["a b", "c d"], 5)
