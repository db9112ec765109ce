"""WCAG 2.x colour contrast, written from the spec (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio
and #dfn-relative-luminance), for the theme tests: ``from wcag import contrast, parse, over``."""

from __future__ import annotations

import re

Rgba = tuple[float, float, float, float]  # 0..255 channels, alpha 0..1
AA_TEXT, AA_LARGE_TEXT = 4.5, 3.0


def parse(css: str) -> Rgba:
    """A computed CSS colour (``rgb(...)``, ``rgba(...)``, ``#rrggbb``, ``color(srgb ...)``) as
    (r, g, b, a)."""
    css = css.strip().lower()
    if css == "transparent":
        return (0.0, 0.0, 0.0, 0.0)
    if css.startswith("#"):
        h = css[1:]
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
        a = int(h[6:8], 16) / 255 if len(h) == 8 else 1.0
        return (float(r), float(g), float(b), a)
    m = re.fullmatch(r"color\(srgb\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)(?:\s*/\s*([\d.]+))?\s*\)", css)
    if m:  # color-mix() results: channels 0..1
        r, g, b = (float(m.group(i)) * 255 for i in (1, 2, 3))
        return (r, g, b, 1.0 if m.group(4) is None else float(m.group(4)))
    number = r"\s*([\d.]+)"
    m = re.fullmatch(rf"rgba?\({number}[,\s]{number}[,\s]{number}(?:\s*[,/]\s*([\d.]+%?))?\s*\)",
                     css)
    if not m:
        raise ValueError(f"not a colour this test reads: {css!r}")
    alpha = m.group(4)
    a = 1.0 if alpha is None else (float(alpha[:-1]) / 100 if alpha.endswith("%")
                                   else float(alpha))
    return (float(m.group(1)), float(m.group(2)), float(m.group(3)), a)


def over(top: Rgba, bottom: Rgba) -> Rgba:
    """``top`` composited over an opaque ``bottom`` (source-over)."""
    a = top[3]
    return (*(top[i] * a + bottom[i] * (1 - a) for i in range(3)), 1.0)  # type: ignore[return-value]


def luminance(c: Rgba) -> float:
    """Relative luminance of an opaque sRGB colour."""
    def lin(v: float) -> float:
        s = v / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])


def contrast(a: Rgba, b: Rgba) -> float:
    """WCAG contrast ratio (1..21) of two opaque colours."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
