"""Plotly figures of patching results, styled by the theme (``lensnb.export.style``): signed
scores on the diverging scale centred at 0, probabilities on the sequential one."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .causal_trace import CausalTrace
    from .results import PatchingResult

def token_label(token: str) -> str:
    """A token as figure text: HTML-escaped (plotly reads tags), newlines and tabs visible."""
    return html.escape(token.replace("\n", "\\n").replace("\t", "\\t"))


AXIS_TITLES = {"layer": "layer", "position": "token", "head": "head", "kv_group": "KV group",
               "score": "score"}


def _axis(values: list[Any], text: list[str], title: str, *, reverse: bool = False) -> dict:
    axis = dict(title=title, tickmode="array", tickvals=values, ticktext=text)
    if reverse:
        axis["autorange"] = "reversed"
    return axis


def patching_figure(res: PatchingResult, *, title: str | None, labels: dict[str, str],
                    height: float | None, colorscale: Any, style: str | None) -> go.Figure:
    import plotly.graph_objects as go

    from ..export.style import DIVERGING, apply_style

    names = {**AXIS_TITLES, **labels}
    scores = res.scores.float().numpy()
    span = float(np.abs(scores).max()) or 1.0
    groups = res.kv_groups
    toks = [token_label(t) for t in res.str_tokens]
    x_axis: dict
    if res.site == "head_by_pos":  # rows: every (layer, head); columns: positions
        z = scores.transpose(0, 2, 1).reshape(-1, scores.shape[1])
        y_text = [f"L{la}H{h}" for la in res.layers for h in range(scores.shape[2])]
        y = list(range(len(y_text)))
        x = list(range(len(res.positions or [])))
        x_text = [toks[p] for p in res.positions or []]
        custom = [[[y_text[r], p, toks[p], groups.kv_head_of(r % scores.shape[2])]
                   for p in res.positions or []] for r in y]
        hover = ("%{customdata[0]} (KV group %{customdata[3]})<br>position %{customdata[1]}: "
                 "%{customdata[2]}")
        y_axis = _axis(y, y_text, f"{names['layer']} and {names['head']}", reverse=True)
        x_axis = _axis(x, x_text, names["position"])
    else:
        z = scores
        y = list(range(len(res.layers)))
        y_axis = _axis(y, [str(la) for la in res.layers], names["layer"], reverse=True)
        if res.positions is not None:
            x = list(range(len(res.positions)))
            x_axis = _axis(x, [toks[p] for p in res.positions], names["position"])
            custom = [[[la, p, toks[p]] for p in res.positions] for la in res.layers]
            hover = "layer %{customdata[0]}<br>position %{customdata[1]}: %{customdata[2]}"
        elif res.site == "head":
            x = list(range(groups.n_heads))
            x_axis = _axis(x, [str(h) for h in x], names["head"])
            custom = [[[la, h, groups.kv_head_of(h)] for h in x] for la in res.layers]
            hover = "L%{customdata[0]}H%{customdata[1]} (KV group %{customdata[2]})"
        else:  # kv_group
            x = list(range(groups.n_key_value_heads))
            heads = [groups.heads_of_kv(g) for g in x]
            x_axis = _axis(x, [f"{g} (H{hs[0]}-{hs[-1]})" if len(hs) > 1 else f"{g} (H{hs[0]})"
                               for g, hs in zip(x, heads, strict=True)], names["kv_group"])
            custom = [[[la, g, ", ".join(map(str, heads[g]))] for g in x] for la in res.layers]
            hover = "layer %{customdata[0]}, KV group %{customdata[1]}<br>query heads " \
                    "%{customdata[2]}"
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=y, customdata=custom, colorscale=colorscale or DIVERGING, zmid=0,
        zmin=-span, zmax=span, colorbar=dict(title=names["score"]),
        hovertemplate=hover + "<br>score %{z:.4f}<extra></extra>"))
    if res.site == "head" and groups.is_gqa:  # lines between KV groups
        for g in range(1, groups.n_key_value_heads):
            fig.add_vline(x=g * groups.group_size - 0.5, line_width=1,
                          line_color=_fg(), opacity=0.5)
    kind = "attribution patching" if res.method == "attribution" else "activation patching"
    fig.update_layout(
        title=title if title is not None else f"{kind}: {res.site} (clean "
        f"{res.clean_value:+.2f}, corrupted {res.corrupted_value:+.2f})",
        xaxis=x_axis, yaxis=y_axis)
    return apply_style(fig, style, height=height)


def _fg() -> str:
    from ..core import theme

    return theme.ui("fg")


def causal_trace_figure(tr: CausalTrace, *, title: str | None, height: float | None,
                        colorscale: Any, style: str | None) -> go.Figure:
    """Three heatmaps (single state, MLP window, attention window), tokens down, layers
    across, subject tokens marked with ``*``; colour = probability of the answer."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from ..export.style import SEQUENTIAL, apply_style

    kinds = [k for k in ("state", "mlp", "attn") if getattr(tr, k) is not None]
    names = {"state": "single restored layer", "mlp": f"MLP ({tr.window} layers)",
             "attn": f"attention ({tr.window} layers)"}
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True,
                        subplot_titles=[names[k] for k in kinds], horizontal_spacing=0.04)
    toks = [token_label(t) + (" *" if i in tr.subject_positions else "")
            for i, t in enumerate(tr.str_tokens)]
    hi = max(float(getattr(tr, k).max()) for k in kinds)
    for c, kind in enumerate(kinds, start=1):
        z = getattr(tr, kind).float().numpy().T  # [pos, layers]
        custom = [[[toks[p], la] for la in range(z.shape[1])] for p in range(z.shape[0])]
        fig.add_trace(go.Heatmap(
            z=z, x=list(range(z.shape[1])), y=list(range(z.shape[0])), customdata=custom,
            colorscale=colorscale or SEQUENTIAL, zmin=min(tr.corrupted_prob, float(z.min())),
            zmax=hi, coloraxis=None, showscale=c == len(kinds),
            colorbar=dict(title=f"p({token_label(tr.answer_str)})"),
            hovertemplate="%{customdata[0]}, layer %{customdata[1]}<br>p = %{z:.4f}"
                          "<extra></extra>"), row=1, col=c)
        fig.update_xaxes(title_text="layer", row=1, col=c)
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(toks))), ticktext=toks,
                     autorange="reversed", row=1, col=1)
    fig.update_layout(title=title if title is not None else (
        f"causal trace: p({token_label(tr.answer_str)}) clean {tr.clean_prob:.3f}, corrupted "
        f"{tr.corrupted_prob:.3f}"))
    return apply_style(fig, style, height=height)
