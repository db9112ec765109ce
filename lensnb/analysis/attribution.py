"""Direct logit attribution (DLA): what each attention head, MLP and the embedding writes
straight onto the logit of a token (or a logit difference), heads grouped by KV head.

The residual stream entering the final norm is a sum of parts,
``resid_final = embed + sum_l (attn_l + mlp_l)``, where ``attn_l`` and ``mlp_l`` are what layer
``l`` adds to the residual stream (``hook_attn_out``/``hook_mlp_out``; GPT-NeoX's parallel
attention and MLP add both to the same stream). A norm is made affine by freezing its scale at
the value of this very run: ``norm(x) = g * centre(x) / s + b`` with ``s`` the scale this run
computed, ``g`` the norm's effective weight (``1 + w`` for Gemma, ``w`` otherwise), ``centre``
subtracting the mean for LayerNorm (GPT-2, GPT-NeoX) and nothing for RMSNorm, and ``b`` the
LayerNorm bias (``FrozenNorm``, read off the module by probing it, whatever its
parametrisation). Then

    logit[t] = (W_U[t] * g) . centre(resid_final) / s + W_U[t] . b + b_U[t]

so part ``c`` contributes ``(W_U[t] * g) . centre(c) / s``, the final norm's bias and the
unembedding bias go to a bias part, and the parts sum to the logit exactly (the model's own
logit before any final-logit soft-cap, Gemma 2's). A logit difference ``t - b`` uses
``W_U[t] - W_U[b]``. Head ``h`` writes ``z_h @ W_O[h]``; ``attn_l = sum_h head_h + b_O``; the
constant every head writes whatever it attends to (its value bias) is moved into ``attn_bias``,
as TransformerLens's ``fold_value_biases`` does. Where a
norm follows the attention output (Gemma 2/3, OLMo-2: ``attn_l = post_norm(o_proj(z))``) it is
frozen too, so each head's part is ``post_norm``'s linear part of ``head_h`` and the heads plus
``attn_bias`` still sum to what the block adds. This is TransformerLens's decomposition (its
``stack_head_results`` through ``apply_ln_to_stack``) on the raw weights, extended through
post-norms.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from ..core.errors import InputError, InputTypeError, UnsupportedFeatureError
from ..core.indices import check_index, check_position
from ..core.kv_groups import KVGroups, group_patterns

PROBE = 100.0  # magnitude of the probe vector (a norm's eps is negligible against it)


@dataclass(frozen=True)
class FrozenNorm:
    """A norm with its scale frozen at one run's value: ``x -> gain * centre(x) / scale + bias``,
    affine in ``x`` (``centre`` subtracts the mean for LayerNorm, nothing for RMSNorm).
    ``gain``, ``bias``: ``[d_model]`` float64."""

    gain: torch.Tensor
    bias: torch.Tensor
    centres: bool
    scale: float

    def linear(self, c: torch.Tensor) -> torch.Tensor:
        """The linear part applied to ``c`` ``[..., d_model]`` (no bias)."""
        c = c.double()
        if self.centres:
            c = c - c.mean(-1, keepdim=True)
        return c * self.gain.to(c.device) / self.scale

    def readout(self, direction: torch.Tensor) -> torch.Tensor:
        """``v`` ``[d_model]`` with ``v . c == direction . linear(c)`` for every ``c``."""
        v = direction.double() * self.gain.to(direction.device) / self.scale
        return v - v.mean() if self.centres else v


def freeze_norm(norm: torch.nn.Module, x: torch.Tensor) -> FrozenNorm:
    """``norm``'s affine form at input ``x`` ``[d_model]`` (its scale frozen at ``x``'s), found by
    running the module itself on probes: its bias is ``norm(0)``, it centres when
    ``norm(x + 1) == norm(x)``, its gain is read off a ``±PROBE`` vector (mean 0, so eps is
    negligible), and the scale is the one that maps ``x`` to ``norm(x)``. A half-precision
    norm is probed as a float32 copy."""
    ref = next(iter(norm.parameters()), x)
    if ref.dtype in (torch.float16, torch.bfloat16):  # probe a float32 copy (d_model numbers)
        norm = copy.deepcopy(norm).float()
        ref = next(iter(norm.parameters()))
    d = x.shape[-1]
    u = torch.full((d,), PROBE, dtype=torch.float64)
    u[1::2] = -PROBE
    xd = x.detach().double().cpu()
    probes = torch.stack([torch.zeros(d, dtype=torch.float64), u, xd, xd + 1.0])
    with torch.no_grad():
        out = norm(probes.to(ref.device, ref.dtype)).double().cpu()  # [4, d_model]
    bias, at_x = out[0], out[2] - out[0]
    centres = bool((out[3] - out[2]).norm() <= 1e-3 * out[2].norm())
    uc = u - u.mean() if centres else u
    gain = (out[1] - bias) * uc.pow(2).mean().sqrt() / uc
    xc = xd - xd.mean() if centres else xd
    scale = float((gain * xc).norm() / at_x.norm().clamp_min(1e-300))
    return FrozenNorm(gain, bias, centres, scale)


@dataclass
class LogitAttribution:
    """Direct logit attribution at one position; every number is in logit units.

    Attributes:
        token, baseline: the token ids attributed (``logit[token] - logit[baseline]``, or
            ``logit[token]`` when ``baseline`` is None).
        pos: the position (non-negative) whose prediction is attributed.
        str_tokens: the input tokens.
        heads: ``[n_layers, n_heads]`` each head's direct effect (through a norm after the
            attention output where the model has one, its scale frozen).
        attn_bias: ``[n_layers]`` the attention output bias ``b_O`` (and a post-attention
            norm's bias); zero when there is none.
        mlp: ``[n_layers]`` each MLP's direct effect.
        embed: the embedding as it enters block 0 (GPT-2: token and position embeddings).
        unembed_bias: ``b_U[token] - b_U[baseline]`` (zero when the unembedding has no bias).
        norm_bias: the final norm's bias read out (LayerNorm models; zero for RMSNorm).
        logit_diff: the model's own logit (difference) from the same run, before any
            final-logit soft-cap: what the parts sum to.
        capped_logit_diff: the same after the model's final-logit soft-cap (Gemma 2), else
            equal to ``logit_diff``.
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
    norm_bias: float = 0.0
    capped_logit_diff: float | None = None

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
                     + self.embed + self.unembed_bias + self.norm_bias)

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
        rows.append(("norm_bias", None, None, None, self.norm_bias))
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


def _head_outputs(lens: Any, layer: int, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head outputs through W_O ``[n_heads, d_model]`` from ``z`` ``[n_heads, d_head]``, and
    the bias ``[d_model]``: ``b_O`` plus every head's value-bias constant through its ``W_O``.

    ``W_O`` is the output projection's weight as a ``Linear`` (``[d_model, n_heads * d_head]``)
    or a GPT-2 ``Conv1D`` (``[n_heads * d_head, d_model]``) holds it. A head's value vectors
    share a constant, the value projection of what its pre-norm outputs for a zero input (its
    LayerNorm bias; ``b_V``): ``z`` holds it whatever the head attends to, so it is taken out of
    the head's part and put into the bias, as TransformerLens's ``fold_value_biases`` does."""
    block = lens.bridge.blocks[layer]
    o = block.attn.o.original_component
    n_heads, d_head = z.shape
    if isinstance(o, torch.nn.Linear):
        w = o.weight.T
    elif type(o).__name__ == "Conv1D":  # transformers.pytorch_utils.Conv1D: x @ W + b
        w = o.weight
    else:  # capabilities_of declares DLA only where W_O is one of these
        raise UnsupportedFeatureError(f"direct logit attribution splits W_O per head, but layer "
                                      f"{layer}'s output projection is a {type(o).__name__}")
    w_o = w.double().reshape(n_heads, d_head, -1)  # [n_heads, d_head, d_model]
    const = _value_constant(lens, layer).to(w_o.device)  # [n_kv, d_head]
    const = const[[lens.kv_head_of(h) for h in range(n_heads)]]  # [n_heads, d_head]
    out = torch.einsum("hd,hdm->hm", z.double().to(w_o.device) - const, w_o)
    bias = torch.einsum("hd,hdm->m", const, w_o)
    if o.bias is not None:
        bias = bias + o.bias.double()
    return out, bias


@torch.no_grad()
def _value_constant(lens: Any, layer: int) -> torch.Tensor:
    """``[n_kv, d_head]``: the value vector of a zero normalised input, ``v_proj(pre_norm(0))``
    (``W_V b_norm + b_V``; ``v_proj(0) = b_V`` without a pre-norm, OLMo-2)."""
    block = lens.bridge.blocks[layer]
    v = block.attn.v.original_component
    ref = next(iter(v.parameters()))
    zero = torch.zeros(1, lens.facts.d_model, dtype=ref.dtype, device=ref.device)
    ln1 = getattr(block, "ln1", None)
    if ln1 is not None:
        zero = ln1.original_component(zero)
    return v(zero)[0].double().reshape(lens.n_key_value_heads, -1)


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


@torch.no_grad()
def logit_attribution(lens: Any, text_or_tokens: Any, token: int | str,
                      baseline: int | str | None = None, *, pos: int = -1) -> LogitAttribution:
    """Direct logit attribution of ``logit[token]`` (minus ``logit[baseline]``) at ``pos``.

    One text. Heads are read from ``hook_z`` through each head's slice of ``W_O``; the final
    norm's scale (RMSNorm or LayerNorm) is frozen at this run's value, and so is that of a norm
    after the attention output (Gemma 2/3, OLMo-2). Where the model cannot be attributed this
    way (``lens.capabilities.direct_logit_attribution``), ``UnsupportedFeatureError`` is raised
    before anything runs.
    """
    lens.require(
        "direct_logit_attribution", "direct logit attribution (logit_attribution)",
        "use lens.text_only().logit_attribution(text, token) for the language model on text "
        "without images (the same numbers: without an image the cross-attention layers are "
        "skipped)" if lens.capabilities.text_only else
        "read the heads' effects through lens.run_with_cache(text, names='blocks.*.hook_attn_out')")
    tokens = lens.to_tokens(text_or_tokens)
    if tokens.shape[0] != 1:
        raise InputError(f"logit_attribution takes one text, got a batch of {tokens.shape[0]}")
    pos = check_position(pos, tokens.shape[1])  # negative counts from the end
    t = token_id(lens, token)
    b = None if baseline is None else token_id(lens, baseline)

    post = [f"blocks.{la}.ln1_post.hook_in" in lens.bridge.hook_dict
            for la in range(lens.n_layers)]  # a norm after the attention output
    names = ["blocks.0.hook_resid_pre", "blocks.*.attn.hook_z", "blocks.*.attn.hook_out",
             "blocks.*.hook_attn_out", "blocks.*.hook_mlp_out", "ln_final.hook_in"]
    logits, cache = lens.run_with_cache(tokens, names=names)

    norm, unembed = lens.final_modules()
    w_u = unembed.weight.double()  # [d_vocab, d_model]
    direction = w_u[t] - (w_u[b] if b is not None else 0)  # [d_model]
    u_bias = getattr(unembed, "bias", None)
    unembed_bias = 0.0 if u_bias is None else float(u_bias[t] - (u_bias[b] if b is not None else 0))
    resid_final = cache["ln_final.hook_in"][0, pos]
    final = freeze_norm(norm, resid_final)
    readout = final.readout(direction.cpu())  # [d_model]: part c contributes readout . c

    def project(x: torch.Tensor) -> torch.Tensor:  # [..., d_model] -> [...]
        return x.double().cpu() @ readout

    embed = cache["blocks.0.hook_resid_pre"][0, pos].double().cpu()
    total = embed.clone()
    heads, attn_bias, mlp = [], [], []
    for layer in range(lens.n_layers):
        out, bias = _head_outputs(lens, layer, cache[f"blocks.{layer}.attn.hook_z"][0, pos])
        out, bias = out.cpu(), bias.cpu()
        raw = cache[f"blocks.{layer}.attn.hook_out"][0, pos].double().cpu()
        added = cache[f"blocks.{layer}.hook_attn_out"][0, pos].double().cpu()
        _check_sum(out.sum(0) + bias, raw, f"layer {layer}: heads + b_O vs the attention output",
                   lens.dtype, lens.n_heads + 1)
        if post[layer]:  # the residual gets post_norm(raw): heads through its frozen scale
            frozen = freeze_norm(lens.bridge.blocks[layer].ln1_post.original_component, raw)
            out, bias = frozen.linear(out), frozen.linear(bias) + frozen.bias
            _check_sum(out.sum(0) + bias, added, f"layer {layer}: heads through the "
                       "post-attention norm vs what the block adds", lens.dtype, lens.n_heads + 1)
        mlp_out = cache[f"blocks.{layer}.hook_mlp_out"][0, pos].double().cpu()
        heads.append(project(out))
        attn_bias.append(project(bias))
        mlp.append(project(mlp_out))
        total += added + mlp_out
    _check_sum(total, resid_final.double().cpu(),
               "embed + attention + MLP outputs vs the final residual stream", lens.dtype,
               2 * lens.n_layers + 1)
    pre_cap = unembed(norm(resid_final[None].to(next(iter(norm.parameters()), resid_final).dtype)))
    pre_cap = pre_cap[0].double()
    logit = logits[0, pos].double()
    return LogitAttribution(
        token=t, baseline=b, pos=pos, str_tokens=lens.to_str_tokens(tokens),
        heads=torch.stack(heads), attn_bias=torch.stack(attn_bias),
        mlp=torch.stack(mlp), embed=float(project(embed)), unembed_bias=unembed_bias,
        norm_bias=float(final.bias @ direction.cpu()),
        logit_diff=float(pre_cap[t] - (pre_cap[b] if b is not None else 0)),
        capped_logit_diff=float(logit[t] - (logit[b] if b is not None else 0)),
        n_key_value_heads=lens.n_key_value_heads,
    )


def _check_sum(parts: torch.Tensor, whole: torch.Tensor, what: str, dtype: torch.dtype,
               n_parts: int) -> None:
    """Raise unless ``parts`` ``[d_model]`` add up to ``whole`` within the rounding of
    ``n_parts`` additions in the model's ``dtype`` (L2 norms; at least 1e-3 relative)."""
    rel = max(1e-3, 2 * torch.finfo(dtype).eps * n_parts ** 0.5)
    if float((parts.to(whole.device) - whole).norm()) > rel * float(whole.norm()) + 1e-4:
        raise UnsupportedFeatureError(
            f"direct logit attribution does not add up on this model ({what}): its residual "
            "stream is not the sum of the parts lensnb reads; cache blocks.*.hook_attn_out and "
            "blocks.*.hook_mlp_out with lens.run_with_cache and project them yourself")
