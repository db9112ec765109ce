"""lensnb's error family: every error lensnb raises on purpose is a ``LensnbError``.

Each type also keeps the builtin it is (``requests``' pattern): a bad hook name is a
``LensnbError`` *and* a ``KeyError``, an out-of-range token id a ``LensnbError`` and a
``ValueError``, so callers catch the family or the builtin, never a grab-bag of classes.
Every type is exported from ``lensnb``; the modules that raise them import them from here.
"""

from __future__ import annotations


class LensnbError(Exception):
    """The base of every error lensnb raises on purpose (``except lensnb.LensnbError``)."""


class LensnbWarning(UserWarning):
    """The base of every warning lensnb issues."""


class LensnbDeprecationWarning(LensnbWarning, DeprecationWarning):
    """A name or keyword lensnb still accepts but will drop; the message says what replaces it."""


# ---------------------------------------------------------------------------- models
class ModelNotFoundError(LensnbError, FileNotFoundError):
    """A name that is neither a demo, a local model directory, nor a cached model id."""


class UnsupportedArchitectureError(LensnbError, ValueError):
    """A model whose architecture neither TransformerLens nor lensnb can hook."""


class DamagedCacheError(LensnbError, OSError):
    """A converted model in lensnb's cache that cannot be read (a truncated or missing file) and
    cannot be converted again here (its package is not installed); the message names the folder
    and says that removing it makes the next ``lensnb.load`` convert it again."""


class MissingModelPackageError(LensnbError, ImportError):
    """A named model's package (or the ``gguf`` reader) is not installed; the message says the
    exact ``pip`` command."""


class UnsupportedFeatureError(LensnbError, NotImplementedError, ValueError, TypeError):
    """A feature that does not apply to this model (split QKV, compatibility mode, direct logit
    attribution, ... on a Llama 3.2 Vision lens; images on a text model; a cross-attention layer
    where a self-attention layer is needed), raised up front from the backend's declared
    ``Capabilities`` (``lens.capabilities``). The message names what to use instead. Also a
    ``TypeError``, as a model of the wrong kind raised before."""


class GQAError(LensnbError, ValueError):
    """A GQA-only view asked of a model without GQA, or an inconsistent head layout."""


# ---------------------------------------------------------------------------- inputs
class InputError(LensnbError, ValueError):
    """An argument whose value is not allowed; the message names it and what is allowed."""


class InputTypeError(LensnbError, TypeError):
    """An argument of the wrong type; the message names it and the types allowed."""


class IndexRangeError(LensnbError, IndexError):
    """An index (layer, head, KV group, position, token id, ...) outside its valid range; the
    message names the valid range (``core.indices``)."""


class TokenError(InputError):
    """Token ids that no forward pass may take: not integers, not ``[pos]``/``[batch, pos]``,
    or outside ``0..vocab_size-1`` (the message names the vocabulary size)."""


class ContextLengthError(LensnbError, ValueError):
    """Input longer than the model's context window."""


class UnknownNameError(LensnbError, KeyError):
    """A name lensnb does not know (a theme colour, a colour map, a ``check()`` cell, ...); the
    message lists the known ones."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead
        return str(self.args[0])


class UnknownHookError(UnknownNameError):
    """A hook name that the model does not have (the message suggests close ones)."""


class UnknownSettingError(UnknownNameError, AttributeError):
    """A setting ``lensnb.options`` does not have (also an ``AttributeError``, as attribute
    access requires: ``hasattr``, ``getattr(options, name, default)``)."""


class ImageInputError(LensnbError, ValueError):
    """An image that cannot be used: wrong type, wrong mode, unreadable file."""


class ImageTokenError(LensnbError, ValueError):
    """Text and images that do not match (an ``<|image|>`` without an image or the reverse)."""


class RequestError(LensnbError, ValueError):
    """A frontend request that does not fit its schema (names the field and what is allowed)."""


# ---------------------------------------------------------------------------- running
class PatternMemoryError(LensnbError, MemoryError):
    """A hook asked for full attention patterns at a length where they cannot fit."""


class BackendError(LensnbError, RuntimeError):
    """A hooked model that did not do what its backend declares (a hook that did not fire): the
    installed torch / transformers / transformer-lens may not fit each other (``lensnb.check()``
    says which invariant fails)."""


class CacheNotFilledError(BackendError):
    """A cached forward left the KV cache shorter or longer than the tokens fed."""


class InterruptedRequestError(LensnbError, RuntimeError):
    """A frontend request interrupted in the kernel (Kernel > Interrupt): nothing half-computed
    is kept; ask again."""


# ---------------------------------------------------------------------------- export
class ExportError(LensnbError, RuntimeError):
    """A view that cannot be exported (one of its own export requests failed)."""


class ChromiumNotFoundError(ExportError):
    """No Chromium/Chrome binary for static export."""


class ExportTimeoutError(ExportError, TimeoutError):
    """Chromium did not finish rendering a static export in time."""


class StaticFallbackWarning(LensnbWarning):
    """A widget's static fallback could not be built (the live view is unaffected)."""
