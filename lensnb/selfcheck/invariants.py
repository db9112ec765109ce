"""The invariants ``lensnb.check()`` tests, each against an independent truth (a Hugging Face
forward or ``generate`` on an untouched copy of the weights, or a loop that re-runs the whole
sequence). A check returns ``(max_error, tolerance, message)``; a non-empty message is a
failure. ``NotApplicable`` marks a cell n.a., ``Unavailable`` a missing feature (a failure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..analysis.attribution import logit_attribution
from ..analysis.patterns import attention_patterns
from ..interventions.patch import patch as make_patch
from ..lens import UnsupportedFeatureError
from .models import Built, picture
from .result import NotApplicable, Unavailable

PROMPT = "def add(a, b):\n    return a + b\n"
GEN_PROMPT = "def add(a, b):\n    return"
N_NEW = 4  # generated tokens per generation check (the 5.24 cache bug shows from step 1)
LOGIT_TOL = 1e-4  # float32 logits of a tiny model, lensnb vs HF (measured: <= 3e-7)
PATTERN_TOL = 1e-5  # softmax weights in [0, 1] (measured: 0, the same eager kernels)
CHANGED = 1e-4  # a patched query head's pattern must move by more than this

Check = Callable[[Built], tuple[float | None, float | None, str]]


def _max(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a.float() - b.float()).abs().max())


def check_logits(b: Built) -> tuple[float, float, str]:
    ids = b.lens.to_tokens(PROMPT)
    with torch.no_grad():
        want = b.ref(input_ids=ids).logits
    return _max(b.lens(ids), want), LOGIT_TOL, ""


def check_pattern(b: Built) -> tuple[float, float, str]:
    lens = b.lens
    ids = lens.to_tokens(PROMPT)
    want = _hf_attentions(b, ids)
    names = [f"blocks.{i}.attn.hook_pattern" for i in lens.self_attention_layers]
    _, cache = lens.run_with_cache(ids, names=names)
    if len(want) != len(names):
        raise AssertionError(f"HF returned {len(want)} attention maps for {len(names)} layers")
    err = max(_max(cache[n], w) for n, w in zip(names, want, strict=True))
    if lens.is_vision:  # with a picture: every layer, cross-attention ones too
        text, images = "<|image|>a picture of", [picture(56, 28, seed=2)]
        ids, kwargs = lens.inputs(text, images)
        with torch.no_grad():
            want = b.ref(input_ids=ids, **kwargs, output_attentions=True).attentions
        names = [f"blocks.{i}.attn.hook_pattern" for i in range(lens.n_layers)]
        _, cache = lens.run_with_cache(text, names=names, images=images)
        if len(want) != len(names):
            raise AssertionError(f"HF returned {len(want)} attention maps for {len(names)} "
                                 "layers")
        err = max(err, *(_max(cache[n], w) for n, w in zip(names, want, strict=True)))
    return err, PATTERN_TOL, ""


def _hf_attentions(b: Built, ids: torch.Tensor) -> list[torch.Tensor]:
    """HF eager's attention weights of the self-attention layers (``[1, heads, q, k]`` each)."""
    if "attentions" not in b.memo:
        with torch.no_grad():
            b.memo["attentions"] = b.ref(input_ids=ids, output_attentions=True).attentions
    return b.memo["attentions"]


def check_kept_pattern(b: Built) -> tuple[float, float, str]:
    """``lensnb.attention_patterns`` (what ``AttentionExplorer`` and ``long_context_profile``
    show: patterns recomputed from the q/k the backend declares, never the N^2 matrices)
    against HF eager's weights, every self-attention layer."""
    lens = b.lens
    ids = lens.to_tokens(PROMPT)
    want = _hf_attentions(b, ids)
    layers = lens.self_attention_layers
    if len(want) != len(layers):
        raise AssertionError(f"HF returned {len(want)} attention maps for {len(layers)} layers")
    kept = attention_patterns(lens, ids, layers=layers, progress=False)
    return max(_max(kept.pattern(la), w[0]) for la, w in zip(layers, want, strict=True)), \
        PATTERN_TOL, ""


def check_dla(b: Built) -> tuple[float, float, str]:
    """Direct logit attribution at the last position (top token minus the bottom one): every
    part summed equals HF's logit difference (before any final soft-cap: ``lm_head``'s output).
    A model it does not apply to must refuse up front (``UnsupportedFeatureError``)."""
    lens = b.lens
    if not lens.capabilities.direct_logit_attribution:
        raise NotApplicable("lensnb refuses it up front on this model (UnsupportedFeatureError)")
    ids = lens.to_tokens(PROMPT)
    seen: dict[str, torch.Tensor] = {}
    head = b.ref.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, a, out: seen.__setitem__("y", out))
    try:
        with torch.no_grad():
            b.ref(input_ids=ids)
    finally:
        handle.remove()
    logits = seen["y"][0, -1].double()
    top, bottom = int(logits.argmax()), int(logits.argmin())  # the widest difference
    dla = logit_attribution(lens, ids, top, bottom)
    return abs(dla.total - float(logits[top] - logits[bottom])), LOGIT_TOL, ""


def check_split_qkv(b: Built) -> tuple[float, float, str]:
    """Patch the first and the last KV group's key input of the last layer: its own query heads
    move, every other head stays bit-identical to a clean run with split QKV on."""
    lens = b.lens
    ids = lens.to_tokens(PROMPT)
    layer = lens.n_layers - 1
    name = f"blocks.{layer}.attn.hook_pattern"
    if lens.capabilities.shared_k_norm:
        raise NotApplicable("one k_norm spans every KV head (OLMo-2): a patch of one group's "
                            "keys rescales all groups'")
    try:
        with lens.split_qkv():
            logits, cache = lens.run_with_cache(ids, names=name)
    except UnsupportedFeatureError:
        raise NotApplicable("not on Llama 3.2 Vision (lensnb says so up front: "
                            "UnsupportedFeatureError)") from None
    with torch.no_grad():
        err_logits = _max(logits, b.ref(input_ids=ids).logits)
    if err_logits > LOGIT_TOL:
        return err_logits, LOGIT_TOL, f"logits with split QKV on differ from HF by {err_logits:.1e}"
    clean = cache[name][0]  # [n_heads, q, k]
    outside = 0.0
    for g in sorted({0, lens.n_key_value_heads - 1}):  # the first and the last group
        noise = torch.randn(*ids.shape, lens.facts.d_model,
                            generator=torch.Generator().manual_seed(g)) * 2.0
        with lens.patch_kv_input(layer, g, noise.to(lens.device), which="k"):
            patched = lens.run_with_cache(ids, names=name)[1][name][0]
        mine = set(lens.heads_of_kv(g))
        for h in range(lens.n_heads):
            moved = float((patched[h] - clean[h]).abs().max())
            if h in mine and moved <= CHANGED:
                return moved, 0.0, (f"patching KV group {g}'s key input left its own query head "
                                    f"{h} unchanged (moved {moved:.1e})")
            if h not in mine:
                outside = max(outside, moved)
    msg = "" if outside == 0.0 else "heads of other KV groups changed (want bit-identical)"
    return outside, 0.0, msg


def _uncached(lens: Any, ids: torch.Tensor, n: int, hooks: list) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
    """Greedy tokens ``[1, pos + n]`` and logits ``[1, n, d_vocab]``, re-running the whole
    sequence every step (no cache) through ``lens.run_with_hooks``."""
    logits = []
    for _ in range(n):
        lg = lens.run_with_hooks(ids, fwd_hooks=hooks)[:, -1]
        logits.append(lg)
        ids = torch.cat([ids, lg.argmax(-1, keepdim=True)], dim=1)
    return ids, torch.stack(logits, 1)


def _check_generation(b: Built, path: str) -> tuple[float, float, str]:
    lens = b.lens
    if path == "fast":
        fast = lens.fast_path()
        if fast.model is None:
            raise NotApplicable(f"no fast path for this model: {fast.why}")
    ids = lens.to_tokens(GEN_PROMPT)
    n_prompt = ids.shape[1]
    value = torch.randn(lens.facts.d_model, generator=torch.Generator().manual_seed(7)) * 3.0
    value = value.to(lens.device, lens.dtype)
    patch = make_patch(0, "hook_resid_post", position=3, value=value)
    hooks: list = [patch]
    keys: list[tuple[int, int]] = []  # (step, number of keys a hook_pattern hook saw)
    if path == "bridge":
        layer = lens.self_attention_layers[-1]

        def count(pattern: torch.Tensor, ctx: Any) -> None:  # [batch, heads, q, k]
            keys.append((ctx.step, pattern.shape[-1]))

        hooks.append((f"blocks.{layer}.attn.hook_pattern", count))
    kwargs = {} if lens.is_vision else {"path": path}
    got = lens.generate(GEN_PROMPT, N_NEW, hooks=hooks, return_logits=True, **kwargs)

    def manual(t: torch.Tensor, hook: Any) -> torch.Tensor:
        t = t.clone()
        t[:, 3] = value
        return t

    if "uncached" not in b.memo:  # the same truth for both paths
        b.memo["uncached"] = _uncached(lens, ids, N_NEW, [("blocks.0.hook_resid_post", manual)])
    toks, logits = b.memo["uncached"]
    err = _max(got.logits, logits)
    msgs = []
    if got.path != path and not lens.is_vision:
        msgs.append(f"ran on the {got.path} path, not {path}")
    if not torch.equal(got.tokens, toks):
        diff = int((got.tokens != toks).sum())
        msgs.append(f"greedy tokens differ from the uncached loop at {diff} of {N_NEW} steps")
    wrong = [(s, k) for s, k in keys if k != n_prompt + s]
    if wrong:
        s, k = wrong[0]
        msgs.append(f"the KV cache is ignored: hook_pattern saw {k} key(s) at step {s} "
                    f"(want {n_prompt + s})")
    if msgs:
        return err, LOGIT_TOL, "; ".join(msgs)
    return err, LOGIT_TOL, ""


def check_gen_fast(b: Built) -> tuple[float, float, str]:
    if b.lens.is_vision:
        raise NotApplicable("Llama 3.2 Vision generates through lensnb's hooked model "
                            "(the bridge-path row)")
    return _check_generation(b, "fast")


def check_gen_bridge(b: Built) -> tuple[float, float, str]:
    try:
        return _check_generation(b, "bridge")
    except (TypeError, NotImplementedError) as err:
        if not b.lens.is_vision:
            raise
        raise Unavailable(f"not available: {type(err).__name__}: {err}") from None


def _vision_only(b: Built) -> None:
    if not b.lens.is_vision:
        raise NotApplicable("a text-only model")


def check_vision_logits(b: Built) -> tuple[float, float, str]:
    _vision_only(b)
    lens = b.lens
    errs = []
    for text, images in (("<|image|>two tiles", [picture(56, 28, seed=1)]),):
        ids, kwargs = lens.inputs(text, images)
        with torch.no_grad():
            want = b.ref(input_ids=ids, **kwargs).logits
        errs.append(_max(lens(text, images=images), want))
    return max(errs), LOGIT_TOL, ""


def check_vision_gen(b: Built) -> tuple[float, float | None, str]:
    """Greedy ``lens.generate(prompt, images=[img])`` against HF ``generate``."""
    _vision_only(b)
    lens = b.lens
    text, img = "<|image|>a picture of", picture()
    ids, kwargs = lens.inputs(text, [img])
    with torch.no_grad():
        want = b.ref.generate(input_ids=ids, **kwargs, max_new_tokens=N_NEW, do_sample=False,
                              pad_token_id=lens.tokenizer.eos_token_id)
    try:
        got = lens.generate(text, images=[img], max_new_tokens=N_NEW)
    except (TypeError, NotImplementedError) as err:
        raise Unavailable(f"not available: {type(err).__name__}: {err}") from None
    new_want = want[0, ids.shape[1]:]
    new_got = got.new_tokens[0]
    n = min(len(new_want), len(new_got))
    same = int((new_want[:n] == new_got[:n].to(new_want.device)).sum())
    if len(new_want) != len(new_got) or same != n:
        return None, None, (f"greedy tokens differ from HF generate: {new_got.tolist()} vs "
                            f"{new_want.tolist()}")
    return None, None, ""


CHECKS: dict[str, Callable[[Built], tuple[float | None, float | None, str]]] = {
    "logits": check_logits,
    "pattern": check_pattern,
    "kept_pattern": check_kept_pattern,
    "dla": check_dla,
    "split_qkv": check_split_qkv,
    "gen_fast": check_gen_fast,
    "gen_bridge": check_gen_bridge,
    "vision_logits": check_vision_logits,
    "vision_gen": check_vision_gen,
}
