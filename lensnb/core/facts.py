"""Model facts from a config alone: no weights are loaded.

``facts("meta-llama/Llama-3.1-8B")`` reads the shipped catalogue (``lensnb/assets/configs/``, real
``config.json`` files from the Hugging Face Hub), a local directory or ``config.json``, a model in
the local Hugging Face cache, a config dict, a ``PretrainedConfig`` or a ``Lens``. Multimodal
configs (Mllama) report their text decoder's facts, with the vision tower's facts in ``vision``.
``n_params`` is counted on a model built on the meta device (no memory for weights).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .configs import hf_config, meta_model
from .errors import InputError, InputTypeError, ModelNotFoundError
from .kv_groups import KVGroups
from .paths import ASSETS, CONFIGS_DIR
from .sources import DEMOS, NAMED, cached_path

ConfigLike = Any  # a PretrainedConfig, a dict, a catalogue name, a path, or a Lens

# Families with learned absolute position embeddings (everything else here is rotary).
_LEARNED_POSITIONS = {"gpt2", "gpt_neo", "gpt_bigcode", "opt", "bert", "roberta"}
# Gemma's released configs say ``hidden_act: "gelu"`` but the model computes the tanh
# approximation (transformers rewrites it the same way).
_GEMMA_TYPES = {"gemma", "gemma2", "gemma3_text"}


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
    def kv_groups(self) -> KVGroups:
        """How the query heads share key/value heads (a ``KVGroups``)."""
        return KVGroups(self.n_heads, self.n_key_value_heads)

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 for multi-head attention, ``n_heads`` for MQA)."""
        return self.kv_groups.group_size

    @property
    def attention(self) -> str:
        """``"MHA"``, ``"GQA"`` or ``"MQA"``."""
        if self.n_key_value_heads == self.n_heads:
            return "MHA"
        return "MQA" if self.n_key_value_heads == 1 else "GQA"

    @property
    def rope_type(self) -> str | None:
        """``"llama3"``, ``"yarn"``... ``"default"`` for unscaled RoPE, None without RoPE."""
        if self.positional_embedding != "rotary":
            return None
        return (self.rope_scaling or {}).get("rope_type", "default")

    def as_row(self) -> dict[str, Any]:
        """A flat dict for a table row (``vision`` left out, ``attention``/``rope_type`` added)."""
        row = dataclasses.asdict(self)
        row["attention"] = self.attention
        row["rope_type"] = self.rope_type
        row.pop("vision")
        return row


def catalogue() -> dict[str, Path]:
    """Shipped public configs: ``{"meta-llama/Llama-3.1-8B": path, ...}``."""
    out = {}
    for path in sorted(CONFIGS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        out[data.get("_name_or_path") or path.stem.replace("--", "/")] = path
    return out


def _get(cfg: dict, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def _rope(cfg: dict) -> tuple[float | None, dict | None]:
    """``(theta, scaling)`` from transformers 5's ``rope_parameters`` or the Hub's legacy keys
    (``rope_theta`` + ``rope_scaling``, whose old spelling says ``type`` for ``rope_type``)."""
    params = cfg.get("rope_parameters")
    scaling = cfg.get("rope_scaling")
    theta = cfg.get("rope_theta")
    if isinstance(params, dict) and params and all(isinstance(v, dict) for v in params.values()):
        # per layer type (Gemma 3: full_attention theta 1e6, sliding_attention 1e4): the global
        # layers' parameters, with the other layer types' nested under their names
        main = params.get("full_attention") or next(iter(params.values()))
        others = {k: dict(v) for k, v in params.items() if v is not main}
        params = {**main, **others}
    if isinstance(params, dict):
        theta = params.get("rope_theta", theta)
        if scaling is None:
            scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    if scaling:
        scaling = dict(scaling)
        if "type" in scaling:
            scaling.setdefault("rope_type", scaling["type"])
            del scaling["type"]
        if scaling.get("rope_type", "default") == "default" and set(scaling) <= {"rope_type"}:
            scaling = None
    return (float(theta) if theta is not None else None), (scaling or None)


def unwrap_lens(obj: Any) -> Any:
    """A ``Lens``'s Hugging Face config; anything else unchanged (core cannot import ``Lens``,
    which sits layers above: a lens is what has ``facts`` and ``hf_config``)."""
    if hasattr(obj, "facts") and hasattr(obj, "hf_config"):
        return obj.hf_config
    return obj


def config_dict(config: ConfigLike) -> tuple[str, dict]:
    """``(name, config dict)`` for anything ``facts`` accepts."""
    config = unwrap_lens(config)
    if hasattr(config, "to_dict"):
        return getattr(config, "name_or_path", "") or config.model_type, config.to_dict()
    if isinstance(config, dict):
        return config.get("_name_or_path") or config.get("model_type", "config"), dict(config)
    if isinstance(config, (str, Path)):
        return _named_config(str(config))
    raise InputTypeError(
        f"facts() takes a config, a dict, a catalogue name, a path or a Lens, "
        f"not {type(config).__name__}"
    )




def _named_config(name: str) -> tuple[str, dict]:
    cat = catalogue()
    if name in cat:
        return name, json.loads(cat[name].read_text())
    if name in NAMED:  # the config its conversion writes, shipped: no package, no weights
        return name, json.loads(NAMED[name].config_path.read_text())
    path = DEMOS.get(name, Path(name))
    if path.is_dir():
        path = path / "config.json"
    if path.is_file():
        return name, json.loads(path.read_text())
    cached = cached_path(name)
    if cached is not None and (cached / "config.json").is_file():
        return name, json.loads((cached / "config.json").read_text())
    raise ModelNotFoundError(
        f"no config for {name!r}: it is not in lensnb's catalogue of configs "
        f"({', '.join(cat)}), not an embedded model ({', '.join(DEMOS)}), not a named model "
        f"({', '.join(NAMED)}), not a local "
        "directory or config.json, and not in the local Hugging Face cache"
    )


def _positional(cfg: dict) -> str:
    if cfg.get("model_type") in _LEARNED_POSITIONS or "n_positions" in cfg:
        return "learned absolute"
    return "rotary"


def _normalization(cfg: dict) -> str:
    if "rms_norm_eps" in cfg:
        return "RMSNorm"
    if "layer_norm_epsilon" in cfg or "layer_norm_eps" in cfg:
        return "LayerNorm"
    return "unknown"


def _act_fn(cfg: dict) -> str:
    act = str(_get(cfg, "hidden_activation", "hidden_act", "activation_function"))
    if cfg.get("model_type") in _GEMMA_TYPES and act == "gelu":
        return "gelu_pytorch_tanh"
    return act


def _vision(v: dict) -> dict:
    """The vision tower's facts (Mllama's ``vision_config`` spells heads ``attention_heads``)."""
    d_model = v.get("hidden_size")
    n_heads = _get(v, "attention_heads", "num_attention_heads")
    return {
        "n_layers": v.get("num_hidden_layers"),
        "n_global_layers": v.get("num_global_layers"),
        "d_model": d_model,
        "n_heads": n_heads,
        "d_head": d_model // n_heads if d_model and n_heads else None,
        "d_mlp": v.get("intermediate_size"),
        "act_fn": v.get("hidden_act"),
        "image_size": v.get("image_size"),
        "patch_size": v.get("patch_size"),
        "max_num_tiles": v.get("max_num_tiles"),
        "vision_output_dim": v.get("vision_output_dim"),
        "intermediate_layers_indices": tuple(v.get("intermediate_layers_indices") or ()),
    }


def facts(config: ConfigLike, *, count_params: bool = True) -> ModelFacts:
    """The facts of a model from its config (no weights): layers, widths, heads, KV heads, RoPE.

    ``count_params=False`` skips building the model on the meta device (``n_params`` is None).
    """
    name, top = config_dict(config)
    arch = (top.get("architectures") or [top.get("model_type", "unknown")])[0]
    cfg = top
    vision = None
    if isinstance(top.get("text_config"), dict):
        cfg = dict(top["text_config"])
        cfg.setdefault("model_type", top.get("model_type"))
        if isinstance(top.get("vision_config"), dict):
            vision = _vision(top["vision_config"])
    try:
        n_heads = int(_get(cfg, "num_attention_heads", "n_head", "num_heads"))
        d_model = int(_get(cfg, "hidden_size", "n_embd", "d_model"))
        n_layers = int(_get(cfg, "num_hidden_layers", "n_layer", "num_layers"))
        n_ctx = int(_get(cfg, "max_position_embeddings", "n_positions", "n_ctx"))
        vocab_size = int(_get(cfg, "vocab_size"))
    except TypeError as e:  # int(None): a key is missing
        raise InputError(f"{name!r} is not a decoder config lensnb can read: it lacks one of "
                         "hidden_size, num_attention_heads, num_hidden_layers, "
                         "max_position_embeddings, vocab_size (or their GPT-2 names)") from e
    theta, scaling = _rope(cfg)
    positional = _positional(cfg)
    return ModelFacts(
        name=str(name),
        architecture=arch,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_key_value_heads=int(_get(cfg, "num_key_value_heads", default=n_heads)),
        d_head=int(_get(cfg, "head_dim", default=d_model // n_heads)),
        d_mlp=int(_get(cfg, "intermediate_size", "n_inner", default=4 * d_model)),
        n_ctx=n_ctx,
        act_fn=_act_fn(cfg),
        normalization=_normalization(cfg),
        positional_embedding=positional,
        rope_theta=theta if positional == "rotary" else None,
        rope_scaling=scaling if positional == "rotary" else None,
        vocab_size=vocab_size,
        n_params=_n_params(json.dumps(top, sort_keys=True, default=str)) if count_params else None,
        cross_attention_layers=tuple(cfg.get("cross_attention_layers") or ()),
        vision=vision,
    )


@functools.lru_cache(maxsize=64)
def _n_params(config_json: str) -> int | None:
    """Count parameters of the model built on the meta device (tied weights counted once).
    None when this transformers cannot build the architecture (the other facts still hold)."""
    try:
        model = meta_model(hf_config(json.loads(config_json)))
    except (ValueError, KeyError, TypeError):
        return None
    return sum(p.numel() for p in model.parameters())


def model_table(names: list[str] | None = None) -> pd.DataFrame:
    """One row per model (default: the shipped catalogue, the demo models and the named
    pretrained models lensnb loads, ``"smollm2-135m"`` ...), indexed by name.

    Always shows ``n_key_value_heads`` next to ``n_heads`` and the ``attention`` kind."""
    if names is None:
        names = (list(catalogue()) + [n for n in ("demo", "demo-vision") if _demo_exists(n)]
                 + list(NAMED))
    rows = [facts(n).as_row() for n in names]
    cols = ["name", "architecture", "attention", "n_layers", "d_model", "n_heads",
            "n_key_value_heads", "d_head", "d_mlp", "n_ctx", "act_fn", "normalization",
            "positional_embedding", "rope_theta", "rope_type", "rope_scaling", "vocab_size",
            "n_params", "cross_attention_layers"]
    return pd.DataFrame(rows, columns=cols).set_index("name")


def _demo_exists(name: str) -> bool:
    return (DEMOS[name] / "config.json").is_file()


__all__ = ["ModelFacts", "facts", "model_table", "catalogue", "config_dict", "ASSETS"]
