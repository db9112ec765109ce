"""lensnb: Jupyter-native widgets for looking inside modern transformer language models.

    import lensnb
    lens = lensnb.load("demo")                 # a Llama-3.1-style GQA model, offline
    logits, cache = lens.run_with_cache("def f(x):", names="blocks.*.attn.hook_pattern")
    lensnb.AttentionExplorer(lens, "def f(x):\\n    return f(x)")

``import lensnb`` is cheap: torch, transformers and the widgets load on first use. The public
names are written once, in ``__init__.pyi`` (read here by ``lazy_loader``, SPEC 1); the layers
under this one are described in docs/architecture.md.
"""

import lazy_loader as _lazy

__version__ = "0.1.0"

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
