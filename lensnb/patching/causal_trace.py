"""``lensnb.causal_trace``: ROME's causal tracing (Meng et al. 2022, "Locating and Editing
Factual Associations in GPT", section 2.1).

The subject's token embeddings are corrupted with Gaussian noise (``noise`` times the standard
deviation of those embeddings' values; ROME uses 3), ``samples`` noised copies; then one hidden
state at one layer and one position is restored to its clean value, and the probability of the
answer at the last position, averaged over the noised copies, says how much of the fact that
state carries. Three maps: the block's output (``hook_resid_post``) at one layer; the MLP
outputs and the attention outputs of a window of ``window`` layers around it (ROME's
``layer - window // 2`` up to ``layer + window // 2 - 1``), at one position.

All restorations run batched (one row per noised copy and cell), each row joining the pass at
the first layer it restores as a copy of its noised copy's residual stream
(``exact.branch_hooks``); positions before the subject are not run: the noise cannot reach
them, so restoring them changes nothing (the corrupted probability).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..core.errors import InputError, InputTypeError
from ..core.indices import check_position
from . import runner
from .exact import branch_hooks, run_and_capture, writer
from .metrics import answer_token, prompt_tokens
from .sites import require_text_model

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from ..lens import Lens

KINDS = ("state", "mlp", "attn")
_HOOKS = {"state": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}
EMBEDDING_HOOK = "hook_resid_pre"  # of block 0: the embedding as the blocks see it


@dataclass
class CausalTrace:
    """The three maps of a causal trace: the probability of the answer with one state restored.

    Attributes:
        state, mlp, attn: ``[n_layers, n_positions]`` float32 on the CPU (``None`` for a kind
            not traced): restoring the block output at (layer, position), or the MLP /
            attention outputs of the window of layers around it at that position.
        subject_positions: the noised positions.
        str_tokens: the prompt's tokens.
        answer, answer_str: the answer token.
        clean_prob, corrupted_prob: its probability on the clean prompt, and with the noise
            (averaged over the noised copies).
        noise_std: the standard deviation of the noise added (``noise`` x the subject
            embeddings' standard deviation, unless given).
        noise: the noise added, ``[samples, n_subject, d_model]`` (CPU).
        window, samples: as passed.
    """

    state: torch.Tensor | None
    mlp: torch.Tensor | None
    attn: torch.Tensor | None
    subject_positions: list[int]
    str_tokens: list[str]
    answer: int
    answer_str: str
    clean_prob: float
    corrupted_prob: float
    noise_std: float
    noise: torch.Tensor = field(repr=False)
    window: int = 10
    samples: int = 10

    def __repr__(self) -> str:
        best = []
        for kind in KINDS:
            m = getattr(self, kind)
            if m is not None:
                i = int(m.argmax())
                la, p = divmod(i, m.shape[1])
                best.append(f"{kind} L{la} {self.str_tokens[p]!r} {float(m.flatten()[i]):.3f}")
        return (f"CausalTrace(p({self.answer_str!r}) clean {self.clean_prob:.3f}, corrupted "
                f"{self.corrupted_prob:.3f}; subject {self.subject_positions}; best: "
                f"{'; '.join(best)})")

    def to_frame(self) -> pd.DataFrame:
        """One row per (kind, layer, position): ``kind``, ``layer``, ``position``, ``token``,
        ``subject``, ``prob``."""
        import pandas as pd

        rows = []
        for kind in KINDS:
            m = getattr(self, kind)
            if m is None:
                continue
            for la in range(m.shape[0]):
                for p in range(m.shape[1]):
                    rows.append(dict(kind=kind, layer=la, position=p, token=self.str_tokens[p],
                                     subject=p in self.subject_positions,
                                     prob=float(m[la, p])))
        return pd.DataFrame(rows)

    def figure(self, *, title: str | None = None, height: float | None = None,
               color_continuous_scale: Any = None, style: str | None = None) -> go.Figure:
        """Three heatmaps, tokens down (subject tokens marked ``*``) and layers across, as in
        ROME's figure 1; colour: the probability of the answer."""
        from .figures import causal_trace_figure

        return causal_trace_figure(self, title=title, height=height,
                                   colorscale=color_continuous_scale, style=style)


def subject_positions(lens: Lens, tokens: torch.Tensor, subject: Any) -> list[int]:
    """The positions of ``subject`` in ``tokens [1, pos]``: the tokens overlapping the first
    occurrence of the subject's text, or positions given as ints."""
    n = tokens.shape[1]
    if isinstance(subject, str):
        pieces = lens.to_str_tokens(tokens)
        text = "".join(pieces)
        at = text.find(subject)
        if not subject or at < 0:
            raise InputError(f"subject {subject!r} is not in the prompt (its tokens: {pieces}); "
                             "pass a part of the prompt's text, or its token positions")
        out, start = [], 0
        for i, piece in enumerate(pieces):
            end = start + len(piece)
            if end > at and start < at + len(subject) and piece:
                out.append(i)
            start = end
        return out
    if isinstance(subject, int) and not isinstance(subject, bool):
        subject = [subject]
    if not isinstance(subject, Sequence) or not subject:
        raise InputTypeError("subject is the subject's text (part of the prompt) or a list of "
                             f"its token positions, got {subject!r}")
    return sorted({check_position(p, n, "subject position") % n for p in subject})


def _window(layer: int, window: int, n_layers: int) -> range:
    """ROME's window of layers around ``layer`` (``layername``'s ``range`` in its
    ``trace_important_window``)."""
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


def causal_trace(lens: Lens, prompt: Any, subject: Any, answer: int | str, *,
                 noise: float = 3.0, samples: int = 10, window: int = 10, seed: int = 0,
                 kinds: Sequence[str] = KINDS, noise_std: float | None = None,
                 batch_size: int | None = None, progress: runner.Progress = None,
                 ) -> CausalTrace:
    """ROME's causal tracing of ``answer`` after ``prompt`` with ``subject`` noised.

    Args:
        lens: the model.
        prompt: a text or token ids ``[1, pos]``; the answer is read at its last position.
        subject: the subject's text (a part of the prompt: the tokens overlapping its first
            occurrence are noised) or its token positions.
        answer: the answer token (an id or a string of one token).
        noise: the noise's standard deviation as a multiple of the standard deviation of the
            subject tokens' embeddings (the values of ``blocks.0.hook_resid_pre`` there); ROME's
            3. ``noise_std``: an absolute standard deviation instead.
        samples: noised copies averaged per cell (ROME: 10).
        window: layers restored around each layer for the MLP and attention maps (ROME: 10).
        seed: of the noise (``torch.Generator`` on the CPU, so the same on every device).
        kinds: which maps: ``"state"``, ``"mlp"``, ``"attn"``.
        batch_size, progress: as for ``activation_patching``.
    """
    require_text_model(lens, "causal tracing")
    kinds = list(dict.fromkeys(kinds))
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise InputError(f"kinds are some of {', '.join(map(repr, KINDS))}, got {kinds!r}")
    for name, value, low in (("samples", samples, 1), ("window", window, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{name} must be an int >= {low}, got {value!r}")
    runner.check_progress(progress)
    tokens = prompt_tokens(lens, prompt, "prompt")
    n_pos, n_layers = tokens.shape[1], lens.n_layers
    subj = subject_positions(lens, tokens, subject)
    answer_id = answer_token(lens, answer, "answer")

    names = [lens.hook_name(EMBEDDING_HOOK, 0)] + [
        lens.hook_name(_HOOKS[k], la) for k in kinds for la in range(n_layers)]
    with torch.no_grad():
        resid, clean = run_and_capture(lens, tokens, names)
        clean_prob = float(_prob(lens, resid, answer_id)[0])
    embed = clean[names[0]][subj].double()  # [n_subject, d_model]
    std = float(noise_std) if noise_std is not None else float(noise) * float(embed.std())
    gen = torch.Generator().manual_seed(int(seed))
    draws = torch.randn(samples, len(subj), lens.facts.d_model, generator=gen,
                        dtype=torch.float64) * std  # [samples, n_subject, d_model]

    first = subj[0]
    cells = [(k, la, p) for k in kinds for la in range(n_layers) for p in range(first, n_pos)]
    # each pass: one noised copy (the trunk, row 0) and rows restoring cells in that copy, each
    # joining the pass where its restoration begins (branch_hooks: one trunk row per pass)
    order = sorted(range(len(cells)), key=lambda c: _first_layer(cells[c], window, n_layers))
    size = max(1, runner.batch_size(lens, n_pos, batch_size, n_rows=len(cells) + 1) - 1)
    probs = torch.empty(len(cells), samples, dtype=torch.float64)
    parts = runner.chunks(len(cells), size)
    trunk_probs = torch.empty(samples, dtype=torch.float64)
    with (torch.no_grad(),
          runner.progress_bar(progress, len(cells) * samples, "causal trace",
                              passes=len(parts) * samples) as advance):
        for sample in range(samples):
            noise_hook = _noise_hook(names[0], subj, draws, [sample])
            for part in parts:
                chunk = [order[i] for i in part]
                hooks = [noise_hook, *branch_hooks(
                    lens, [_first_layer(cells[c], window, n_layers) for c in chunk])]
                hooks += _restore_hooks(lens, [cells[c] for c in chunk], clean, window,
                                        first_row=1)
                out = _prob(lens, runner.final_residual(lens, tokens, hooks), answer_id)
                out = out.double().cpu()
                trunk_probs[sample] = out[0]
                probs[chunk, sample] = out[1:]
                advance(len(chunk))
    corrupted_prob = float(trunk_probs.mean())
    maps: dict[str, torch.Tensor | None] = dict.fromkeys(KINDS)
    per_cell = probs.mean(-1)
    for k in kinds:
        maps[k] = torch.full((n_layers, n_pos), corrupted_prob, dtype=torch.float64)
    for (k, la, p), v in zip(cells, per_cell.tolist(), strict=True):
        maps[k][la, p] = v
    return CausalTrace(
        state=_f32(maps["state"]), mlp=_f32(maps["mlp"]), attn=_f32(maps["attn"]),
        subject_positions=subj, str_tokens=lens.to_str_tokens(tokens), answer=answer_id,
        answer_str=lens.tokenizer.decode([answer_id]), clean_prob=clean_prob,
        corrupted_prob=corrupted_prob, noise_std=std, noise=draws.float(), window=window,
        samples=samples)


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.float()


def _prob(lens: Lens, resid: torch.Tensor, answer: int) -> torch.Tensor:
    """``[batch]`` probability of ``answer`` at the last position."""
    return runner.logits_at(lens, resid, -1).float().softmax(-1)[:, answer]


def _noise_hook(name: str, subj: list[int], draws: torch.Tensor, samples: Sequence[int]
                ) -> tuple[str, Any]:
    """Adds ``draws[samples[i]]`` at the subject positions of row ``i``."""
    pick = torch.tensor(list(samples))
    pos = torch.tensor(subj)

    def add(act: torch.Tensor, ctx: Any) -> torch.Tensor:
        new = act.clone()
        new[:, pos.to(act.device)] += draws[pick].to(act.device, act.dtype)
        return new

    return name, add


def _first_layer(cell: tuple[str, int, int], window: int, n_layers: int) -> int:
    """The first layer a cell restores (where its rows join the pass)."""
    kind, layer, _ = cell
    return layer if kind == "state" else _window(layer, window, n_layers)[0]


def _restore_hooks(lens: Lens, cells: Sequence[tuple[str, int, int]],
                   clean: dict[str, torch.Tensor], window: int, *, first_row: int = 0
                   ) -> list[tuple[str, Any]]:
    """Hooks restoring, in row ``first_row + i``, the clean activations of ``cells[i]``."""
    groups: dict[str, tuple[list[int], list[int]]] = {}
    for row, (kind, layer, pos) in enumerate(cells, start=first_row):
        layers = [layer] if kind == "state" else _window(layer, window, lens.n_layers)
        for la in layers:
            rows, ps = groups.setdefault(lens.hook_name(_HOOKS[kind], la), ([], []))
            rows.append(row)
            ps.append(pos)
    return [(name, writer(rows, ps, None, clean[name])) for name, (rows, ps) in groups.items()]
