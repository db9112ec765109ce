"""Hook shapes of models built on the meta device (no memory for weights).

Truths: a real ``run_with_cache`` of the demo model on CPU (integration tier), a real CPU forward
of a tiny GPT-2 for the module-level fallback, and the Llama 3.1 405B config read in the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import lensnb
from lensnb.backends.meta import hook_shapes

CONFIGS = Path(__file__).resolve().parents[2] / "lensnb" / "assets" / "configs"


def test_demo_meta_shapes_equal_a_real_cache(demo_lens):
    tokens = demo_lens.to_tokens("def add(a, b):\n    return a + b\n")  # [1, pos]
    _, cache = demo_lens.run_with_cache(tokens)
    df = lensnb.hook_shapes("demo", batch=tokens.shape[0], pos=tokens.shape[1])
    assert (df["source"] == "bridge").all()
    assert df["hook"].is_unique
    planned = df.set_index("hook")
    assert set(planned.index) == set(cache.keys())
    for name in cache.keys():
        assert planned.loc[name, "shape"] == tuple(cache[name].shape), name
        assert planned.loc[name, "dtype"] == str(cache[name].dtype).removeprefix("torch."), name


def test_batch_pos_and_dtype_are_honoured():
    df = hook_shapes("demo", batch=3, pos=5, dtype="bfloat16").set_index("hook")
    f = lensnb.facts("demo", count_params=False)
    assert df.loc["blocks.1.attn.hook_pattern", "shape"] == (3, f.n_heads, 5, 5)
    assert df.loc["blocks.1.attn.hook_k", "shape"] == (3, 5, f.n_key_value_heads, f.d_head)
    assert df.loc["blocks.1.hook_resid_post", "dtype"] == "bfloat16"
    assert df.loc["blocks.1.hook_resid_post", "layer"] == 1
    with pytest.raises(ValueError, match="positive"):
        hook_shapes("demo", pos=0)
    with pytest.raises(ValueError, match="unknown dtype"):
        hook_shapes("demo", dtype="float13")


def test_405b_shapes_follow_its_config_without_memory_for_weights():
    """In a fresh process (so its peak RSS is its own): plan hooks for Llama 3.1 405B."""
    cfg = json.loads((CONFIGS / "meta-llama--Llama-3.1-405B.json").read_text())
    pos = 4
    script = textwrap.dedent(f"""
        import json, resource, torch
        torch.set_num_threads(1)
        import lensnb
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        df = lensnb.hook_shapes("meta-llama/Llama-3.1-405B", pos={pos})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rows = {{h: list(s) for h, s in zip(df["hook"], df["shape"], strict=True)}}
        print(json.dumps({{"grew_kib": peak - base, "rows": rows,
                           "layers": int(df["layer"].max()) + 1}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["grew_kib"] < 1024 * 1024  # < 1 GiB; the fp32 weights would be 1.6 TB
    d, h = cfg["hidden_size"], cfg["num_attention_heads"]
    kv, dh = cfg["num_key_value_heads"], cfg["hidden_size"] // cfg["num_attention_heads"]
    assert (d, h, kv) == (16384, 128, 8)
    assert result["layers"] == cfg["num_hidden_layers"]
    rows = {k: tuple(v) for k, v in result["rows"].items()}
    last = cfg["num_hidden_layers"] - 1
    assert rows["hook_embed"] == (1, pos, d)
    assert rows[f"blocks.{last}.hook_resid_post"] == (1, pos, d)
    assert rows["blocks.0.attn.hook_q"] == (1, pos, h, dh)
    assert rows["blocks.0.attn.hook_k"] == (1, pos, kv, dh)
    assert rows["blocks.0.attn.hook_v"] == (1, pos, kv, dh)
    assert rows["blocks.0.attn.hook_pattern"] == (1, h, pos, pos)
    assert rows["blocks.0.attn.hook_z"] == (1, pos, h, dh)
    assert rows["blocks.0.mlp.hook_post"] == (1, pos, cfg["intermediate_size"])
    assert rows["hook_unembed"] == (1, pos, cfg["vocab_size"])


def test_fallback_module_shapes_equal_a_real_forward():
    """GPT-2's adapter splits its fused QKV from weight values at boot, impossible on meta:
    the fallback lists HF module outputs, checked against a real CPU forward."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_embd=32, n_layer=2,
               n_head=4, n_positions=64, vocab_size=100)
    df = hook_shapes(cfg, batch=2, pos=7)
    assert (df["source"] == "hf_module").all()
    planned = {h: s for h, s in zip(df["hook"], df["shape"], strict=True)}

    model = GPT2LMHeadModel(GPT2Config(**{k: v for k, v in cfg.items() if k != "model_type"}))
    model.eval()
    real: dict[str, tuple] = {}

    def recorder(name: str):
        def record(module, args, out) -> None:  # returns None: the output is left alone
            real[name] = tuple((out if isinstance(out, torch.Tensor) else out[0]).shape)
        return record

    handles = [m.register_forward_hook(recorder(n)) for n, m in model.named_modules() if n]
    with torch.no_grad():
        model(torch.zeros(2, 7, dtype=torch.long))
    for h in handles:
        h.remove()
    assert planned == real
    assert planned["lm_head"] == (2, 7, 100)
    assert planned["transformer.h.1.mlp.c_fc"] == (2, 7, 4 * 32)


def test_mllama_falls_back_to_its_text_modules():
    df = hook_shapes("meta-llama/Llama-3.2-11B-Vision", pos=3).set_index("hook")
    text = json.loads((CONFIGS / "meta-llama--Llama-3.2-11B-Vision.json").read_text())[
        "text_config"]
    assert (df["source"] == "hf_module").all()
    kv_width = text["num_key_value_heads"] * text["hidden_size"] // text["num_attention_heads"]
    assert df.loc["model.language_model.layers.0.self_attn.k_proj", "shape"] == (1, 3, kv_width)
    assert df.loc["lm_head", "shape"] == (1, 3, text["vocab_size"])


TINY_MLLAMA = {
    "model_type": "mllama", "architectures": ["MllamaForConditionalGeneration"],
    "image_token_index": 70,
    "text_config": {"model_type": "mllama_text_model", "vocab_size": 64, "hidden_size": 32,
                    "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "cross_attention_layers": [1],
                    "max_position_embeddings": 64, "pad_token_id": 0},
    "vision_config": {"model_type": "mllama_vision_model", "hidden_size": 16,
                      "attention_heads": 2, "intermediate_size": 32, "num_hidden_layers": 2,
                      "num_global_layers": 1, "image_size": 28, "patch_size": 14,
                      "max_num_tiles": 2, "intermediate_layers_indices": [0],
                      "vision_output_dim": 32, "supported_aspect_ratios": [[1, 1], [1, 2]]},
}


def test_mllama_images_bring_in_the_vision_tower_and_cross_attention():
    """Meta shapes with an image equal a real CPU forward of the same tiny Mllama."""
    from transformers import MllamaForConditionalGeneration

    from lensnb.backends.meta import hf_config

    batch, pos, images = 2, 5, 1
    df = hook_shapes(TINY_MLLAMA, batch=batch, pos=pos, images=images)
    planned = dict(zip(df["hook"], df["shape"], strict=True))

    torch.manual_seed(0)
    model = MllamaForConditionalGeneration(hf_config(TINY_MLLAMA)).eval()
    real: dict[str, tuple] = {}

    def recorder(name: str):
        def record(module, args, out) -> None:
            out = out if isinstance(out, torch.Tensor) else out[0]
            real[name] = tuple(out.shape)
        return record

    handles = [m.register_forward_hook(recorder(n)) for n, m in model.named_modules() if n]
    ids = torch.zeros(batch, pos, dtype=torch.long)
    ids[:, :images] = TINY_MLLAMA["image_token_index"]
    tiles, size = 2, 28
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False,
              pixel_values=torch.randn(batch, images, tiles, 3, size, size),
              aspect_ratio_ids=torch.ones(batch, images, dtype=torch.long),
              aspect_ratio_mask=torch.ones(batch, images, tiles, dtype=torch.long),
              cross_attention_mask=torch.ones(batch, pos, images, tiles, dtype=torch.long))
    for h in handles:
        h.remove()
    assert planned == real
    assert planned["model.language_model.layers.1.cross_attn"] == (batch, pos, 32)
    assert any(h.startswith("model.vision_model.global_transformer") for h in planned)
    text_only = hook_shapes(TINY_MLLAMA, batch=batch, pos=pos)
    assert not text_only["hook"].str.contains("cross_attn|vision_model").any()
    with pytest.raises(ValueError, match="Mllama"):
        hook_shapes("demo", images=1)
