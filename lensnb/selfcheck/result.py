"""The table ``lensnb.check()`` returns: one ``CheckRow`` per invariant x layout, in a
``CheckResult`` that prints as text and shows as an (escaped) HTML table in notebooks."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ..core import theme
from ..core.errors import UnknownNameError

PASS, FAIL, NA = "pass", "FAIL", "n.a."

INVARIANTS: dict[str, str] = {
    "logits": "logits == HF eager",
    "pattern": "hook_pattern == HF attentions",
    "kept_pattern": "explorer's patterns == HF",
    "dla": "DLA parts sum == HF logits",
    "split_qkv": "split-QKV locality",
    "gen_fast": "cached == uncached (fast path)",
    "gen_bridge": "cached == uncached (bridge path)",
    "vision_logits": "vision logits == HF",
    "vision_gen": "vision generation == HF",
}


class NotApplicable(Exception):
    """A check that does not apply to this layout (the message says why)."""


class Unavailable(Exception):
    """A feature the installed lensnb does not offer on this layout (reported as a failure)."""


@dataclass
class CheckRow:
    """One cell of the table: an invariant on one layout.

    Attributes:
        invariant: key of ``INVARIANTS`` (``"logits"``, ``"pattern"``, ...).
        layout: a key of ``models.LAYOUTS`` (``"llama-gqa"``, ``"gpt2"``, ..., ``"mllama"``).
        status: ``"pass"``, ``"FAIL"`` or ``"n.a."``.
        max_error: the measured largest absolute difference (``None`` when not numeric).
        tolerance: the largest allowed.
        message: why it failed or does not apply; empty on a plain pass.
        warnings: distinct warnings raised while it ran.
        seconds: how long it took.
    """

    invariant: str
    layout: str
    status: str
    max_error: float | None = None
    tolerance: float | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return INVARIANTS.get(self.invariant, self.invariant)

    def cell(self) -> str:
        """``"pass 2.4e-07"``, ``"FAIL 3.1e-02"``, ``"FAIL"`` or ``"n.a."``."""
        if self.max_error is None or self.status == NA:
            return self.status
        return f"{self.status} {self.max_error:.1e}"


@dataclass
class CheckResult:
    """What ``lensnb.check()`` found. ``.ok``: no cell failed. ``.rows``: every ``CheckRow``.
    ``str(result)`` is the printed table; in a notebook it shows as an HTML table."""

    rows: list[CheckRow]
    versions: dict[str, str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[CheckRow]:
        return [r for r in self.rows if r.status == FAIL]

    def row(self, invariant: str, layout: str) -> CheckRow:
        """The cell of ``invariant`` (a key of ``INVARIANTS``) on ``layout``."""
        for r in self.rows:
            if r.invariant == invariant and r.layout == layout:
                return r
        raise UnknownNameError(f"no cell ({invariant!r}, {layout!r}): invariants are "
                               f"{', '.join(INVARIANTS)}; layouts are {', '.join(self.layouts)}")

    @property
    def layouts(self) -> list[str]:
        return list(dict.fromkeys(r.layout for r in self.rows))

    @property
    def invariants(self) -> list[str]:
        return list(dict.fromkeys(r.invariant for r in self.rows))

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per cell."""
        import pandas as pd

        return pd.DataFrame([dict(invariant=r.label, layout=r.layout, status=r.status,
                                  max_error=r.max_error, tolerance=r.tolerance,
                                  message=r.message, seconds=round(r.seconds, 2))
                             for r in self.rows])

    def _header(self) -> str:
        v = self.versions
        verdict = "all checks pass" if self.ok else f"{len(self.failed)} FAILED"
        return (f"lensnb.check(): {verdict} ({self.seconds:.1f} s) on torch {v['torch']}, "
                f"transformers {v['transformers']}, transformer-lens {v['transformer-lens']} "
                f"(lensnb {v['lensnb']}, python {v['python']})")

    def _notes(self) -> list[str]:
        notes = [f"FAIL {r.label} x {r.layout}: {r.message}" for r in self.rows
                 if r.status == FAIL]
        na: dict[str, list[str]] = {}  # reason -> cells
        for r in self.rows:
            if r.status == NA:
                na.setdefault(r.message, []).append(f"{r.label} x {r.layout}")
        notes += [f"n.a. {', '.join(cells)}: {why}" if len(cells) < 3 else
                  f"n.a. ({why}): {len(cells)} cells" for why, cells in na.items()]
        seen: dict[str, None] = {}
        for r in self.rows:
            for w in r.warnings:
                seen.setdefault(w, None)
        notes += [f"warning: {w}" for w in seen]
        return notes

    def __str__(self) -> str:
        layouts, invariants = self.layouts, self.invariants
        cells = {(r.invariant, r.layout): r.cell() for r in self.rows}
        first = max(len(INVARIANTS.get(i, i)) for i in invariants)
        widths = [max(len(lay), *(len(cells.get((i, lay), "")) for i in invariants))
                  for lay in layouts]
        lines = [self._header(), "",
                 "  ".join([" " * first] + [lay.ljust(w) for lay, w in zip(layouts, widths,
                                                                            strict=True)])]
        for i in invariants:
            row = [INVARIANTS.get(i, i).ljust(first)]
            row += [cells.get((i, lay), "").ljust(w) for lay, w in zip(layouts, widths,
                                                                        strict=True)]
            lines.append("  ".join(row).rstrip())
        notes = self._notes()
        if notes:
            lines += [""] + notes
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        esc = html.escape
        colours = {PASS: theme.ROLES["passed"], FAIL: theme.ui("error"), NA: theme.ui("fg_muted")}
        cells = {(r.invariant, r.layout): r for r in self.rows}
        head = "".join(f"<th>{esc(lay)}</th>" for lay in self.layouts)
        body = []
        for i in self.invariants:
            tds = []
            for lay in self.layouts:
                r = cells.get((i, lay))
                if r is None:
                    tds.append("<td></td>")
                    continue
                tip = esc(r.message, quote=True)
                tds.append(f'<td title="{tip}" style="color:{colours.get(r.status, "")}">'
                           f"{esc(r.cell())}</td>")
            body.append(f"<tr><th style='text-align:left'>{esc(INVARIANTS.get(i, i))}</th>"
                        f"{''.join(tds)}</tr>")
        notes = "".join(f"<li>{esc(n)}</li>" for n in self._notes())
        return (f"<div class='lensnb-check'><p>{esc(self._header())}</p>"
                f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>"
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")
