"""Direct logit attribution (DLA): what each attention head, MLP and the embedding writes
straight onto the logit of a token (or a logit difference), heads grouped by KV head.

The residual stream entering the final norm is a sum of parts,
``resid_final = embed + sum_l (sum_h head_{l,h} + b_O,l + mlp_l)``, where
``head_{l,h} = z_{l,h} @ W_O,l[h]`` is head ``h``'s output through its slice of ``W_O``. The
final RMSNorm is made linear by freezing its scale at the value of this very run
(``ln_final.hook_scale``, the RMS of ``resid_final`` at the position, read from the cache):

    logit[t] = (W_U[t] * g) . resid_final / scale + b_U[t]

with ``g`` the norm's effective weight (``1 + w`` for Gemma, ``w`` for Llama). So part ``c``
contributes ``(W_U[t] * g) . c / scale`` and the contributions sum to the logit exactly. A
logit difference ``t - b`` uses the direction ``W_U[t] - W_U[b]``. Models with final-logit
soft-capping (Gemma 2) are attributed before the cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..core.errors import InputError, InputTypeError, UnsupportedFeatureError
from ..core.indices import check_index, check_position
from ..core.kv_groups import KVGroups, group_patterns


@dataclass
class LogitAttribution:
    """Direct logit attribution at one position; every number is in logit units.

    Attributes:
        token, baseline: the token ids attributed (``logit[token] - logit[baseline]``, or
            ``logit[token]`` when ``baseline`` is None).
        pos: the position (non-negative) whose prediction is attributed.
        str_tokens: the input tokens.
        heads: ``[n_layers, n_heads]`` each head's direct effect.
        attn_bias: ``[n_layers]`` the attention output bias ``b_O`` (zero when there is none).
        mlp: ``[n_layers]`` each MLP's direct effect.
        embed: the embedding as it enters block 0.
        unembed_bias: ``b_U[token] - b_U[baseline]`` (zero when the unembedding has no bias).
        logit_diff: the model's own logit (difference) from the same run.
    """

    token: int
    baseline: int | None
    pos: int
    str_tokens: list[str]
    heads: torch.Tensor
    attn_bias: torch.Tensor
    mlp: torch.Tensor
    embed: float
    unembed_bias: float
    logit_diff: float
    n_key_value_heads: int

    @property
    def by_kv_group(self) -> torch.Tensor:
        """``[n_layers, n_kv, group_size]``: head attributions grouped by the KV head they read."""
        return group_patterns(self.heads.unsqueeze(-1).unsqueeze(-1),
                              self.n_key_value_heads)[..., 0, 0]

    @property
    def kv_group_totals(self) -> torch.Tensor:
        """``[n_layers, n_kv]``: summed direct effect of each KV group's query heads."""
        return self.by_kv_group.sum(dim=-1)

    @property
    def total(self) -> float:
        """Sum of all parts; equals ``logit_diff`` (before any final-logit soft-cap)."""
        return float(self.heads.sum() + self.attn_bias.sum() + self.mlp.sum()
                     + self.embed + self.unembed_bias)

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per part: component, layer, head, kv_head, attribution."""
        import pandas as pd

        n_layers, n_heads = self.heads.shape
        groups = KVGroups(n_heads, self.n_key_value_heads)
        rows = [("embed", None, None, None, self.embed)]
        for layer in range(n_layers):
            rows += [("head", layer, h, groups.kv_head_of(h), float(self.heads[layer, h]))
                     for h in range(n_heads)]
            rows.append(("attn_bias", layer, None, None, float(self.attn_bias[layer])))
            rows.append(("mlp", layer, None, None, float(self.mlp[layer])))
        rows.append(("unembed_bias", None, None, None, self.unembed_bias))
        frame = pd.DataFrame(rows, columns=["component", "layer", "head", "kv_head",
                                            "attribution"])
        return frame.astype({"layer": "Int64", "head": "Int64", "kv_head": "Int64"})

    def __repr__(self) -> str:
        top = self.heads.flatten().abs().topk(min(3, self.heads.numel())).indices.tolist()
        n_heads = self.heads.shape[1]
        best = ", ".join(f"L{i // n_heads}H{i % n_heads} {float(self.heads.flatten()[i]):+.3f}"
                         for i in top)
        what = f"{self.token}" if self.baseline is None else f"{self.token} - {self.baseline}"
        return (f"LogitAttribution(logit[{what}] at pos {self.pos} = {self.logit_diff:+.4f}; "
                f"parts sum to {self.total:+.4f}; top heads: {best})")


def token_id(lens: Any, token: int | str) -> int:
    """A vocabulary id from an id or a string that is exactly one token."""
    if isinstance(token, str):
        ids = lens.tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            pieces = [lens.tokenizer.decode([i]) for i in ids]
            raise InputError(f"{token!r} is {len(ids)} tokens {pieces}, not one: pass a single "
                             "token's text or its id")
        return ids[0]
    if isinstance(token, bool) or not isinstance(token, int):
        raise InputTypeError(f"a token is an id (int) or its text (str), got "
                             f"{type(token).__name__}")
    return check_index(token, lens.facts.vocab_size, "token id", plural="ids")


def _norm_gain(lens: Any) -> torch.Tensor:
    """Effective elementwise weight ``g`` of the final RMSNorm ``[d_model]`` (float64)."""
    norm = lens.bridge.ln_final.original_component
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    shifts = isinstance(norm, torch.nn.LayerNorm) or getattr(norm, "bias", None) is not None
    if eps is None or shifts:
        raise UnsupportedFeatureError(
            f"direct logit attribution supports RMSNorm final norms; {type(norm).__name__} "
            "centres or shifts the residual stream, which this version does not decompose"
        )
    d_model = lens.facts.d_model
    ones = torch.ones(1, d_model, dtype=lens.dtype, device=next(norm.parameters()).device)
    with torch.no_grad():
        # RMSNorm(1) = g / sqrt(1 + eps), whatever the weight parametrisation (w or 1 + w).
        return norm(ones)[0].double() * math.sqrt(1 + eps)


def _head_outputs(lens: Any, layer: int, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head outputs through W_O ``[n_heads, d_model]`` from ``z`` ``[n_heads, d_head]``,
    and the output bias ``[d_model]`` (zeros when there is none)."""
    o = lens.bridge.blocks[layer].attn.o.original_component
    if not isinstance(o, torch.nn.Linear):
        raise UnsupportedFeatureError(
            f"per-head attribution needs a Linear W_O, got {type(o).__name__}")
    n_heads, d_head = z.shape
    w_o = o.weight.double().T.reshape(n_heads, d_head, -1)  # [n_heads, d_head, d_model]
    out = torch.einsum("hd,hdm->hm", z.double(), w_o)
    bias = o.bias.double() if o.bias is not None else torch.zeros(out.shape[-1], dtype=out.dtype,
                                                                   device=out.device)
    return out, bias


@torch.no_grad()
def logit_attribution(lens: Any, text_or_tokens: Any, token: int | str,
                      baseline: int | str | None = None, *, pos: int = -1) -> LogitAttribution:
    """Direct logit attribution of ``logit[token]`` (minus ``logit[baseline]``) at ``pos``.

    One text. Heads are read from ``hook_z`` through each head's slice of ``W_O``; the final
    RMSNorm's scale is frozen at this run's value (``ln_final.hook_scale``). Raises
    ``NotImplementedError`` where the residual stream is not the plain sum of its parts
    (e.g. norms after the attention output, as in Gemma 2/3).
    """
    lens.require(
        "direct_logit_attribution", "direct logit attribution (logit_attribution)",
        "use lens.text_only().logit_attribution(text, token) for the language model on text "
        "without images (the same numbers: without an image the cross-attention layers are "
        "skipped)")
    tokens = lens.to_tokens(text_or_tokens)
    if tokens.shape[0] != 1:
        raise InputError(f"logit_attribution takes one text, got a batch of {tokens.shape[0]}")
    pos = check_position(pos, tokens.shape[1])  # negative counts from the end
    t = token_id(lens, token)
    b = None if baseline is None else token_id(lens, baseline)

    names = ["blocks.0.hook_resid_pre", "blocks.*.attn.hook_z", "blocks.*.hook_attn_out",
             "blocks.*.hook_mlp_out", "ln_final.hook_in", "ln_final.hook_scale"]
    logits, cache = lens.run_with_cache(tokens, names=names)

    unembed = lens.bridge.unembed.original_component
    w_u = unembed.weight.double()  # [d_vocab, d_model]
    direction = w_u[t] - (w_u[b] if b is not None else 0)  # [d_model]
    u_bias = getattr(unembed, "bias", None)
    unembed_bias = 0.0 if u_bias is None else float(u_bias[t] - (u_bias[b] if b is not None else 0))
    scale = cache["ln_final.hook_scale"][0, pos].double().squeeze()  # RMS of resid_final
    direction = direction * _norm_gain(lens).to(direction.device) / scale  # [d_model]

    def project(x: torch.Tensor) -> torch.Tensor:  # [..., d_model] -> [...]
        return x.double().to(direction.device) @ direction

    embed = cache["blocks.0.hook_resid_pre"][0, pos].double()
    total = embed.clone()
    heads, attn_bias, mlp = [], [], []
    for layer in range(lens.n_layers):
        out, bias = _head_outputs(lens, layer, cache[f"blocks.{layer}.attn.hook_z"][0, pos])
        attn_out = cache[f"blocks.{layer}.hook_attn_out"][0, pos].double()
        mlp_out = cache[f"blocks.{layer}.hook_mlp_out"][0, pos].double()
        _check_sum(out.sum(0) + bias, attn_out, f"layer {layer}: heads + b_O vs hook_attn_out")
        heads.append(project(out))
        attn_bias.append(project(bias))
        mlp.append(project(mlp_out))
        total += attn_out + mlp_out
    _check_sum(total, cache["ln_final.hook_in"][0, pos].double(),
               "embed + attention + MLP outputs vs the final residual stream")

    logit = logits[0, pos].double()
    return LogitAttribution(
        token=t, baseline=b, pos=pos, str_tokens=lens.to_str_tokens(tokens),
        heads=torch.stack(heads).cpu(), attn_bias=torch.stack(attn_bias).cpu(),
        mlp=torch.stack(mlp).cpu(), embed=float(project(embed)), unembed_bias=unembed_bias,
        logit_diff=float(logit[t] - (logit[b] if b is not None else 0)),
        n_key_value_heads=lens.n_key_value_heads,
    )


def _check_sum(parts: torch.Tensor, whole: torch.Tensor, what: str) -> None:
    tol = 1e-3 * float(whole.abs().max()) + 1e-4
    if float((parts.to(whole.device) - whole).abs().max()) > tol:
        raise UnsupportedFeatureError(
            f"the residual stream is not the plain sum of its parts here ({what}), e.g. a norm "
            "after the attention output (Gemma 2/3): direct logit attribution would not add up"
        )
