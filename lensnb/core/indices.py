"""The one index rule: an index is an ``int`` (not a ``bool``) in ``0..n-1``; where counting from
the end makes sense (layers, positions), ``-n..-1`` is accepted too, as in Python.

Every out-of-range message has the same shape, naming the valid range:
``layer 5 is out of range: valid layers are 0..3, or -4..-1 from the end (4 layers (0..3))``.
"""

from __future__ import annotations

from typing import Any

from .errors import IndexRangeError, InputTypeError


def check_index(value: Any, n: int, noun: str, *, plural: str | None = None,
                from_end: bool = False, where: str = "", n_back: int | None = None,
                why: str = "") -> int:
    """``value`` checked against ``n`` items called ``noun``; returns it as ``0..n-1``.

    Raises ``InputTypeError`` (a ``TypeError``) for a non-int, ``IndexRangeError`` (an
    ``IndexError``) naming the valid range otherwise.
    ``from_end``: accept ``-n..-1`` (counted from the end). ``where``: what holds the items
    (``"this model"``, ``"the text"``), said in the message. ``n_back``: how many items may be
    counted from the end when that is not ``n`` (a generation's positions: ``-prompt..-1`` from
    the prompt's end, ``0..prompt+new-1`` forwards); the value is then returned as given.
    ``why``: a sentence appended to the message.
    """
    plural = plural or f"{noun}s"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"a {noun} index is an int, got {type(value).__name__}")
    back = (n if n_back is None else n_back) if from_end else 0
    if not -back <= value < n:
        valid = f"0..{n - 1}" if n else "none"
        if back:
            valid += f", or -{back}..-1 from the end"
        held = f" ({where} has {n} {plural} (0..{n - 1}))" if where and n else ""
        raise IndexRangeError(f"{noun} {value} is out of range: valid {plural} are {valid}{held}"
                         + (f"; {why}" if why else ""))
    return value if n_back is not None else value % n


def check_layer(layer: Any, n_layers: int) -> int:
    """A layer index (negative counts from the end)."""
    return check_index(layer, n_layers, "layer", from_end=True, where="this model")


def check_position(pos: Any, n_pos: int, noun: str = "position") -> int:
    """A token position in a sequence of ``n_pos`` (negative counts from the end)."""
    return check_index(pos, n_pos, noun, plural="positions", from_end=True, where="the text")
