"""Rotary position embeddings: one source of truth for RoPE frequencies, angles and usage.

Frequencies come from transformers' own initialisation functions (``ROPE_INIT_FUNCTIONS`` in
``transformers.modeling_rope_utils``, and the model's ``compute_default_rope_parameters`` for
unscaled RoPE), so they are bit-for-bit what the model uses, for every rope type: ``default``,
``linear``, ``dynamic``, ``yarn``, ``longrope`` and ``llama3`` (Llama 3.1 / 3.2).

Angles for long contexts. A model computes ``position * inv_freq`` in float32; at position
131071 the product reaches ~1.3e5 rad, where float32 values are 2**-7 apart, so the angle can be
off by up to 2**-8 ~ 4e-3 rad before ``cos`` even sees it (up to ~3e-2 rad at 1M tokens). lensnb
instead forms the product in float64 (exact to ~2e-9 rad below 2**24 positions), reduces it into
[-pi, pi) in float64, and only then rounds. Stated and tested bound (positions < 2**24 =
16,777,216), against a 50-digit reference built from the model's own float32 frequencies:

    |angle error| <= 1.25e-7 rad (half a float32 ulp at pi, 1.19e-7, plus the float64 part)
    |cos/sin error| <= 6e-8 (measured: at most 1.18e-7 rad and 3.0e-8)

``precision_table`` shows what products in float32, bfloat16 and float16 give instead.
Measured on Llama 3.1 8B (max over the 64 pairs; angle error in rad, mod 2 pi):

    position     lensnb     float32 product   bfloat16 product   float16 product
    131,071      1.2e-7     2.1e-3            3.1 (any angle)    inf (cos NaN)
    1,048,575    1.2e-7     2.4e-2            2.9 (any angle)    inf (cos NaN)

bfloat16 keeps 8 significant bits, so positions themselves are rounded (131,000 and 131,071 both
become 131,072) and products keep ~3 digits; float16 overflows to ``inf`` past 65,504::

    >>> lensnb.rope.precision_table("meta-llama/Llama-3.1-8B", positions=[131071])
    >>> lensnb.rope.naive_angles("meta-llama/Llama-3.1-8B", [131000, 131071], torch.bfloat16)

Every function takes a ``Lens``, a ``PretrainedConfig``, a config dict, a catalogue name
(``"meta-llama/Llama-3.1-8B"``) or a path, like ``lensnb.facts``. Multimodal configs (Mllama)
use their text decoder's RoPE.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ..core.errors import InputError, InputTypeError, UnsupportedFeatureError
from ..core.facts import config_dict, unwrap_lens

if TYPE_CHECKING:
    from transformers import PretrainedConfig

    from ..lens import Lens

ConfigLike = Any  # a Lens, a PretrainedConfig, a dict, a catalogue name or a path
Positions = int | Sequence[int] | range | torch.Tensor | np.ndarray

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3")
REGIONS = ("high-frequency kept", "smoothed", "low-frequency scaled")
UNSCALED = "unscaled"
ANGLE_BOUND = 1.25e-7  # rad: claimed float32 error of `angles` for positions < 2**24 (tested)
COS_SIN_BOUND = 6e-8  # claimed float32 error of `cos_sin` for positions < 2**24 (tested)
MAX_EXACT_POSITION = 2**24
NO_ROPE_INSTEAD = (
    "the model places tokens without rotary embeddings (GPT-2: learned absolute positions), so "
    "it has no RoPE frequencies to show; lensnb.long_context_profile(lens, text) shows how far "
    "its heads look, and lensnb.RopeSpectrum('meta-llama/Llama-3.1-8B') a RoPE model's spectrum")
_ROPE_KEYS = ("rope_theta", "rope_type", "factor", "low_freq_factor", "high_freq_factor",
              "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor",
              "short_factor", "long_factor", "mscale", "mscale_all_dim", "truncate",
              "partial_rotary_factor")


# ---------------------------------------------------------------------------------- configs
def rope_config(config_or_lens: ConfigLike, *, layer_type: str | None = None,
                **rope_overrides: Any) -> PretrainedConfig:
    """A transformers config (text decoder) with standardised ``rope_parameters``.

    Legacy forms are accepted: top-level ``rope_theta``, ``rope_scaling`` with ``type`` instead
    of ``rope_type``, ``rope_scaling: null`` or no scaling key at all. ``rope_overrides`` set keys
    of ``rope_parameters`` (``rope_theta=1e6``, ``rope_type="llama3"``, ``factor=16``, ...).
    Models with RoPE parameters per layer type (Gemma 3: ``full_attention`` theta 1e6,
    ``sliding_attention`` 1e4) get those of ``layer_type`` (default: ``"full_attention"``).
    """
    from transformers import PretrainedConfig

    config_or_lens = unwrap_lens(config_or_lens)
    if isinstance(config_or_lens, PretrainedConfig):
        cfg = copy.deepcopy(config_or_lens.get_text_config())
    else:
        _, data = config_dict(config_or_lens)
        cfg = _from_dict(data)
    if not getattr(cfg, "rope_parameters", None):
        raise UnsupportedFeatureError(
            f"{getattr(cfg, 'model_type', 'this model')!r} has no rotary position embedding (its "
            f"config has no rope_parameters / rope_theta): {NO_ROPE_INSTEAD}")
    cfg.standardize_rope_params()
    _one_layer_type(cfg, layer_type)
    unknown = set(rope_overrides) - set(_ROPE_KEYS)
    if unknown:
        raise InputTypeError(f"unknown RoPE parameter(s) {sorted(unknown)}; allowed: {_ROPE_KEYS}")
    if rope_overrides:
        params = dict(cfg.rope_parameters)
        params.pop("type", None)
        params.update({k: v for k, v in rope_overrides.items() if v is not None})
        if "original_max_position_embeddings" in params:
            params["original_max_position_embeddings"] = int(
                params["original_max_position_embeddings"])
        cfg.rope_parameters = params
        cfg.standardize_rope_params()
    rope_type = cfg.rope_parameters.get("rope_type", "default")
    if rope_type not in ROPE_TYPES:
        raise UnsupportedFeatureError(f"unsupported rope_type {rope_type!r}; lensnb supports "
                                      f"{ROPE_TYPES}")
    return cfg


def _one_layer_type(cfg: PretrainedConfig, layer_type: str | None) -> None:
    """Flatten per-layer-type ``rope_parameters`` to those of ``layer_type`` (in place)."""
    params = cfg.rope_parameters
    nested = bool(params) and all(isinstance(v, dict) for v in params.values())
    if not nested:
        if layer_type is not None:
            raise InputError(f"layer_type={layer_type!r}: this model has one set of RoPE "
                             "parameters for every layer")
        return
    choice = layer_type or ("full_attention" if "full_attention" in params else next(iter(params)))
    if choice not in params:
        raise InputError(f"unknown layer_type {choice!r}; this model's are {sorted(params)}")
    cfg.rope_parameters = dict(params[choice])
    cfg.layer_types = None  # flat from here on: one layer type's parameters


def _from_dict(data: dict) -> PretrainedConfig:
    from transformers import AutoConfig, LlamaConfig

    data = dict(data)
    if isinstance(data.get("text_config"), dict):  # Mllama & co: the text decoder's RoPE
        parent = data.get("model_type")
        data = dict(data["text_config"])
        data.setdefault("model_type", f"{parent}_text_model" if parent else "llama")
    for key in ("_name_or_path", "architectures", "transformers_version", "auto_map"):
        data.pop(key, None)
    model_type = data.pop("model_type", None)
    try:
        return AutoConfig.for_model(model_type, **data) if model_type else LlamaConfig(**data)
    except (ValueError, KeyError):  # a model type this transformers does not know
        return LlamaConfig(**data)


def _rope_type(cfg: PretrainedConfig) -> str:
    return cfg.rope_parameters.get("rope_type", "default")


@functools.lru_cache(maxsize=32)
def _default_init(model_type: str) -> Any:
    """The model's own ``compute_default_rope_parameters`` (Llama's if it has none)."""
    from transformers.models.auto.configuration_auto import model_type_to_module_name
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    try:
        name = model_type_to_module_name(model_type)
        module = importlib.import_module(f"transformers.models.{name}.modeling_{name}")
    except (ImportError, ValueError, KeyError):
        return LlamaRotaryEmbedding.compute_default_rope_parameters
    for attr in dir(module):
        cls = getattr(module, attr)
        if attr.endswith("RotaryEmbedding") and hasattr(cls, "compute_default_rope_parameters"):
            fn = cls.compute_default_rope_parameters
            if "layer_type" in inspect.signature(fn).parameters:
                # Gemma 3's reads rope_parameters[layer_type]; rope_config made them flat, and
                # the formula is Llama's (theta ** -(2i / d_head))
                break
            return fn
    return LlamaRotaryEmbedding.compute_default_rope_parameters


def _init(cfg: PretrainedConfig, seq_len: int | None) -> tuple[torch.Tensor, float]:
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    rope_type = _rope_type(cfg)
    fn = _default_init(cfg.model_type) if rope_type == "default" else ROPE_INIT_FUNCTIONS[rope_type]
    if seq_len is not None:  # the forward pass passes max(position_ids) + 1 as a tensor
        seq_len = torch.tensor(int(seq_len), dtype=torch.int64)
    inv, scaling = fn(cfg, device=torch.device("cpu"), seq_len=seq_len)
    return inv.to(torch.float32), float(scaling)


# ------------------------------------------------------------------------------ frequencies
def inv_freq(config_or_lens: ConfigLike, *, seq_len: int | None = None,
             **rope_overrides: Any) -> torch.Tensor:
    """The model's inverse frequencies, float32 ``[d_head/2]`` (``[rotary_dim/2]``), rad/token.

    Pair ``i`` rotates dims ``(i, i + d_head/2)`` (transformers' ``rotate_half`` layout).
    ``seq_len`` matters only for ``dynamic`` (NTK base grows with it) and ``longrope`` (long
    factors past the original context), exactly as the model switches in its forward pass.
    """
    return _init(rope_config(config_or_lens, **rope_overrides), seq_len)[0]


def attention_scaling(config_or_lens: ConfigLike, *, seq_len: int | None = None,
                      **rope_overrides: Any) -> float:
    """The factor transformers multiplies cos/sin by (1 except for yarn and longrope)."""
    return _init(rope_config(config_or_lens, **rope_overrides), seq_len)[1]


def base_inv_freq(config_or_lens: ConfigLike, **rope_overrides: Any) -> torch.Tensor:
    """Unscaled frequencies ``theta ** (-2i/d)`` with the same theta and rotary dims, ``[d/2]``."""
    cfg = rope_config(config_or_lens, **rope_overrides)
    if _rope_type(cfg) == "default":
        return _init(cfg, None)[0]
    params = {k: v for k, v in cfg.rope_parameters.items()
              if k in ("rope_theta", "partial_rotary_factor")}
    cfg.rope_parameters = {**params, "rope_type": "linear", "factor": 1.0}
    return _init(cfg, None)[0]


def scaling_factor(config_or_lens: ConfigLike, **rope_overrides: Any) -> float:
    """The context-extension ``factor`` (1 for unscaled RoPE)."""
    cfg = rope_config(config_or_lens, **rope_overrides)
    params = cfg.rope_parameters
    if _rope_type(cfg) == "default":
        return 1.0
    factor = params.get("factor")
    if factor is None and params.get("original_max_position_embeddings"):
        factor = cfg.max_position_embeddings / params["original_max_position_embeddings"]
    return float(factor or 1.0)


def spectrum(config_or_lens: ConfigLike, *, seq_len: int | None = None,
             **rope_overrides: Any) -> pd.DataFrame:
    """One row per rotary pair: frequencies, wavelengths, region and smoothing weight.

    Columns: ``pair``, ``dims`` (the two head dims it rotates), ``base_inv_freq``
    (``theta ** (-2i/d)``), ``inv_freq`` (what the model uses), ``base_wavelength`` and
    ``wavelength`` (tokens per turn, ``2 pi / f``), ``scale`` (``base / scaled``), ``region``
    and ``smooth``: the weight ``s`` in ``f' = (1 - s) f / factor + s f`` solved from the
    model's own frequencies (for llama3 this is Meta's smoothing factor, clipped to [0, 1];
    1 = kept, 0 = fully divided by ``factor``). Regions: ``high-frequency kept``, ``smoothed``,
    ``low-frequency scaled``; ``unscaled`` for plain RoPE.
    """
    cfg = rope_config(config_or_lens, **rope_overrides)
    scaled = _init(cfg, seq_len)[0].double()  # [n_pairs]
    base = base_inv_freq(cfg).double()  # [n_pairs]
    factor = scaling_factor(cfg)
    n = scaled.shape[0]
    if _rope_type(cfg) == "default" or factor == 1.0:
        smooth = np.ones(n)
        region = [UNSCALED if _rope_type(cfg) == "default" else REGIONS[0]] * n
    else:
        smooth = ((scaled / base - 1.0 / factor) / (1.0 - 1.0 / factor)).numpy()
        smooth = np.clip(np.where(np.abs(smooth - np.rint(smooth)) < 1e-5, np.rint(smooth),
                                  smooth), 0.0, 1.0)
        region = [REGIONS[0] if s == 1.0 else REGIONS[2] if s == 0.0 else REGIONS[1]
                  for s in smooth]
    return pd.DataFrame({
        "pair": np.arange(n),
        "dims": [f"({i}, {i + n})" for i in range(n)],
        "base_inv_freq": base.numpy(),
        "inv_freq": scaled.numpy(),
        "base_wavelength": (2 * math.pi / base).numpy(),
        "wavelength": (2 * math.pi / scaled).numpy(),
        "scale": (base / scaled).numpy(),
        "region": region,
        "smooth": smooth,
    })


def llama3_bands(config_or_lens: ConfigLike, **rope_overrides: Any) -> dict[str, float] | None:
    """Wavelength thresholds of Llama 3.1 scaling (tokens), or ``None`` for other rope types.

    ``{"high_freq_wavelen": orig / high_freq_factor, "low_freq_wavelen": orig / low_freq_factor,
    "original_context": orig}``: shorter wavelengths are kept, longer ones divided by ``factor``.
    """
    cfg = rope_config(config_or_lens, **rope_overrides)
    if _rope_type(cfg) != "llama3":
        return None
    p = cfg.rope_parameters
    orig = float(p["original_max_position_embeddings"])
    return {"high_freq_wavelen": orig / p["high_freq_factor"],
            "low_freq_wavelen": orig / p["low_freq_factor"], "original_context": orig}


def original_context(config_or_lens: ConfigLike, **rope_overrides: Any) -> int:
    """The pre-training context (``original_max_position_embeddings``, else the max context)."""
    cfg = rope_config(config_or_lens, **rope_overrides)
    orig = cfg.rope_parameters.get("original_max_position_embeddings")
    return int(orig or cfg.max_position_embeddings)


# ----------------------------------------------------------------------------------- angles
def _positions(positions: Positions) -> torch.Tensor:
    pos = torch.as_tensor(np.asarray(positions) if not isinstance(positions, torch.Tensor)
                          else positions)
    if pos.is_floating_point():
        if not torch.equal(pos, pos.round()):
            raise InputError("positions must be whole numbers (token indices)")
        pos = pos.to(torch.int64)
    if pos.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise InputTypeError(f"positions must be integers, got {pos.dtype}")
    if pos.numel() and int(pos.min()) < 0:
        raise InputError("positions must be >= 0")
    return pos.to(torch.int64)


def angles(config_or_lens: ConfigLike, positions: Positions, *, dtype: torch.dtype = torch.float32,
           wrap: bool = True, seq_len: int | None = None, **rope_overrides: Any) -> torch.Tensor:
    """Rotation angles ``position * inv_freq``, shape ``[*positions.shape, d_head/2]``.

    The product is formed in float64 from the model's float32 frequencies (exact to ~2e-9 rad
    below 2**24 positions), then (``wrap=True``) reduced into [-pi, pi) before casting to
    ``dtype``. In float32 the error is at most 1.25e-7 rad (``ANGLE_BOUND``) for any position
    below 2**24; ``wrap=False`` returns raw angles (use ``dtype=torch.float64`` then).
    ``seq_len`` defaults to ``max(positions) + 1``, as the model's forward pass does.
    """
    pos = _positions(positions)
    if seq_len is None and pos.numel():
        seq_len = int(pos.max()) + 1
    freqs = inv_freq(config_or_lens, seq_len=seq_len, **rope_overrides).double()
    theta = pos.double()[..., None] * freqs  # [*pos, n_pairs]
    if wrap:
        theta = torch.remainder(theta + math.pi, 2 * math.pi) - math.pi
    return theta.to(dtype)


def cos_sin(config_or_lens: ConfigLike, positions: Positions, *,
            dtype: torch.dtype = torch.float32, seq_len: int | None = None,
            **rope_overrides: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)`` exactly as the model lays them out, each ``[*positions.shape, d_head]``.

    Layout: ``cat(freqs, freqs)`` (pair ``i`` at dims ``i`` and ``i + d_head/2``), multiplied by
    ``attention_scaling`` (yarn/longrope). Computed in float64 and rounded once to ``dtype``:
    error <= 6e-8 in float32 (``COS_SIN_BOUND``) for positions below 2**24.
    """
    pos = _positions(positions)
    if seq_len is None and pos.numel():
        seq_len = int(pos.max()) + 1
    cfg = rope_config(config_or_lens, **rope_overrides)
    freqs, scale = _init(cfg, seq_len)
    theta = angles(cfg, pos, dtype=torch.float64, wrap=True, seq_len=seq_len)
    theta = torch.cat((theta, theta), dim=-1)  # [*pos, d_head]
    return (theta.cos() * scale).to(dtype), (theta.sin() * scale).to(dtype)


def naive_angles(config_or_lens: ConfigLike, positions: Positions, dtype: torch.dtype, *,
                 seq_len: int | None = None, **rope_overrides: Any) -> torch.Tensor:
    """What ``position.to(dtype) * inv_freq.to(dtype)`` gives, as float64 ``[*pos, d/2]``.

    Shows how low-precision products go wrong: bf16 has 8 significant bits, so positions past
    256 are rounded (131071 -> 131072) and every product loses all but ~3 digits; fp16 overflows
    to ``inf`` past 65504. Compare with ``angles`` (or see ``precision_table``).
    """
    pos = _positions(positions)
    if seq_len is None and pos.numel():
        seq_len = int(pos.max()) + 1
    freqs = inv_freq(config_or_lens, seq_len=seq_len, **rope_overrides)
    return (pos.to(dtype)[..., None] * freqs.to(dtype)).double()


def _wrapped_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``|a - b|`` as angles (mod 2 pi), float64; ``inf`` where ``a`` is not finite."""
    d = torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi
    return torch.where(torch.isfinite(a), d.abs(), torch.full_like(d, math.inf))


def precision_table(config_or_lens: ConfigLike,
                    positions: Sequence[int] = (4095, 32767, 65535, 131071, 1_048_575),
                    dtypes: Sequence[torch.dtype] = (torch.float32, torch.bfloat16,
                                                     torch.float16),
                    **rope_overrides: Any) -> pd.DataFrame:
    """Max angle and cos errors per position: lensnb's angles vs naive products in ``dtypes``.

    The reference is the float64 product of the model's float32 frequencies (error ~1e-9 rad
    here). Each naive product is then taken through ``cos`` in float32, as a model would.
    Rows: ``position``, ``method`` (``lensnb`` or ``<dtype> product``), ``max_angle_error``
    (rad, mod 2 pi; ``inf`` if the product overflowed), ``max_cos_error`` (NaN if it did).
    """
    cfg = rope_config(config_or_lens, **rope_overrides)
    rows = []
    for p in positions:
        exact = angles(cfg, [p], dtype=torch.float64, wrap=False)[0]  # [n_pairs]
        ref_cos = exact.cos()
        ours = angles(cfg, [p])[0].double()  # float32 angles
        ours_cos = cos_sin(cfg, [p])[0][0, : exact.shape[0]].double()  # float32 cos
        rows.append({"position": p, "method": "lensnb",
                     "max_angle_error": _wrapped_diff(ours, exact).max().item(),
                     "max_cos_error": (ours_cos / attention_scaling(cfg, seq_len=p + 1)
                                       - ref_cos).abs().max().item()})
        for dt in dtypes:
            naive = naive_angles(cfg, [p], dt, seq_len=p + 1)[0]
            cos = naive.to(torch.float32).cos().double()  # the model's cos of its product
            rows.append({"position": p, "method": f"{str(dt).removeprefix('torch.')} product",
                         "max_angle_error": _wrapped_diff(naive, exact).max().item(),
                         "max_cos_error": (cos - ref_cos).abs().max().item()})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ decay curve
def decay_curve(config_or_lens: ConfigLike, distances: Positions | None = None, *,
                scaled: bool = True, **rope_overrides: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE's long-range decay: ``(distances [n], score [n])``.

    ``score(d) = mean_i cos(d * f_i)``: the attention logit between unit query and key vectors
    that are equal and spread evenly over the pairs, ``d`` tokens apart (1 at ``d = 0``).
    ``scaled=False`` uses the unscaled frequencies ``theta ** (-2i/d)``. ``distances`` default
    to 400 log-spaced values from 1 to 4x the model's maximum context.
    """
    cfg = rope_config(config_or_lens, **rope_overrides)
    if distances is None:
        top = 4 * max(cfg.max_position_embeddings, original_context(cfg))
        distances = np.unique(np.rint(np.geomspace(1, top, 400)).astype(np.int64))
    dist = _positions(distances)
    freqs = (inv_freq(cfg) if scaled else base_inv_freq(cfg)).double()  # [n_pairs]
    theta = dist.double()[..., None] * freqs  # [n, n_pairs]
    return dist, torch.cos(torch.remainder(theta, 2 * math.pi)).mean(-1)


# ----------------------------------------------------------------- per-head frequency usage
def require_usage(lens: Lens) -> None:
    """Raise ``UnsupportedFeatureError`` up front where per-head frequency usage does not apply:
    a model without RoPE (GPT-2), or with layers that have none (Llama 3.2 Vision's
    cross-attention layers). Partial rotary (GPT-NeoX, Phi-3) applies: its rotated pairs."""
    feature = "per-head RoPE frequency usage (rope.frequency_usage, RopeSpectrum(lens, text=...))"
    if not lens.capabilities.rope:
        lens.require("rope", feature, NO_ROPE_INSTEAD)
    lens.require(
        "rope_frequency_usage", feature,
        "use it on lens.text_only(), the language model alone (its layers are this model's "
        f"self-attention layers {lens.self_attention_layers}, renumbered from 0); "
        "RopeSpectrum(lens) without text shows the spectrum")


def frequency_usage(lens: Lens, text: Any, *, which: str = "q", rotated: bool = False,
                    start: int = 0) -> torch.Tensor:
    """How much of each head's query (or key) squared norm lives in each rotary pair.

    Returns ``[n_layers, n_heads, rotary_dim/2]`` for ``which="q"`` (``n_key_value_heads`` for
    ``"k"``); each row sums to 1, or, with partial rotary (GPT-NeoX, Phi-3: only the first
    ``rotary_dim`` of ``d_head`` dims rotate), to the rotated dims' share, the rest being the
    pass-through dims'. Pair ``i`` is dims ``(i, i + rotary_dim/2)`` (transformers'
    ``rotate_half``, not interleaved). A model without RoPE (GPT-2) raises
    ``UnsupportedFeatureError`` before anything runs. Energies are summed
    over the batch and positions ``start:`` (``start=1`` skips BOS) before dividing, so it is the
    share of the stacked queries' squared norm. Rotation keeps each pair's norm, so
    ``rotated=True`` (``hook_rot_q``) gives the same numbers up to float error, except for an
    ``attention_scaling`` that is not 1.
    High-frequency pairs (small ``i``) carry position; low-frequency pairs carry content.
    On the CPU (for plots and tables), whatever device the model runs on.
    """
    if which not in ("q", "k"):
        raise InputError(f"which must be 'q' (query heads) or 'k' (key/value heads), not {which!r}")
    require_usage(lens)
    n_pairs = inv_freq(lens).shape[0]
    short = f"attn.hook_{'rot_' if rotated else ''}{which}"
    names = [lens.hook_name(short, layer) for layer in range(lens.n_layers)]
    _, cache = lens.run_with_cache(text, names=names)
    out = []
    for name in names:
        x = cache[name][:, start:].double()  # [batch, pos, heads, d_head]
        if x.ndim != 4:
            raise InputError(f"{name} has shape {tuple(x.shape)}; expected [batch, pos, heads, "
                             "d_head] (per-head q/k)")
        pairs = x[..., :n_pairs] ** 2 + x[..., n_pairs:2 * n_pairs] ** 2  # [b, p, h, n_pairs]
        total = (x ** 2).sum(-1)  # [b, p, h]
        out.append(pairs.sum((0, 1)) / total.sum((0, 1)).clamp_min(1e-300)[:, None])
    return torch.stack(out).to(torch.float32).cpu()  # [n_layers, heads, n_pairs]


__all__ = [
    "ANGLE_BOUND", "COS_SIN_BOUND", "REGIONS", "ROPE_TYPES", "angles", "attention_scaling",
    "base_inv_freq", "cos_sin", "decay_curve", "frequency_usage", "inv_freq", "llama3_bands",
    "naive_angles", "original_context", "precision_table", "rope_config", "scaling_factor",
    "spectrum",
]
