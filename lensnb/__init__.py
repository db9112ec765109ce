"""lensnb: Jupyter-native widgets for looking inside modern transformer language models.

    import lensnb
    lens = lensnb.load("demo")                 # a Llama-3.1-style GQA model, offline
    logits, cache = lens.run_with_cache("def f(x):", names="blocks.*.attn.hook_pattern")
    lensnb.AttentionExplorer(lens, "def f(x):\\n    return f(x)")

``import lensnb`` is cheap: torch, transformers and the widgets load on first use. This module is
the public layer; the layers under it are described in docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None means the module itself
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "load": (".loading", "load"),
    "supported_architectures": (".backends.registry", "supported_architectures"),
    "Capabilities": (".backends.contract", "Capabilities"),
    "cached_path": (".core.sources", "cached_path"),
    "Lens": (".lens", "Lens"),
    "facts": (".core.facts", "facts"),
    "model_table": (".core.facts", "model_table"),
    "ModelFacts": (".core.facts", "ModelFacts"),
    "KVGroups": (".core.kv_groups", "KVGroups"),
    "hook_shapes": (".backends.meta", "hook_shapes"),
    "rope": (".rope", None),
    "group_summaries": (".core.kv_groups", "group_summaries"),
    "KVGroupView": (".analysis.kv_views", "KVGroupView"),
    "LogitAttribution": (".analysis.attribution", "LogitAttribution"),
    "attention_patterns": (".analysis.patterns", "attention_patterns"),
    "KeptQK": (".analysis.patterns", "KeptQK"),
    "long_context_profile": (".analysis.longcontext", "long_context_profile"),
    "LongContextProfile": (".analysis.longcontext", "LongContextProfile"),
    "stdlib_tokens": (".analysis.longcontext", "stdlib_tokens"),
    "logit_lens": (".analysis.logit_lens", "logit_lens"),
    "LogitLens": (".analysis.logit_lens", "LogitLens"),
    "patch": (".interventions.patch", "patch"),
    "Patch": (".interventions.patch", "Patch"),
    "HookContext": (".interventions.hook_context", "HookContext"),
    "GenerationConfig": (".interventions.generation_config", "GenerationConfig"),
    "Generation": (".interventions.generation_results", "Generation"),
    "Step": (".interventions.generation_results", "Step"),
    "LogitLensStep": (".interventions.generation_results", "LogitLensStep"),
    "patchscope": (".interventions.patchscope", "patchscope"),
    "PatchscopeResult": (".interventions.patchscope", "PatchscopeResult"),
    "IDENTITY_PROMPT": (".interventions.patchscope", "IDENTITY_PROMPT"),
    "activation_patching": (".patching.activation", "activation_patching"),
    "PatchingResult": (".patching.results", "PatchingResult"),
    "patching_sites": (".patching.sites", "patching_sites"),
    "causal_trace": (".patching.causal_trace", "causal_trace"),
    "CausalTrace": (".patching.causal_trace", "CausalTrace"),
    "ablation": (".patching.ablation", "ablation"),
    "save_text_only": (".backends.mllama.text_only", "save_text_only"),
    "check": (".selfcheck", "check"),
    "CheckResult": (".selfcheck", "CheckResult"),
    "AttentionExplorer": (".widgets.attention", "AttentionExplorer"),
    "RopeSpectrum": (".widgets.rope_spectrum", "RopeSpectrum"),
    "GenerationStepper": (".widgets.generation_stepper", "GenerationStepper"),
    "ImageAttention": (".widgets.image_attention", "ImageAttention"),
    "PatchingWorkbench": (".widgets.patching_workbench", "PatchingWorkbench"),
    "export": (".export", None),
    "save": (".export", "save"),
    "options": (".core.settings", "options"),
    "LensnbError": (".core.errors", "LensnbError"),
    "InputError": (".core.errors", "InputError"),
    "InputTypeError": (".core.errors", "InputTypeError"),
    "IndexRangeError": (".core.errors", "IndexRangeError"),
    "TokenError": (".core.errors", "TokenError"),
    "LensnbWarning": (".core.errors", "LensnbWarning"),
    "StaticFallbackWarning": (".core.errors", "StaticFallbackWarning"),
    "ModelNotFoundError": (".core.errors", "ModelNotFoundError"),
    "UnsupportedArchitectureError": (".core.errors", "UnsupportedArchitectureError"),
    "UnsupportedFeatureError": (".core.errors", "UnsupportedFeatureError"),
    "ContextLengthError": (".core.errors", "ContextLengthError"),
    "GQAError": (".core.errors", "GQAError"),
    "UnknownHookError": (".core.errors", "UnknownHookError"),
    "MissingModelPackageError": (".core.errors", "MissingModelPackageError"),
    "PatternMemoryError": (".core.errors", "PatternMemoryError"),
    "CacheNotFilledError": (".core.errors", "CacheNotFilledError"),
    "ImageInputError": (".core.errors", "ImageInputError"),
    "ImageTokenError": (".core.errors", "ImageTokenError"),
    "ChromiumNotFoundError": (".core.errors", "ChromiumNotFoundError"),
    "RequestError": (".core.errors", "RequestError"),
}

__all__ = [
    "AttentionExplorer", "CacheNotFilledError", "Capabilities", "CausalTrace", "CheckResult",
    "ChromiumNotFoundError", "ContextLengthError", "GQAError", "Generation", "GenerationConfig",
    "GenerationStepper", "HookContext", "IDENTITY_PROMPT", "ImageAttention", "ImageInputError",
    "ImageTokenError", "IndexRangeError", "InputError", "InputTypeError", "KVGroupView",
    "KVGroups", "KeptQK", "Lens", "LensnbError", "LensnbWarning", "LogitAttribution",
    "LogitLens", "LogitLensStep", "LongContextProfile", "MissingModelPackageError",
    "ModelFacts", "ModelNotFoundError", "Patch", "PatchingResult", "PatchingWorkbench",
    "PatchscopeResult",
    "PatternMemoryError", "RequestError", "RopeSpectrum", "StaticFallbackWarning", "Step",
    "TokenError", "UnknownHookError", "UnsupportedArchitectureError", "UnsupportedFeatureError",
    "ablation", "activation_patching", "attention_patterns", "cached_path", "causal_trace",
    "check", "export", "facts", "group_summaries", "hook_shapes", "load", "logit_lens",
    "long_context_profile", "model_table", "options", "patch", "patching_sites", "patchscope",
    "rope", "save", "save_text_only", "stdlib_tokens", "supported_architectures",
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
    from .analysis.attribution import LogitAttribution
    from .analysis.kv_views import KVGroupView
    from .analysis.logit_lens import LogitLens, logit_lens
    from .analysis.longcontext import LongContextProfile, long_context_profile, stdlib_tokens
    from .analysis.patterns import KeptQK, attention_patterns
    from .backends.contract import Capabilities
    from .backends.meta import hook_shapes
    from .backends.mllama.text_only import save_text_only
    from .backends.registry import supported_architectures
    from .core.errors import (
        CacheNotFilledError,
        ChromiumNotFoundError,
        ContextLengthError,
        GQAError,
        ImageInputError,
        ImageTokenError,
        IndexRangeError,
        InputError,
        InputTypeError,
        LensnbError,
        LensnbWarning,
        MissingModelPackageError,
        ModelNotFoundError,
        PatternMemoryError,
        RequestError,
        StaticFallbackWarning,
        TokenError,
        UnknownHookError,
        UnsupportedArchitectureError,
        UnsupportedFeatureError,
    )
    from .core.facts import ModelFacts, facts, model_table
    from .core.kv_groups import KVGroups, group_summaries
    from .core.settings import options
    from .core.sources import cached_path
    from .export import save
    from .interventions.generation_config import GenerationConfig
    from .interventions.generation_results import Generation, LogitLensStep, Step
    from .interventions.hook_context import HookContext
    from .interventions.patch import Patch, patch
    from .interventions.patchscope import IDENTITY_PROMPT, PatchscopeResult, patchscope
    from .lens import Lens
    from .loading import load
    from .patching.ablation import ablation
    from .patching.activation import activation_patching
    from .patching.causal_trace import CausalTrace, causal_trace
    from .patching.results import PatchingResult
    from .patching.sites import patching_sites
    from .selfcheck import CheckResult, check
    from .widgets.attention import AttentionExplorer
    from .widgets.generation_stepper import GenerationStepper
    from .widgets.image_attention import ImageAttention
    from .widgets.patching_workbench import PatchingWorkbench
    from .widgets.rope_spectrum import RopeSpectrum
