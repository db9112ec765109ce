"""``lensnb.rope``: RoPE frequencies, angles and per-head frequency usage (Llama 3.1's
frequency smoothing included). ``import lensnb.rope`` and ``from lensnb.rope import inv_freq``
work; the code lives in ``lensnb.backend.rope``."""

from .backend.rope import *  # noqa: F403
from .backend.rope import __all__  # noqa: F401
