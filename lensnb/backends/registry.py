"""The one list of backends, and which one serves a model.

Each backend declares itself in its own package (``bridge.backend.BACKEND``,
``mllama.backend.BACKEND``: architectures, loaders, capabilities); this module only orders them
(lensnb's own backends first, so they win over a TransformerLens adapter for the same
architecture) and answers "which backend serves this config / owns this model".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.errors import InputTypeError, UnsupportedArchitectureError
from .bridge.backend import BACKEND as BRIDGE
from .contract import Backend, Capabilities
from .mllama.backend import BACKEND as MLLAMA

_BACKENDS: list[Backend] = [MLLAMA, BRIDGE]


def register(backend: Backend) -> Backend:
    """Add a backend, consulted before the built-in ones (a later registration wins)."""
    if not isinstance(backend, Backend):
        raise InputTypeError(f"register takes a lensnb.backends.contract.Backend, got "
                             f"{type(backend).__name__}")
    _BACKENDS[:] = [b for b in _BACKENDS if b.name != backend.name]
    _BACKENDS.insert(0, backend)
    return backend


def backends() -> list[Backend]:
    """The registered backends, in the order they are asked."""
    return list(_BACKENDS)


def supported_architectures() -> list[str]:
    """Architectures lensnb can load: the union of every backend's."""
    return sorted({a for b in _BACKENDS for a in b.architectures()})


def backend_for(config: Mapping[str, Any], where: str = "the model") -> Backend:
    """The backend serving a ``config.json`` dict; ``UnsupportedArchitectureError`` listing the
    supported architectures when none does. A config naming no architecture goes to the
    TransformerLens bridge, which decides from its model type."""
    for backend in _BACKENDS:
        if backend.serves(config):
            return backend
    archs = config.get("architectures") or []
    if not archs:
        return BRIDGE
    raise UnsupportedArchitectureError(
        f"{where} is a {', '.join(archs)} model, which lensnb cannot hook yet. "
        f"Supported architectures: {', '.join(supported_architectures())}"
    )


def backend_of(model: Any) -> Backend:
    """The backend a hooked model belongs to (``TypeError`` for anything else)."""
    for backend in _BACKENDS:
        if backend.owns(model):
            return backend
    raise InputTypeError(f"{type(model).__name__} is not a hooked model of any lensnb backend "
                         f"({', '.join(b.name for b in _BACKENDS)})")


def capabilities_of(model: Any) -> Capabilities:
    """What a hooked model can do (its backend's capabilities, narrowed to the model)."""
    return backend_of(model).capabilities_for(model)
