"""lensnb: Jupyter-native widgets for looking inside modern transformer language models.

    import lensnb
    lens = lensnb.load("demo")                 # a Llama-3.1-style GQA model, offline
    logits, cache = lens.run_with_cache("def f(x):", names="blocks.*.attn.hook_pattern")
"""

from __future__ import annotations

from .backend.facts import ModelFacts, facts, model_table
from .backend.lens import Lens
from .backend.loading import load, supported_architectures

__all__ = ["Lens", "ModelFacts", "facts", "load", "model_table", "supported_architectures"]
__version__ = "0.1.0"
