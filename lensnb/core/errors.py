"""lensnb's error types shared across layers (each also exported from ``lensnb``).

Errors that belong to one module live there (``UnknownHookError`` in ``core.hooks``,
``PatternMemoryError`` in ``backends.bridge.attention_mode``, ...); these are raised in several.
"""

from __future__ import annotations


class ModelNotFoundError(FileNotFoundError):
    """A name that is neither a demo, a local model directory, nor a cached model id."""


class UnsupportedArchitectureError(ValueError):
    """A model whose architecture neither TransformerLens nor lensnb can hook."""


class UnsupportedFeatureError(NotImplementedError, ValueError, TypeError):
    """A feature that does not apply to this model (split QKV, compatibility mode, direct logit
    attribution, ... on a Llama 3.2 Vision lens; images on a text model; a cross-attention layer
    where a self-attention layer is needed), raised up front from the backend's declared
    ``Capabilities`` (``lens.capabilities``). The message names what to use instead. Also a
    ``TypeError``, as a model of the wrong kind raised before."""


class ContextLengthError(ValueError):
    """Input longer than the model's context window."""


class GQAError(ValueError):
    """A GQA-only view asked of a model without GQA, or an inconsistent head layout."""
