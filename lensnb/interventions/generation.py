"""Step-by-step generation with position-aware hooks, a KV cache and a per-step logit lens.

``steps(lens, prompt, ...)`` yields one ``Step`` per new token; ``generate(...)`` runs it to the
end and returns a ``Generation``. How to generate is a ``GenerationConfig`` (Hugging Face's
names; ``generation_config``). Hooks (``hook_specs``: ``lensnb.patch(...)``, ``(name, fn)``)
keep TransformerLens names and see a ``HookContext`` (step, absolute positions per row; see
``hook_context``); a hook on a split-QKV input turns split QKV on for the generation.

Three ways to run, same numbers as Hugging Face ``generate``:

* **fast**: the plain Hugging Face model (``lens.fast_path()``: a second module tree sharing
  the bridge's weight tensors) with its KV cache; hooks that map onto its modules become torch
  forward hooks. With no hooks this is as cheap as Hugging Face's own decoding loop.
* **bridge**: anything else (``hook_pattern``, ``hook_rot_q``, ...) runs through the
  TransformerBridge with its HookPoints, also with the KV cache.
* Backends with their own decoding (``capabilities.own_decoding``: Llama 3.2 Vision's
  ``HookedMllama``, reported as ``"bridge"``) run their own layer loop: its own KV
  cache for self-attention, cross-attention keys/values computed once from the image and
  reused, cross-attention layers skipped for text-only prompts as in Hugging Face.

The KV cache is spoken to only through ``kv_cache`` (``cache=`` on transformers >= 5.24,
``past_key_values=`` before); after every forward the cache must hold exactly the tokens fed.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..backends import kv_cache
from ..core import hooks as hooknames
from ..core.errors import InputError, UnsupportedFeatureError
from ..core.hooks import layer_of
from . import split_qkv
from .generation_config import GenerationConfig
from .generation_results import Generation, LogitLensStep, Step
from .hook_context import TEXT_HOOK_PREFIXES, HookContext, HookFn, position_axis
from .hook_specs import HookSpec, needs_split_qkv, resolve_hooks

if TYPE_CHECKING:
    from ..lens import Lens

__all__ = ["Generation", "GenerationConfig", "LogitLensStep", "Step", "generate", "layer_of",
           "steps"]

Prompt = str | Sequence[str] | torch.Tensor
# per-token model inputs of Mllama (position on axis 1), left-padded with the ids
_PER_TOKEN = ("cross_attention_mask",)


# ---------------------------------------------------------------------------------- the runner
class _Run:
    """State of one generation: tokens, mask, positions, KV cache, installed hooks."""

    def __init__(self, lens: Lens, prompt: Prompt, config: GenerationConfig, *,
                 hooks: Sequence[HookSpec], images: Any = None):
        self.lens = lens
        self.config = config
        self.vision = lens.capabilities.own_decoding  # HookedMllama's own decoding state
        self.ids, self.mask, self.prompt_lengths, self.image_kwargs = _inputs(lens, prompt,
                                                                              images)
        self.batch = self.ids.shape[0]
        max_new_tokens = config.max_new_tokens
        lens.check_length(self.ids.shape[1] + max_new_tokens)
        self.padded = bool((self.mask == 0).any())
        hooks = list(hooks)
        self.split = needs_split_qkv(lens, hooks) and not lens.split_qkv_enabled
        if self.split:
            split_qkv.require_split_qkv(lens)
        self.user: dict[str, list[HookFn]] = {}
        for name, fn in resolve_hooks(lens, hooks, self.prompt_lengths, max_new_tokens):
            self.user.setdefault(name, []).append(fn)
        available = lens.bridge.hook_dict
        self.cache_names: list[str] = []
        if config.cache:
            keep = hooknames.name_filter(config.cache, available)
            self.cache_names = [n for n in available if keep(n)]
        self.logit_lens = config.logit_lens
        self.lens_names = ([f"blocks.{i}.hook_resid_post" for i in range(lens.n_layers)]
                           if self.logit_lens else [])
        names = set(self.user) | set(self.cache_names) | set(self.lens_names)
        self.model, self.path = self._choose_path(names, config.path)
        self.all_logits = any(n.startswith(("unembed.", "hook_unembed")) for n in names)
        self.keep_kw = (not self.vision and
                        "logits_to_keep" in inspect.signature(self.model.forward).parameters)
        self.cross_layers = set(lens.cross_attention_layers)
        # per-forward state read by the hooks
        self.step = 0
        self.abs_pos = torch.where(self.mask.bool(), self.mask.cumsum(1) - 1, -1)  # [batch, pos]
        self.step_cache: dict[str, torch.Tensor] = {}
        self.resid: dict[int, torch.Tensor] = {}
        self.kv = lens.new_cache()  # the backend's decoding state
        self.kv_layers = lens.self_attention_layers  # those the KV cache fills

    def _choose_path(self, names: set[str], path: str) -> tuple[torch.nn.Module, str]:
        self.fast = self.lens.fast_path()
        if path != "bridge":
            slow = sorted(n for n in names if not self.fast.serves(n))
            if self.fast.model is not None and not slow:
                return self.fast.model, "fast"
            if path == "fast":
                raise UnsupportedFeatureError(
                    "the fast path cannot run this: "
                    + (self.fast.why or f"hooks {slow[:4]} exist only in the bridge")
                    + "; use path='auto' or path='bridge'"
                )
        return self.lens.hf_model, "bridge"

    # -- hooks ------------------------------------------------------------------------------
    def _chain(self, name: str) -> Callable[[torch.Tensor], torch.Tensor | None]:
        fns = self.user.get(name, [])
        cached = name in self.cache_names
        layer = layer_of(name)
        lens_layer = layer if name in self.lens_names else None
        axis = position_axis(name)
        cross = (layer in self.cross_layers and name.endswith(("attn.hook_pattern",
                                                               "attn.hook_attn_scores")))
        text = name.startswith(TEXT_HOOK_PREFIXES)

        def run(act: torch.Tensor) -> torch.Tensor | None:
            changed = False
            if fns:
                ctx = self.context(name, layer, axis, act, cross=cross, text=text)
                for fn in fns:
                    out = fn(act, ctx)
                    if out is not None:
                        act, changed = out, True
            if cached:
                self.step_cache[name] = act.select(axis, -1).detach().clone()
            if lens_layer is not None:
                self.resid[lens_layer] = act[:, -1].detach()
            return act if changed else None

        return run

    def context(self, name: str, layer: int | None, axis: int, act: torch.Tensor, *,
                cross: bool = False, text: bool = True) -> HookContext:
        """What a hook on ``name`` sees. Cross-attention maps: keys are image tokens
        (``key_positions`` = their index); vision-tower hooks: positions index the tensor's
        own axes (there are no text positions there)."""
        n = act.shape[axis]
        if not text:
            own = torch.arange(n, device=act.device).expand(act.shape[0], n)
            return HookContext(name=name, layer=layer, step=self.step, positions=own,
                               key_positions=own, prompt_lengths=self.prompt_lengths_t,
                               pos_axis=axis, cross_attention=False)
        keys = self.abs_pos
        if cross:
            keys = torch.arange(act.shape[-1], device=act.device).expand(act.shape[0], -1)
        return HookContext(name=name, layer=layer, step=self.step,
                           positions=self.abs_pos[:, -n:], key_positions=keys,
                           prompt_lengths=self.prompt_lengths_t, pos_axis=axis,
                           cross_attention=cross)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Hooks on for the duration; always removed, also on error or interruption."""
        self.prompt_lengths_t = torch.tensor(self.prompt_lengths, device=self.ids.device)
        names = [n for n in self.lens.bridge.hook_dict
                 if n in self.user or n in self.cache_names or n in self.lens_names]
        with contextlib.ExitStack() as stack:
            if self.split:  # a hook on a per-head q/k/v input: split QKV on for the run
                stack.enter_context(self.lens.split_qkv())
            if self.path == "fast":
                for name in names:
                    stack.callback(self.fast.hook(name, self._chain(name)).remove)
            else:
                if not self.vision:
                    stack.enter_context(kv_cache.bridge_cache_alias(self.lens.bridge))
                fwd = [(n, _tl_hook(self._chain(n))) for n in names]
                stack.enter_context(self.lens.bridge.hooks(fwd_hooks=fwd))
            yield

    # -- one forward ------------------------------------------------------------------------
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed ``ids [batch, n]`` (the prompt, then one token); logits ``[batch, d_vocab]``."""
        self.step_cache = {}
        self.resid = {}
        kwargs: dict[str, Any] = {}
        if self.keep_kw and not self.all_logits:
            kwargs["logits_to_keep"] = 1
        if self.padded or self.vision:
            kwargs["attention_mask"] = self.mask
            kwargs["position_ids"] = self.abs_pos[:, -ids.shape[1]:].clamp(min=0)
        if self.vision:
            if self.step == 0:
                kwargs.update(self.image_kwargs)
            logits = self.lens.bridge(ids, cache=self.kv, **kwargs)
        elif self.path == "fast":
            kwargs.update(kv_cache.cache_kwargs(self.model, self.kv))
            logits = self.model(input_ids=ids, **kwargs).logits
        else:
            kwargs.update(kv_cache.cache_kwargs(self.lens.hf_model, self.kv))
            logits = self.lens.bridge.forward(ids, return_type="logits", **kwargs)
        kv_cache.check_filled(self.kv, self.mask.shape[1], self.kv_layers)
        return logits[:, -1]

    def append(self, token: torch.Tensor) -> None:
        """Extend mask and positions by the new ``token [batch]``."""
        one = torch.ones_like(self.mask[:, :1])
        self.mask = torch.cat([self.mask, one], dim=1)
        self.abs_pos = torch.cat([self.abs_pos, self.abs_pos[:, -1:] + 1], dim=1)

    def logit_lens_step(self, chosen: torch.Tensor) -> LogitLensStep:
        # a layer that did not run (a cross-attention layer without an image) passes its
        # input on unchanged: its output is the previous layer's
        rows, last = [], None
        for i in range(self.lens.n_layers):
            last = self.resid.get(i, last)
            rows.append(last)
        resid = torch.stack(rows, 1)  # [batch, n_layers, d_model]
        with torch.no_grad():
            probs = self.lens.unembed(resid).float().softmax(-1)  # [batch, n_layers, d_vocab]
        top = probs.topk(self.logit_lens, dim=-1)
        picked = probs.gather(-1, chosen.view(-1, 1, 1).expand(-1, probs.shape[1], 1))[..., 0]
        return LogitLensStep(top_ids=top.indices.cpu(), top_probs=top.values.cpu(),
                             chosen_probs=picked.cpu())


def _tl_hook(run: Callable[[torch.Tensor], torch.Tensor | None]) -> Callable:
    def hook(tensor: torch.Tensor, hook: Any) -> torch.Tensor | None:
        return run(tensor)

    return hook


def _inputs(lens: Lens, prompt: Prompt, images: Any
            ) -> tuple[torch.Tensor, torch.Tensor, list[int], dict[str, torch.Tensor]]:
    """Left-padded ids ``[batch, pos]``, mask ``[batch, pos]``, each row's real length, and the
    image inputs of a vision model (``{}`` without images)."""
    if images is None:
        return (*_tokenize(lens, prompt), {})
    ids, kwargs = lens.inputs(prompt, images)
    mask = kwargs.pop("attention_mask", None)
    if mask is None:
        mask = torch.ones_like(ids)
    lengths = [int(n) for n in mask.sum(1).tolist()]
    # generation appends on the right, so any padding goes to the left
    real = mask.bool()
    ids, mask = _left_align(ids, real), _left_align(mask, real)
    for key in _PER_TOKEN:
        if key in kwargs:
            kwargs[key] = _left_align(kwargs[key], real)
    return ids, mask, lengths, kwargs


def _left_align(t: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Each row of ``t [batch, pos, ...]`` with its padding (``~real [batch, pos]``) moved to
    the left, real entries kept in order."""
    if bool(real[:, -1].all()):
        return t  # already left-padded (or no padding)
    return torch.stack([torch.cat([row[~r], row[r]]) for row, r in zip(t, real, strict=True)])


def _tokenize(lens: Lens, prompt: Prompt) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Left-padded ids ``[batch, pos]``, mask ``[batch, pos]`` and each row's real length."""
    if isinstance(prompt, torch.Tensor):
        ids = lens.to_tokens(prompt)
        return ids, torch.ones_like(ids), [ids.shape[1]] * ids.shape[0]
    rows = [prompt] if isinstance(prompt, str) else list(prompt)
    if not rows:
        raise InputError("no prompt given")
    seqs = [lens.to_tokens(r)[0] for r in rows]
    width = max(len(s) for s in seqs)
    pad = lens.pad_token_id
    ids = torch.full((len(seqs), width), pad, dtype=torch.long, device=lens.device)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = s
        mask[i, width - len(s):] = 1
    return ids, mask, [len(s) for s in seqs]


def _eos_ids(lens: Lens, config: GenerationConfig | None = None) -> list[int]:
    eos = config.eos_token_id if config is not None else None
    if eos is None:
        return lens.eos_token_ids
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def _choose(logits: torch.Tensor, do_sample: bool, temperature: float, top_k: int | None,
            top_p: float | None, generator: torch.Generator | None) -> torch.Tensor:
    """Next token ``[batch]`` from ``logits [batch, d_vocab]`` (greedy unless sampling)."""
    if not do_sample:
        return logits.argmax(-1)
    scores = logits.float() / max(temperature, 1e-6)
    if top_k:
        kth = scores.topk(min(top_k, scores.shape[-1]), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        order = scores.sort(dim=-1, descending=True)
        cum = order.values.softmax(-1).cumsum(-1)
        drop = cum - order.values.softmax(-1) > top_p  # keep the smallest set reaching top_p
        scores = scores.scatter(-1, order.indices, order.values.masked_fill(drop, float("-inf")))
    probs = scores.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


# ---------------------------------------------------------------------------------- public API
def steps(lens: Lens, prompt: Prompt, max_new_tokens: int | None = None, *,
          config: GenerationConfig | None = None, hooks: Sequence[HookSpec] = (),
          images: Any = None, **kwargs: Any) -> Iterator[Step]:
    """Generate token by token with the KV cache, yielding a ``Step`` per new token.

    Args:
        prompt: a text, a list of texts (left-padded into one batch) or token ids.
        max_new_tokens: how many tokens at most (default: the config's, 32).
        config: a ``GenerationConfig``; ``kwargs`` are its fields (``do_sample``,
            ``temperature``, ``top_k``, ``top_p``, ``seed``, ``eos_token_id``, ``stop_strings``,
            ``stop_at_eos``, ``top_k_probs``, ``logit_lens``, ``cache``, ``return_logits``,
            ``path``), laid over it. Hugging Face's names and meanings.
        hooks: ``lensnb.patch(...)`` objects and ``(name_or_glob, fn(activation, ctx))`` pairs
            (TransformerLens-style ``fn(tensor, hook)`` too; see ``hook_context``); a hook
            returning a tensor replaces the activation.
        images: Llama 3.2 Vision: PIL images (or paths), one per ``<|image|>`` in the prompt
            (a list per prompt for a batch). The image is encoded once; every step's
            cross-attention reads those keys/values (``blocks.{i}.attn.hook_pattern`` of a
            cross-attention layer is ``[batch, n_heads, 1, image_tokens]`` per step).

    Bad arguments raise here, before anything runs. Closing the generator (``break``,
    ``.close()``, KeyboardInterrupt) removes every hook.
    """
    cfg = GenerationConfig.build(config, max_new_tokens, **kwargs)
    run = _Run(lens, prompt, cfg, hooks=hooks, images=images)
    return _iterate(run)


def _iterate(run: _Run, light: bool = False) -> Iterator[Step]:
    lens, cfg = run.lens, run.config
    eos = torch.tensor(_eos_ids(lens, cfg) if cfg.stop_at_eos else [], dtype=torch.long,
                       device=run.ids.device)
    pad = lens.pad_token_id
    gen = None
    if cfg.seed is not None:
        gen = torch.Generator(device=run.ids.device).manual_seed(cfg.seed)
    decode = lens.tokenizer.decode
    stops = cfg.stop_strings
    finished = torch.zeros(run.batch, dtype=torch.bool, device=run.ids.device)
    new: list[list[int]] = [[] for _ in range(run.batch)]
    ids = run.ids
    with run.installed():  # hooks stay on across yields; grad mode is the caller's between them
        for index in range(cfg.max_new_tokens):
            run.step = index
            with torch.no_grad():
                logits = run.forward(ids)  # [batch, d_vocab]
            token = _choose(logits, cfg.do_sample, cfg.temperature, cfg.top_k, cfg.top_p, gen)
            token = torch.where(finished, pad, token)
            ended = finished.clone()
            if eos.numel():
                finished = finished | torch.isin(token, eos)
            if stops:
                for r in range(run.batch):
                    if not ended[r]:
                        new[r].append(int(token[r]))
                        if any(s in decode(new[r]) for s in stops):
                            finished[r] = True
            if light:
                yield _LightStep(token, logits if cfg.return_logits else None, finished)  # type: ignore[misc]
            else:
                with torch.no_grad():
                    step = _make_step(run, index, token, logits, finished, cfg.top_k_probs,
                                      cfg.return_logits)
                yield step
            if bool(finished.all()) or index == cfg.max_new_tokens - 1:
                return
            run.append(token)
            ids = token[:, None]


@dataclass
class _LightStep:
    token_ids: torch.Tensor
    logits: torch.Tensor | None
    finished: torch.Tensor


def _make_step(run: _Run, index: int, token: torch.Tensor, logits: torch.Tensor,
               finished: torch.Tensor, k: int, return_logits: bool) -> Step:
    decode = run.lens.tokenizer.decode
    probs = logits.float().softmax(-1)
    top = probs.topk(k, dim=-1)
    top_ids = top.indices.cpu()
    return Step(
        index=index,
        positions=(run.abs_pos[:, -1] + 1).cpu(),
        token_ids=token.cpu(),
        texts=[decode([t]) for t in token.tolist()],
        top_ids=top_ids,
        top_probs=top.values.cpu(),
        top_texts=[[decode([t]) for t in row] for row in top_ids.tolist()],
        finished=finished.cpu().clone(),
        cache=dict(run.step_cache),
        logit_lens=run.logit_lens_step(token) if run.logit_lens else None,
        logits=logits.detach().cpu() if return_logits else None,
    )


def generate(lens: Lens, prompt: Prompt, max_new_tokens: int | None = None, *,
             config: GenerationConfig | None = None, hooks: Sequence[HookSpec] = (),
             images: Any = None, **kwargs: Any) -> Generation:
    """Generate up to ``max_new_tokens`` tokens (fewer at EOS or a stop string) with ``hooks``.

    Takes the arguments of ``steps`` (a ``GenerationConfig`` or its fields as keywords,
    ``hooks=``, ``images=``). The steps are kept (``.steps``) when activations are cached,
    the logit lens is on, or ``return_steps=True``; otherwise no per-step extras are computed.
    ``return_logits=True`` keeps ``[batch, n_new, d_vocab]`` logits.
    """
    cfg = GenerationConfig.build(config, max_new_tokens, **kwargs)
    run = _Run(lens, prompt, cfg, hooks=hooks, images=images)
    keep_steps = cfg.keeps_steps
    ids0, prompt_lengths = run.ids, run.prompt_lengths
    tokens: list[torch.Tensor] = []
    kept: list[Step] = []
    logits: list[torch.Tensor] = []
    finished = None
    for s in _iterate(run, light=not keep_steps):
        tokens.append(s.token_ids)
        if keep_steps:
            kept.append(s)
        if cfg.return_logits:
            logits.append(s.logits)
        finished = s.finished
    new = torch.stack(tokens, 1).to(ids0.device)  # [batch, n_new]
    eos = set(_eos_ids(lens, cfg)) if cfg.stop_at_eos else set()
    reason = "max_new_tokens"
    if finished is not None and bool(finished.all()):
        ends_eos = all(any(t in eos for t in row) for row in new.tolist())
        reason = "eos" if ends_eos else "stop"
    return Generation(
        tokens=torch.cat([ids0, new], dim=1),
        prompt_lengths=prompt_lengths,
        new_tokens=new,
        texts=[_row_text(lens, row, eos) for row in new.tolist()],
        stop_reason=reason,
        path=run.path,
        steps=kept,
        logits=torch.stack(logits, 1) if cfg.return_logits else None,
    )


def _row_text(lens: Lens, row: list[int], eos: set[int]) -> str:
    out = []
    for t in row:
        out.append(t)
        if t in eos:
            break
    return lens.tokenizer.decode(out, skip_special_tokens=True)
