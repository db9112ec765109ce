"""Model facts from a config alone: no weights are loaded.

``facts("meta-llama/Llama-3.1-8B")`` reads the shipped catalogue (``assets/configs/``), a local
directory, a model in the local Hugging Face cache, a config dict or a ``PretrainedConfig``.
Multimodal configs (Mllama) report their text decoder's facts, with the vision tower's facts in
``vision``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .paths import ASSETS, CONFIGS_DIR

ConfigLike = Any  # a PretrainedConfig, a dict, a catalogue name, a path, or a Lens


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """The shape of a model, read off its config. ``n_key_value_heads`` defaults to ``n_heads``."""

    name: str
    architecture: str
    n_layers: int
    d_model: int
    n_heads: int
    n_key_value_heads: int
    d_head: int
    d_mlp: int
    n_ctx: int
    act_fn: str
    normalization: str
    positional_embedding: str
    rope_theta: float | None
    rope_scaling: dict | None
    vocab_size: int
    n_params: int | None
    cross_attention_layers: tuple[int, ...] = ()
    vision: dict | None = None

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 for multi-head attention, ``n_heads`` for MQA)."""
        return self.n_heads // self.n_key_value_heads

    @property
    def attention(self) -> str:
        """``"MHA"``, ``"GQA"`` or ``"MQA"``."""
        if self.n_key_value_heads == self.n_heads:
            return "MHA"
        return "MQA" if self.n_key_value_heads == 1 else "GQA"

    def as_row(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["attention"] = self.attention
        row["rope_type"] = (self.rope_scaling or {}).get("rope_type", "default" if
                                                          self.rope_theta else None)
        row.pop("vision")
        return row


def catalogue() -> dict[str, Path]:
    """Shipped public configs: ``{"meta-llama/Llama-3.1-8B": path, ...}``."""
    out = {}
    for path in sorted(CONFIGS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        out[data.get("_name_or_path") or path.stem] = path
    return out


def _get(cfg: dict, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def _rope(cfg: dict) -> tuple[float | None, dict | None]:
    """``(theta, scaling)`` from either transformers 5's ``rope_parameters`` or legacy keys."""
    params = cfg.get("rope_parameters")
    scaling = cfg.get("rope_scaling")
    theta = cfg.get("rope_theta")
    if isinstance(params, dict) and "rope_theta" in params:
        theta = params["rope_theta"]
    if scaling is None and isinstance(params, dict):
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    if scaling:
        scaling = dict(scaling)
        if "rope_type" not in scaling and "type" in scaling:
            scaling["rope_type"] = scaling.pop("type")
        if scaling.get("rope_type") == "default" and len(scaling) == 1:
            scaling = None
    return (float(theta) if theta is not None else None), (scaling or None)


def _config_dict(config: ConfigLike) -> tuple[str, dict]:
    """``(name, config dict)`` for anything ``facts`` accepts."""
    from .lens import Lens  # local: lens imports this module

    if isinstance(config, Lens):
        config = config.hf_config
    if hasattr(config, "to_dict"):
        return getattr(config, "name_or_path", "") or config.model_type, config.to_dict()
    if isinstance(config, dict):
        return config.get("_name_or_path", config.get("model_type", "config")), dict(config)
    if isinstance(config, (str, Path)):
        name = str(config)
        cat = catalogue()
        if name in cat:
            return name, json.loads(cat[name].read_text())
        path = Path(name)
        if name in ("demo", "demo-vision"):
            from .loading import DEMOS

            path = DEMOS[name]
        if path.is_dir():
            path = path / "config.json"
        if path.is_file():
            return name, json.loads(path.read_text())
        from .loading import resolve_cached

        cached = resolve_cached(name)
        if cached is not None:
            return name, json.loads((cached / "config.json").read_text())
        raise ValueError(
            f"no config for {name!r}: it is not in the shipped catalogue ({', '.join(cat)}), "
            "not a local directory or config.json, and not in the local Hugging Face cache"
        )
    raise TypeError(
        f"facts() takes a config, a dict, a catalogue name, a path or a Lens, "
        f"not {type(config).__name__}"
    )


def _positional(cfg: dict) -> str:
    if cfg.get("model_type") in ("gpt2", "gpt_neo", "opt"):
        return "learned absolute"
    return "rotary"


def _normalization(cfg: dict) -> str:
    if "rms_norm_eps" in cfg:
        return "RMSNorm"
    if "layer_norm_epsilon" in cfg or "layer_norm_eps" in cfg:
        return "LayerNorm"
    return "unknown"


def facts(config: ConfigLike, *, count_params: bool = True) -> ModelFacts:
    """The facts of a model from its config (no weights): layers, widths, heads, KV heads, RoPE."""
    name, cfg = _config_dict(config)
    arch = (cfg.get("architectures") or [cfg.get("model_type", "unknown")])[0]
    top = cfg
    vision = None
    if isinstance(cfg.get("text_config"), dict):
        text = dict(cfg["text_config"])
        text.setdefault("model_type", cfg.get("model_type"))
        if isinstance(cfg.get("vision_config"), dict):
            v = cfg["vision_config"]
            vision = {
                "n_layers": v.get("num_hidden_layers"),
                "n_global_layers": v.get("num_global_layers"),
                "d_model": v.get("hidden_size"),
                "n_heads": v.get("attention_heads", v.get("num_attention_heads")),
                "d_mlp": v.get("intermediate_size"),
                "image_size": v.get("image_size"),
                "patch_size": v.get("patch_size"),
                "max_num_tiles": v.get("max_num_tiles"),
                "vision_output_dim": v.get("vision_output_dim"),
            }
        cfg = text
    n_heads = int(_get(cfg, "num_attention_heads", "n_head", "num_heads"))
    d_model = int(_get(cfg, "hidden_size", "n_embd", "d_model"))
    theta, scaling = _rope(cfg)
    positional = _positional(cfg)
    f = ModelFacts(
        name=str(name),
        architecture=arch,
        n_layers=int(_get(cfg, "num_hidden_layers", "n_layer", "num_layers")),
        d_model=d_model,
        n_heads=n_heads,
        n_key_value_heads=int(_get(cfg, "num_key_value_heads", default=n_heads)),
        d_head=int(_get(cfg, "head_dim", default=d_model // n_heads)),
        d_mlp=int(_get(cfg, "intermediate_size", "n_inner", default=4 * d_model)),
        n_ctx=int(_get(cfg, "max_position_embeddings", "n_positions", "n_ctx")),
        act_fn=str(_get(cfg, "hidden_activation", "hidden_act", "activation_function")),
        normalization=_normalization(cfg),
        positional_embedding=positional,
        rope_theta=theta if positional == "rotary" else None,
        rope_scaling=scaling if positional == "rotary" else None,
        vocab_size=int(_get(cfg, "vocab_size")),
        n_params=_n_params(json.dumps(top, sort_keys=True, default=str)) if count_params else None,
        cross_attention_layers=tuple(cfg.get("cross_attention_layers") or ()),
        vision=vision,
    )
    return f


@functools.lru_cache(maxsize=64)
def _n_params(config_json: str) -> int | None:
    """Count parameters by building the model on the meta device (no memory for weights)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    cfg = json.loads(config_json)
    model_type = cfg.pop("model_type", None)
    if model_type is None:
        return None
    for k in ("_name_or_path", "architectures", "transformers_version"):
        cfg.pop(k, None)
    try:
        hf_config = AutoConfig.for_model(model_type, **cfg)
    except Exception:  # an architecture this transformers does not know: facts still work
        return None
    with torch.device("meta"):
        for auto in (AutoModelForCausalLM, AutoModel):
            try:
                model = auto.from_config(hf_config)
            except (ValueError, KeyError):
                continue
            return sum(p.numel() for p in model.parameters())
    return None


def model_table(names: list[str] | None = None) -> pd.DataFrame:
    """One row per model (default: the shipped catalogue plus the demo models)."""
    if names is None:
        names = list(catalogue()) + [n for n in ("demo", "demo-vision") if _demo_exists(n)]
    rows = [facts(n).as_row() for n in names]
    cols = ["name", "architecture", "attention", "n_layers", "d_model", "n_heads",
            "n_key_value_heads", "d_head", "d_mlp", "n_ctx", "act_fn", "normalization",
            "positional_embedding", "rope_theta", "rope_type", "rope_scaling", "vocab_size",
            "n_params", "cross_attention_layers"]
    return pd.DataFrame(rows)[cols].set_index("name")


def _demo_exists(name: str) -> bool:
    from .loading import DEMOS

    return (DEMOS[name] / "config.json").is_file()


__all__ = ["ModelFacts", "facts", "model_table", "catalogue", "ASSETS"]
