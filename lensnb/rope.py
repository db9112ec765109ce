"""``lensnb.rope``: RoPE frequencies, angles and per-head frequency usage (Llama 3.1's
frequency smoothing included). ``import lensnb.rope`` and ``from lensnb.rope import inv_freq``
work; the code lives in ``lensnb.analysis.rope``."""

from .analysis.rope import *  # noqa: F403
from .analysis.rope import __all__  # noqa: F401
