"""``lensnb.logit_lens``: what each layer's residual stream would predict if it were the last
(nostalgebraist 2020): every layer's residual stream through the model's own final norm and
unembedding (``lens.unembed``), at every position.

Row 0 is the embedding (``blocks.0.hook_resid_pre``), row ``i`` the output of block ``i - 1``
(``blocks.{i-1}.hook_resid_post``); the last row is the model's own prediction. On Llama 3.2
Vision without an image the cross-attention layers are skipped (their output is their input),
so their rows repeat the row before (``skipped``); pass ``images=`` to read them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..core.errors import InputError, InputTypeError
from .attribution import token_id

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go


@dataclass
class LogitLens:
    """Top predictions of every layer's residual stream at every position.

    Attributes:
        top_ids: ``[n_layers + 1, n_positions, k]`` token ids, most probable first.
        top_probs: ``[n_layers + 1, n_positions, k]`` their probabilities (float32, CPU).
        top_tokens: the same as strings, ``[n_layers + 1][n_positions][k]``.
        target: the target token id, or ``None``.
        target_probs: ``[n_layers + 1, n_positions]`` the target's probability, or ``None``.
        str_tokens: the text's tokens.
        rows: the hook each row reads (``blocks.0.hook_resid_pre``, ``blocks.0.hook_resid_post``,
            ...).
        target_str: the target as text.
        skipped: the rows whose block did not run (Llama 3.2 Vision's cross-attention layers
            without an image): each repeats the row before.
    """

    top_ids: torch.Tensor
    top_probs: torch.Tensor
    top_tokens: list[list[list[str]]]
    target: int | None
    target_probs: torch.Tensor | None
    str_tokens: list[str]
    rows: list[str]
    target_str: str | None = None
    skipped: list[int] | None = None

    @property
    def row_labels(self) -> list[str]:
        """``"embed"``, then ``"0"``, ``"1"``, ...: the block whose output each row reads."""
        return ["embed"] + [str(i) for i in range(len(self.rows) - 1)]

    def __repr__(self) -> str:
        last = self.top_tokens[-1][-1][0]
        first = next((i for i in range(len(self.rows)) if self.top_tokens[i][-1][0] == last),
                     None)
        return (f"LogitLens({len(self.rows)} rows x {len(self.str_tokens)} positions, top "
                f"{self.top_ids.shape[-1]}; last position predicts {last!r}, first from row "
                f"{self.row_labels[first] if first is not None else '-'})")

    def to_frame(self) -> pd.DataFrame:
        """One row per (layer row, position, rank): ``row``, ``position``, ``token``,
        ``rank``, ``prediction``, ``prob`` (and ``target_prob``)."""
        import pandas as pd

        out = []
        for r, label in enumerate(self.row_labels):
            for p, tok in enumerate(self.str_tokens):
                for k in range(self.top_ids.shape[-1]):
                    row = dict(row=label, position=p, token=tok, rank=k,
                               prediction=self.top_tokens[r][p][k],
                               prob=float(self.top_probs[r, p, k]))
                    if self.target_probs is not None:
                        row["target_prob"] = float(self.target_probs[r, p])
                    out.append(row)
        return pd.DataFrame(out)

    def figure(self, *, color: str = "top", title: str | None = None,
               height: float | None = None, color_continuous_scale: Any = None,
               style: str | None = None) -> go.Figure:
        """A heatmap layer x position: each cell shows its top token, coloured by its
        probability (``color="target"``: by the target's); hovering lists the top ``k`` with
        probabilities (and the target's)."""
        import plotly.graph_objects as go

        from ..core import theme
        from ..export.style import SEQUENTIAL, apply_style

        if color not in ("top", "target"):
            raise InputError(f"color is 'top' or 'target', got {color!r}")
        if color == "target" and self.target_probs is None:
            raise InputError("color='target' needs a target: lensnb.logit_lens(lens, text, "
                             "target=...)")

        def esc(t: str) -> str:
            return html.escape(t.replace("\n", "\\n").replace("\t", "\\t"))

        z = self.target_probs if color == "target" else self.top_probs[..., 0]
        labels = self.row_labels
        text = [[esc(self.top_tokens[r][p][0]) for p in range(len(self.str_tokens))]
                for r in range(len(labels))]
        target = "" if self.target_str is None else f"p({esc(self.target_str)}) = "
        hover = [["<br>".join(f"{esc(t)} {float(pr):.3f}"
                              for t, pr in zip(self.top_tokens[r][p], self.top_probs[r, p],
                                               strict=True))
                  + ("" if self.target_probs is None else
                     f"<br>{target}{float(self.target_probs[r, p]):.3f}")
                  for p in range(len(self.str_tokens))] for r in range(len(labels))]
        toks = [esc(t) for t in self.str_tokens]
        what = "p(top token)" if color == "top" else "p(target)"
        fig = go.Figure(go.Heatmap(
            z=z.float().numpy(), x=list(range(len(toks))), y=list(range(len(labels))),
            text=text, texttemplate="%{text}", customdata=hover, zmin=0, zmax=1,
            textfont=dict(size=theme.FONT["tiny_px"]),
            colorscale=color_continuous_scale or SEQUENTIAL, colorbar=dict(title=what),
            hovertemplate="row %{y}, position %{x}<br>%{customdata}<extra></extra>"))
        fig.update_layout(
            title=title if title is not None else "logit lens" + (
                f": p({esc(self.target_str)})" if color == "target" else ""),
            xaxis=dict(title="token", tickmode="array", tickvals=list(range(len(toks))),
                       ticktext=toks),
            yaxis=dict(title="layer (block output)", tickmode="array",
                       tickvals=list(range(len(labels))), ticktext=labels,
                       autorange="reversed"))
        return apply_style(fig, style, height=height)


@torch.no_grad()
def logit_lens(lens: Any, text: Any, target: int | str | None = None, *, k: int = 5,
               images: Any = None) -> LogitLens:
    """Every layer's residual stream through the final norm and unembedding, at every position.

    Args:
        lens: the model.
        text: one text (or token ids ``[1, pos]``).
        target: a token (id or a string of one token) whose probability to follow.
        k: how many top predictions to keep per cell.
        images: for a Llama 3.2 Vision lens, the pictures of the text's ``<|image|>`` tokens.
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise InputTypeError(f"k is a number of predictions (int), got {type(k).__name__}")
    if not 1 <= k <= lens.facts.vocab_size:
        raise InputError(f"k must be 1..{lens.facts.vocab_size} (the vocabulary), got {k}")
    tokens, kwargs = lens.inputs(text, images)  # kwargs: a vision model's image tensors
    if tokens.shape[0] != 1:
        raise InputError(f"logit_lens takes one text, got a batch of {tokens.shape[0]}")
    target_id = None if target is None else token_id(lens, target)
    rows = [lens.hook_name("hook_resid_pre", 0)] + [
        lens.hook_name("hook_resid_post", i) for i in range(lens.n_layers)]
    _, cache = lens.run_with_cache(tokens, names=rows, **kwargs)
    ids, probs, tprobs, skipped = [], [], [], []
    resid = None
    for r, name in enumerate(rows):  # one row at a time: [pos, d_vocab], never all at once
        if name in cache:
            resid = cache[name][0]
        else:  # a block that did not run (a cross-attention layer without an image)
            skipped.append(r)
        p = lens.unembed(resid).float().softmax(-1)  # [pos, d_vocab]
        top = p.topk(k, dim=-1)
        ids.append(top.indices.cpu())
        probs.append(top.values.cpu())
        if target_id is not None:
            tprobs.append(p[:, target_id].cpu())
    top_ids = torch.stack(ids)
    decode = lens.tokenizer.decode
    return LogitLens(
        top_ids=top_ids, top_probs=torch.stack(probs),
        top_tokens=[[[decode([i]) for i in cell] for cell in row] for row in top_ids.tolist()],
        target=target_id, target_probs=torch.stack(tprobs) if tprobs else None,
        str_tokens=lens.to_str_tokens(tokens), rows=rows,
        target_str=None if target_id is None else decode([target_id]), skipped=skipped)
