"""lensnb: Jupyter-native widgets for looking inside modern transformer language models.

    import lensnb
    lens = lensnb.load("demo")                 # a Llama-3.1-style GQA model, offline
    logits, cache = lens.run_with_cache("def f(x):", names="blocks.*.attn.hook_pattern")
    lensnb.AttentionExplorer(lens, "def f(x):\\n    return f(x)")

``import lensnb`` is cheap: torch, transformers and the widgets load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None means the module itself
_EXPORTS: dict[str, tuple[str, str | None]] = {
    # backend
    "load": (".backend.loading", "load"),
    "supported_architectures": (".backend.loading", "supported_architectures"),
    "Lens": (".backend.lens", "Lens"),
    "facts": (".backend.facts", "facts"),
    "model_table": (".backend.facts", "model_table"),
    "ModelFacts": (".backend.facts", "ModelFacts"),
    "hook_shapes": (".backend.meta", "hook_shapes"),
    "rope": (".rope", None),
    "cached_path": (".backend.loading", "cached_path"),
    "ModelNotFoundError": (".backend.loading", "ModelNotFoundError"),
    "UnsupportedArchitectureError": (".backend.loading", "UnsupportedArchitectureError"),
    "MissingModelPackageError": (".backend.sources", "MissingModelPackageError"),
    "group_summaries": (".backend.gqa", "group_summaries"),
    "attention_patterns": (".backend.patterns", "attention_patterns"),
    "KeptQK": (".backend.patterns", "KeptQK"),
    "long_context_profile": (".backend.longcontext", "long_context_profile"),
    "LongContextProfile": (".backend.longcontext", "LongContextProfile"),
    "stdlib_tokens": (".backend.longcontext", "stdlib_tokens"),
    "PatternMemoryError": (".backend.attention_mode", "PatternMemoryError"),
    "IDENTITY_PROMPT": (".backend.patching", "IDENTITY_PROMPT"),
    "Step": (".backend.generation", "Step"),
    "patch": (".backend.hook_context", "patch"),
    "patchscope": (".backend.patching", "patchscope"),
    "save_text_only": (".backend.vision.text_only", "save_text_only"),
    "UnsupportedFeatureError": (".backend.lens", "UnsupportedFeatureError"),
    "check": (".backend.selfcheck", "check"),
    "CheckResult": (".backend.selfcheck", "CheckResult"),
    # widgets
    "AttentionExplorer": (".widgets.attention", "AttentionExplorer"),
    "RopeSpectrum": (".widgets.rope_spectrum", "RopeSpectrum"),
    "GenerationStepper": (".widgets.generation_stepper", "GenerationStepper"),
    "ImageAttention": (".widgets.image_attention", "ImageAttention"),
    # export
    "export": (".export", None),
    "save": (".export", "save"),
    "options": (".settings", "options"),
}

__all__ = [
    "AttentionExplorer", "CheckResult", "GenerationStepper", "IDENTITY_PROMPT",
    "ImageAttention", "KeptQK", "Lens", "LongContextProfile", "MissingModelPackageError",
    "ModelFacts", "ModelNotFoundError", "PatternMemoryError", "RopeSpectrum", "Step",
    "UnsupportedArchitectureError", "UnsupportedFeatureError", "attention_patterns",
    "cached_path", "check", "export", "facts", "group_summaries", "hook_shapes", "load",
    "long_context_profile", "model_table", "options", "patch", "patchscope", "rope", "save",
    "save_text_only", "stdlib_tokens", "supported_architectures",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lensnb' has no attribute {name!r}")
    module_name, attr = _EXPORTS[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from . import export, rope
    from .backend.attention_mode import PatternMemoryError
    from .backend.facts import ModelFacts, facts, model_table
    from .backend.generation import Step
    from .backend.gqa import group_summaries
    from .backend.hook_context import patch
    from .backend.lens import Lens, UnsupportedFeatureError
    from .backend.loading import (
        ModelNotFoundError,
        UnsupportedArchitectureError,
        cached_path,
        load,
        supported_architectures,
    )
    from .backend.longcontext import LongContextProfile, long_context_profile, stdlib_tokens
    from .backend.meta import hook_shapes
    from .backend.patching import IDENTITY_PROMPT, patchscope
    from .backend.patterns import KeptQK, attention_patterns
    from .backend.selfcheck import CheckResult, check
    from .backend.sources import MissingModelPackageError
    from .backend.vision.text_only import save_text_only
    from .export import save
    from .settings import options
    from .widgets.attention import AttentionExplorer
    from .widgets.generation_stepper import GenerationStepper
    from .widgets.image_attention import ImageAttention
    from .widgets.rope_spectrum import RopeSpectrum
