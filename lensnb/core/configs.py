"""Hugging Face configs from dicts, and models built from them on the ``meta`` device (every
shape, no memory for weights). ``facts`` counts parameters this way; ``hook_shapes`` runs them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from .errors import InputError, UnsupportedArchitectureError

# Keys a Hub config carries that are not arguments of its config class.
_NOT_ARGS = ("_name_or_path", "transformers_version", "model_type")


def hf_config(cfg: dict) -> Any:
    """A ``PretrainedConfig`` from a config dict (``model_type`` picks the class)."""
    from transformers import AutoConfig

    cfg = copy.deepcopy(cfg)
    model_type = cfg.get("model_type")
    if model_type is None:
        raise InputError("the config has no 'model_type', so transformers cannot build it")
    for key in _NOT_ARGS:
        cfg.pop(key, None)
    with quiet():
        return AutoConfig.for_model(model_type, **cfg)


def meta_model(config: Any, *, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """The Hugging Face model of ``config`` on the meta device (no weights allocated), with
    eager attention as lensnb always uses.

    The class is the config's ``architectures[0]`` when transformers has it (so Mllama gets its
    vision tower), else ``AutoModelForCausalLM``, else ``AutoModel``.
    """
    import transformers
    from transformers import AutoModel, AutoModelForCausalLM

    archs = getattr(config, "architectures", None) or []
    builders = [getattr(transformers, a)._from_config for a in archs[:1]
                if hasattr(transformers, a)]
    builders += [AutoModelForCausalLM.from_config, AutoModel.from_config]
    kwargs: dict[str, Any] = {"attn_implementation": "eager"}
    if dtype is not None:
        kwargs["dtype"] = dtype
    errors = []
    with torch.device("meta"), quiet():
        for build in builders:
            try:
                return build(config, **kwargs).eval()
            except (ValueError, KeyError, TypeError) as e:
                errors.append(f"{build.__qualname__}: {e}")
    raise UnsupportedArchitectureError(f"transformers cannot build a {config.model_type!r} model: "
                                       + "; ".join(errors))


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence transformers/TransformerLens chatter about a model that has no weights."""
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


