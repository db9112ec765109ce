"""``lensnb.options``: process-wide settings, checked when set. Cheap to import (no torch).

    import lensnb
    lensnb.options.static_fallback = "html+png"     # what a widget's output holds beside the
                                                    # live view (for nbconvert, nbviewer, GitHub)
    with lensnb.options.context(static_fallback=None):
        explorer                                    # live view only, this once
    lensnb.options.progress = False                 # no progress bars (lensnb/core/progress.py)
    lensnb.options.reset()

The default mode can also come from the environment, for notebooks converted without editing
them: ``LENSNB_STATIC_FALLBACK=html+png jupyter nbconvert --execute ...`` (``none`` for None).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import InputError, InputTypeError, LensnbWarning, UnknownSettingError

# What a widget's display bundle holds beside its live view (see lensnb/export/fallback.py):
# "html" the standalone interactive HTML (nbconvert, nbviewer: scripts run there), "png" a
# picture rendered through kaleido + a local chromium (GitHub shows pictures, runs no scripts),
# "html+png" both (the picture inside the HTML too, shown where its scripts do not run), None
# the live view only.
STATIC_FALLBACKS: tuple[str | None, ...] = ("html", "png", "html+png", None)
DEFAULTS: dict[str, Any] = {
    "static_fallback": "html",
    # a fallback larger than this (HTML and PNG together, bytes) is left out with a note saying
    # so; the measured HTML ones are 45-118 KiB (see the README's "Share a notebook")
    "static_fallback_max_bytes": 2 * 2**20,
    # lensnb's progress bars (lensnb/core/progress.py); HF_HUB_DISABLE_PROGRESS_BARS=1 and
    # TQDM_DISABLE=1 turn them off too
    "progress": True,
}
ENV_STATIC_FALLBACK = "LENSNB_STATIC_FALLBACK"
# a progress bar over layers appears from this many tokens on (run_with_cache, KeptQK, ...)
PROGRESS_MIN_TOKENS = 2048


def _check_static_fallback(value: Any) -> str | None:
    if value not in STATIC_FALLBACKS or isinstance(value, bool):
        allowed = ", ".join(repr(v) for v in STATIC_FALLBACKS)
        raise InputError(f"lensnb.options.static_fallback must be one of {allowed}, "
                         f"not {value!r}")
    return value


def _check_max_bytes(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError("lensnb.options.static_fallback_max_bytes must be a positive whole "
                         f"number of bytes or None (no limit), not {value!r}")
    return value


def _check_progress(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputTypeError(f"lensnb.options.progress must be True or False, not {value!r}")
    return value


_CHECKS = {"static_fallback": _check_static_fallback,
           "static_fallback_max_bytes": _check_max_bytes,
           "progress": _check_progress}


def defaults(environ: Any = None) -> dict[str, Any]:
    """The defaults, with ``$LENSNB_STATIC_FALLBACK`` (``html``, ``png``, ``html+png``,
    ``none``) in place of the built-in mode when set; a value it does not know is ignored with a
    warning (a bad variable must not stop a notebook from displaying)."""
    environ = os.environ if environ is None else environ
    values = dict(DEFAULTS)
    raw = environ.get(ENV_STATIC_FALLBACK)
    if raw is not None and raw.strip():
        value = None if raw.strip().lower() == "none" else raw.strip().lower()
        if value in STATIC_FALLBACKS:
            values["static_fallback"] = value
        else:
            warnings.warn(f"${ENV_STATIC_FALLBACK}={raw!r} is not one of html, png, html+png, "
                          f"none; using {DEFAULTS['static_fallback']!r}", LensnbWarning,
                          stacklevel=2)
    return values


class Options:
    """lensnb's settings. Assigning checks the value (a clear error names what is allowed);
    an unknown name is an error too, so a typo cannot pass silently."""

    __slots__ = ("_environ", "_values")

    def __init__(self, environ: Any = None) -> None:
        object.__setattr__(self, "_environ", environ)
        object.__setattr__(self, "_values", defaults(environ))

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise UnknownSettingError(f"lensnb.options has no setting {name!r}; the settings are "
                                  f"{', '.join(sorted(values))}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _CHECKS:
            raise UnknownSettingError(f"lensnb.options has no setting {name!r}; the settings "
                                      f"are {', '.join(sorted(_CHECKS))}")
        self._values[name] = _CHECKS[name](value)

    def __dir__(self) -> list[str]:
        return sorted([*_CHECKS, "context", "reset"])

    def reset(self) -> None:
        """Every setting back to its default (``$LENSNB_STATIC_FALLBACK`` included)."""
        self._values.update(defaults(self._environ))

    @contextmanager
    def context(self, **changes: Any) -> Iterator[Options]:
        """Change settings inside a ``with`` block only (checked like an assignment)."""
        old = dict(self._values)
        try:
            for name, value in changes.items():
                setattr(self, name, value)
            yield self
        finally:
            self._values.clear()
            self._values.update(old)

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"lensnb.options({items})"


options = Options()
