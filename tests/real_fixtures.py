"""Real pretrained models (SmolLM2-135M, Gemma 3 270M: GGUF files inside PyPI packages), each
loaded at most once per test session (a module-level cache, whichever test module asks first):
through lensnb (converted into lensnb's cache on first use) and, as the independent reference,
through transformers' own GGUF loading (dequantised to float32, eager attention).

    from real_fixtures import load_real, load_reference
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
_LENSES: dict[str, Any] = {}
_REFERENCES: dict[str, Any] = {}


def require_named(name: str) -> Any:
    """The registry entry of ``name``; skips, saying how to install it, when its package is
    not installed (``make test`` installs requirements/models.txt, so CI never skips)."""
    from lensnb.core.sources import NAMED, MissingModelPackageError
    from lensnb.core.sources.gguf import check_installed

    model = NAMED[name]
    try:
        check_installed(model)
    except MissingModelPackageError as e:
        pytest.skip(f"{name}: {e}")
    return model


def load_real(name: str) -> Any:
    """``lensnb.load(name)`` in float32, once per session."""
    import lensnb

    if name not in _LENSES:
        require_named(name)
        _LENSES[name] = lensnb.load(name, dtype=torch.float32)
    return _LENSES[name]


def load_reference(name: str) -> Any:
    """transformers' own GGUF-loaded model (float32, eager attention, so it returns attention
    weights), once per session, on the device of ``load_real(name)`` (a GPU where there is one,
    or the pretend one of ``LENSNB_PRETEND_GPU``), so the tests compare like with like. (Its
    GGUF tokenizer is not built: for Gemma 3 that alone takes a minute; the converted tokenizer
    is tested against the file in test_tokens.py.)"""
    import tempfile

    from transformers import AutoModelForCausalLM

    from lensnb.core.sources.gguf import gguf_file

    if name not in _REFERENCES:
        model = require_named(name)
        with tempfile.TemporaryDirectory(prefix="lensnb-gguf-") as tmp:
            path = gguf_file(model, Path(tmp))
            _REFERENCES[name] = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, dtype=torch.float32,
                attn_implementation="eager").eval().to(load_real(name).device)
    return _REFERENCES[name]
