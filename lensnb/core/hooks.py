"""Hook-name lookup: the one place that turns what a user types into a bridge hook name.

Names follow TransformerLens (``blocks.{layer}.attn.hook_pattern``). A user may give a full name,
a short name plus a layer (``hook_name("attn.hook_pattern", layer=2)``), a glob
(``"blocks.*.attn.hook_pattern"``), a list of those, or a predicate. Unknown names raise a
``KeyError`` that suggests the closest real names.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable

from .errors import InputTypeError, UnknownHookError
from .indices import check_layer

NameFilter = str | Iterable[str] | Callable[[str], bool] | None

_GLOB_CHARS = re.compile(r"[*?\[]")


def suggest(name: str, available: Iterable[str], n: int = 5) -> list[str]:
    """The ``n`` real names closest to ``name`` (by edit similarity, then by shared suffix)."""
    available = list(available)
    close = difflib.get_close_matches(name, available, n=n, cutoff=0.5)
    if len(close) < n:
        tail = name.rsplit(".", 1)[-1]
        close += [a for a in available if a.endswith(tail) and a not in close][: n - len(close)]
    return close


def unknown(name: str, available: Iterable[str]) -> UnknownHookError:
    close = suggest(name, available)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownHookError(
        f"unknown hook name {name!r}.{hint} (`lens.hook_names()` lists all of them)"
    )


def full_name(name: str, layer: int | None, available: Iterable[str], n_layers: int) -> str:
    """Resolve ``name`` (optionally relative to ``blocks.{layer}.``) to a real hook name."""
    available = set(available)
    if layer is not None:
        layer = check_layer(layer, n_layers)
        if not name.startswith("blocks."):
            name = f"blocks.{layer}.{name}"
    if name in available:
        return name
    raise unknown(name, available)


def layer_of(name: str) -> int | None:
    """The block index of ``blocks.{layer}.…``, ``None`` for a hook outside the blocks."""
    parts = name.split(".", 2)
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit() else None


def name_filter(names: NameFilter, available: Iterable[str]) -> Callable[[str], bool]:
    """A predicate over hook names from a name, a glob, a list of those, or a predicate.

    Every plain (non-glob) name must exist, and every glob must match something: a typo raises
    instead of silently caching nothing.
    """
    available = list(available)
    if names is None:
        return lambda _name: True
    if callable(names):
        return names
    patterns = [names] if isinstance(names, str) else list(names)
    exact: set[str] = set()
    globs: list[str] = []
    for p in patterns:
        if not isinstance(p, str):
            raise InputTypeError(f"hook names must be strings, got {type(p).__name__}: {p!r}")
        if _GLOB_CHARS.search(p):
            if not fnmatch.filter(available, p):
                raise unknown(p, available)
            globs.append(p)
        elif p in available:
            exact.add(p)
        else:
            raise unknown(p, available)
    return lambda name: name in exact or any(fnmatch.fnmatchcase(name, g) for g in globs)
