"""Shared fixtures. Tiers: unit tests build tiny random models from configs (no weights needed);
integration tests use the embedded demo models in lensnb/assets/; browser tests drive JupyterLab in
Debian's chromium; notebook tests execute the tutorials."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from layouts import DEMO_DIR, LAYOUTS, REPO  # noqa: F401  (fixtures below use them)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))
if os.environ.get("LENSNB_PRETEND_GPU"):  # the tests on a pretend cuda:0 (tests/fake_cuda.py):
    import fake_cuda  # every lensnb.load lands there; what mixes devices raises as CUDA would

    fake_cuda.install()

@pytest.fixture(scope="session")
def demo_lens():
    """The embedded demo model (trained; assets/demo)."""
    import lensnb

    return lensnb.load("demo")


@pytest.fixture(scope="session")
def make_tiny_model(tmp_path_factory) -> Callable[..., Path]:
    """Build a tiny random Hugging Face model of ``model_type`` with the demo tokenizer, save it
    to a directory and return the path. ``make_tiny_model("qwen2", num_key_value_heads=1)``."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    made: dict[str, Path] = {}

    def make(model_type: str = "llama", seed: int = 0, **overrides) -> Path:
        key = f"{model_type}-{seed}-{sorted(overrides.items())}"
        if key in made:
            return made[key]
        tok = AutoTokenizer.from_pretrained(DEMO_DIR)
        cfg = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                   max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                   eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                   tie_word_embeddings=False)
        cfg.update(overrides)
        config = AutoConfig.for_model(model_type, **cfg)
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
        path = tmp_path_factory.mktemp(model_type)
        model.save_pretrained(path)
        tok.save_pretrained(path)
        made[key] = path
        return path

    return make


@pytest.fixture(scope="session")
def playwright() -> Iterator[object]:
    """One Playwright (sync API) for the session: it cannot run twice at once in a process, so
    the browser tests and the HTML-export tests share it."""
    api = pytest.importorskip("playwright.sync_api", reason="playwright drives Debian's chromium")
    with api.sync_playwright() as p:
        yield p


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch) -> Iterator[None]:
    """Any attempt to open a network socket (other than a local unix socket) raises."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkBlocked(f"network access attempted: {address!r}")
        return real_connect(self, address)

    def refuse(*args, **kwargs):
        raise NetworkBlocked(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield
