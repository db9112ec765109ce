"""lensnb: Jupyter-native widgets for looking inside modern transformer language models.

    import lensnb
    lens = lensnb.load("demo")                 # a Llama-3.1-style GQA model, offline
    logits, cache = lens.run_with_cache("def f(x):", names="blocks.*.attn.hook_pattern")
"""

from __future__ import annotations

from .backend.facts import ModelFacts, facts, model_table
from .backend.lens import Lens
from .backend.loading import load, supported_architectures
from .backend.meta import hook_shapes
from . import export
from .export import save
from .backend import rope
from .widgets.rope_spectrum import RopeSpectrum
from .widgets.attention import AttentionExplorer
from .backend.generation import Step
from .backend.patching import patch, patchscope
from .widgets.generation_stepper import GenerationStepper

__all__ = ["Lens", "ModelFacts", "export", "facts", "load", "model_table", "rope",
           "save", "supported_architectures"]
__all__ += ["GenerationStepper", "Step", "patch", "patchscope"]
__all__ += ["hook_shapes"]
__all__ += ["RopeSpectrum"]
__all__ += ["AttentionExplorer"]
from .backend.vision.text_only import save_text_only
from .widgets.image_attention import ImageAttention

__all__ += ["ImageAttention", "save_text_only"]
__version__ = "0.1.0"
