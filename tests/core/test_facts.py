"""Unit tier: model facts from the shipped catalogue of real Hub configs (no weights).

Truths: the JSON files read directly here, the numbers the issue states for Llama 3.1, published
parameter counts, and a parameter formula for Llama-style decoders written out in this file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lensnb
from lensnb.core.facts import catalogue, facts, model_table
from lensnb.loading import ModelNotFoundError

CONFIGS = Path(__file__).resolve().parents[2] / "lensnb" / "assets" / "configs"

REQUIRED = [
    "meta-llama/Meta-Llama-3-8B", "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B",
    "meta-llama/Llama-3.1-405B", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B",
    "meta-llama/Llama-3.2-11B-Vision", "meta-llama/Llama-3.2-90B-Vision",
    "mistralai/Mistral-7B-v0.1", "Qwen/Qwen2-7B", "google/gemma-2b", "google/gemma-7b",
    "google/gemma-2-9b", "openai-community/gpt2",
]


def raw(name: str) -> dict:
    """The shipped JSON, read without lensnb."""
    return json.loads((CONFIGS / (name.replace("/", "--") + ".json")).read_text())


def test_catalogue_holds_every_required_model_under_its_hub_name():
    cat = catalogue()
    assert set(REQUIRED) <= set(cat)
    for name, path in cat.items():
        assert path.name == name.replace("/", "--") + ".json"
        assert raw(name)["_name_or_path"] == name


@pytest.mark.parametrize("name", REQUIRED)
def test_every_entry_parses_and_matches_its_json(name):
    cfg = raw(name)
    text = cfg.get("text_config", cfg)
    f = facts(name)
    assert f.name == name
    assert f.architecture == cfg["architectures"][0]
    assert f.d_model == text.get("hidden_size", text.get("n_embd"))
    assert f.n_layers == text.get("num_hidden_layers", text.get("n_layer"))
    assert f.n_heads == text.get("num_attention_heads", text.get("n_head"))
    assert f.n_key_value_heads == text.get("num_key_value_heads", f.n_heads)
    assert f.n_ctx == text.get("max_position_embeddings", text.get("n_positions"))
    assert f.vocab_size == text["vocab_size"]
    assert f.d_head == text.get("head_dim", f.d_model // f.n_heads)
    assert f.n_heads % f.n_key_value_heads == 0
    assert f.n_params is not None and f.n_params > 0


def test_llama_31_8b_facts_stated_in_the_issue():
    f = facts("meta-llama/Llama-3.1-8B")
    assert (f.d_model, f.n_layers, f.n_heads, f.n_key_value_heads, f.d_mlp) == (
        4096, 32, 32, 8, 14336)
    assert (f.act_fn, f.normalization, f.positional_embedding) == ("silu", "RMSNorm", "rotary")
    assert f.n_ctx == 131072
    assert f.rope_theta == 500000.0
    assert f.rope_scaling == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    assert f.attention == "GQA" and f.group_size == 4 and f.d_head == 128


def test_llama_31_70b_and_405b():
    f = facts("meta-llama/Llama-3.1-70B")
    assert (f.d_model, f.n_layers, f.n_heads, f.n_key_value_heads, f.d_mlp) == (
        8192, 80, 64, 8, 28672)
    f = facts("meta-llama/Llama-3.1-405B")
    assert (f.d_model, f.n_layers, f.n_heads, f.n_key_value_heads, f.d_mlp) == (
        16384, 126, 128, 8, 53248)
    assert f.rope_scaling["factor"] == 8.0


@pytest.mark.parametrize("name", ["meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B"])
def test_llama_32_small_models_scale_rope_by_32(name):
    f = facts(name)
    assert f.rope_type == "llama3"
    assert f.rope_scaling["factor"] == 32.0
    assert f.rope_scaling["original_max_position_embeddings"] == 8192


def test_llama_3_8b_has_unscaled_rope_from_null_rope_scaling():
    assert raw("meta-llama/Meta-Llama-3-8B")["rope_scaling"] is None
    f = facts("meta-llama/Meta-Llama-3-8B")
    assert f.rope_scaling is None and f.rope_type == "default" and f.n_ctx == 8192


def _llama_params(cfg: dict) -> int:
    """Parameters of a Llama-style decoder (embed, per layer q/k/v/o + gated MLP + 2 RMSNorms,
    final norm, untied unembed), written from the architecture, biases for Qwen2's q/k/v."""
    d, v, f = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    h = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", h)
    dh = cfg.get("head_dim", d // h)
    attn = d * h * dh + 2 * d * kv * dh + h * dh * d
    if cfg["model_type"] == "qwen2":
        attn += h * dh + 2 * kv * dh
    layer = attn + 3 * d * f + 2 * d
    embed = v * d * (1 if cfg.get("tie_word_embeddings") else 2)
    return embed + cfg["num_hidden_layers"] * layer + d


@pytest.mark.parametrize("name", [n for n in REQUIRED if raw(n)["model_type"] in
                                  ("llama", "mistral", "qwen2")])
def test_n_params_equals_the_llama_formula(name):
    assert facts(name).n_params == _llama_params(raw(name))


def test_n_params_match_published_counts():
    # Published: Llama 3.1 8B has 8.03B parameters; GPT-2 small 124,439,808 (124M);
    # Llama 3.2 11B Vision 10.6B (text decoder, cross-attention and vision tower together).
    assert facts("meta-llama/Llama-3.1-8B").n_params == 8_030_261_248
    assert facts("openai-community/gpt2").n_params == 124_439_808
    assert 10.6e9 < facts("meta-llama/Llama-3.2-11B-Vision").n_params < 10.7e9


def test_gpt2_layernorm_learned_positions_and_no_kv_key():
    cfg = raw("openai-community/gpt2")
    assert "num_key_value_heads" not in cfg
    f = facts("openai-community/gpt2")
    assert (f.normalization, f.positional_embedding, f.act_fn) == (
        "LayerNorm", "learned absolute", "gelu_new")
    assert f.n_key_value_heads == f.n_heads == 12 and f.attention == "MHA"
    assert f.d_mlp == 4 * f.d_model == 3072 and f.n_ctx == 1024
    assert f.rope_theta is None and f.rope_type is None


def test_gemma_activation_head_dim_and_mqa():
    from transformers import GemmaConfig

    # The released Gemma configs say "gelu"; the model computes the tanh approximation.
    legacy = raw("google/gemma-2b")["hidden_act"]
    assert facts("google/gemma-2b").act_fn == GemmaConfig(hidden_act=legacy).hidden_act
    assert facts("google/gemma-2-9b").act_fn == raw("google/gemma-2-9b")["hidden_activation"]
    g2 = facts("google/gemma-2b")
    assert g2.n_key_value_heads == 1 and g2.attention == "MQA" and g2.group_size == 8
    g7 = facts("google/gemma-7b")  # head_dim 256 is not d_model / n_heads = 192
    assert g7.d_head == 256 != g7.d_model // g7.n_heads


@pytest.mark.parametrize("name", ["meta-llama/Llama-3.2-11B-Vision",
                                  "meta-llama/Llama-3.2-90B-Vision"])
def test_mllama_text_and_vision_facts_stay_apart(name):
    cfg = raw(name)
    text, vis = cfg["text_config"], cfg["vision_config"]
    f = facts(name)
    assert f.architecture == "MllamaForConditionalGeneration"
    # Keys repeated in both sub-configs must come from the text decoder...
    assert (f.d_model, f.n_layers, f.d_mlp, f.act_fn) == (
        text["hidden_size"], text["num_hidden_layers"], text["intermediate_size"],
        text["hidden_act"])
    assert f.cross_attention_layers == tuple(text["cross_attention_layers"])
    # ... and the vision tower's from vision_config.
    assert f.vision["d_model"] == vis["hidden_size"] == 1280 != f.d_model
    assert f.vision["n_layers"] == vis["num_hidden_layers"] == 32 != f.n_layers
    assert f.vision["n_heads"] == vis["attention_heads"] == 16
    assert f.vision["d_mlp"] == vis["intermediate_size"] == 5120
    assert f.vision["n_global_layers"] == 8 and f.vision["d_head"] == 80
    assert f.rope_type == "llama3" and f.rope_scaling["factor"] == 8.0


def test_mllama_11b_shape():
    f = facts("meta-llama/Llama-3.2-11B-Vision")
    assert (f.d_model, f.n_layers, f.n_heads, f.n_key_value_heads) == (4096, 40, 32, 8)
    assert f.cross_attention_layers == (3, 8, 13, 18, 23, 28, 33, 38)
    assert len(facts("meta-llama/Llama-3.2-90B-Vision").cross_attention_layers) == 20


def test_config_without_kv_heads_reports_n_heads():
    cfg = raw("meta-llama/Llama-3.1-8B")
    del cfg["num_key_value_heads"]
    f = facts(cfg, count_params=False)
    assert f.n_key_value_heads == f.n_heads == 32 and f.attention == "MHA"
    assert f.n_params is None


@pytest.mark.parametrize("scaling,expected", [
    ({"type": "linear", "factor": 2.0}, {"rope_type": "linear", "factor": 2.0}),
    ({"type": "dynamic", "factor": 4.0}, {"rope_type": "dynamic", "factor": 4.0}),
    ({"rope_type": "default"}, None),
    (None, None),
])
def test_legacy_and_null_rope_scaling(scaling, expected):
    cfg = dict(raw("mistralai/Mistral-7B-v0.1"), rope_scaling=scaling)
    f = facts(cfg, count_params=False)
    assert f.rope_scaling == expected
    assert f.rope_theta == 10000.0
    assert f.rope_type == (expected or {}).get("rope_type", "default")


def test_transformers5_rope_parameters_and_config_objects():
    from transformers import AutoConfig

    demo = json.loads((CONFIGS.parent / "demo" / "config.json").read_text())
    f = facts("demo", count_params=False)
    params = demo["rope_parameters"]
    assert f.rope_theta == params["rope_theta"]
    assert f.rope_scaling["rope_type"] == params["rope_type"]
    assert f.rope_scaling["factor"] == params["factor"]
    # A PretrainedConfig (transformers 5 rewrites the legacy keys) gives the same facts.
    cfg = raw("meta-llama/Llama-3.1-8B")
    obj = AutoConfig.for_model(cfg.pop("model_type"), **{k: v for k, v in cfg.items()
                                                          if not k.startswith("_")})
    a, b = facts(obj), facts("meta-llama/Llama-3.1-8B")
    for field in ("d_model", "n_layers", "n_heads", "n_key_value_heads", "d_mlp", "n_ctx",
                  "rope_theta", "rope_type", "n_params"):
        assert getattr(a, field) == getattr(b, field), field
    assert a.rope_scaling["factor"] == 8.0


def test_unknown_name_is_a_clear_error_listing_the_catalogue(no_network):
    with pytest.raises(ModelNotFoundError) as err:
        facts("meta-llama/Llama-9-1T")
    msg = str(err.value)
    assert "'meta-llama/Llama-9-1T'" in msg
    assert all(n in msg for n in REQUIRED)
    with pytest.raises(TypeError, match="not int"):
        facts(42)


def test_model_table_has_one_row_per_model_with_kv_heads():
    table = model_table()
    assert list(table.index[:len(catalogue())]) == list(catalogue())
    assert {"n_heads", "n_key_value_heads", "attention", "rope_type", "n_params"} <= set(
        table.columns)
    for name in REQUIRED:
        f = facts(name)
        assert table.loc[name, "n_key_value_heads"] == f.n_key_value_heads
        assert table.loc[name, "attention"] == f.attention
    assert table.loc["openai-community/gpt2", "n_key_value_heads"] == 12
    small = lensnb.model_table(["google/gemma-2b", "meta-llama/Llama-3.1-8B"])
    assert list(small.index) == ["google/gemma-2b", "meta-llama/Llama-3.1-8B"]
    assert list(small["attention"]) == ["MQA", "GQA"]
