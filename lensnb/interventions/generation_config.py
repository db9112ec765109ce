"""``GenerationConfig``: how to generate, shared by ``lens.generate``, ``lens.steps`` and
``GenerationStepper``, with Hugging Face's names and meanings (``transformers.GenerationConfig``).

    lens.generate(prompt, 16, do_sample=True, top_k=40, seed=0)
    lens.generate(prompt, config=lensnb.GenerationConfig(max_new_tokens=16, do_sample=True))

Every keyword of ``generate``/``steps`` (besides the prompt, ``hooks`` and ``images``) is a field
here; the config checks itself when built, so a bad value fails before anything runs.

Renamed (the old name still works, with a ``DeprecationWarning``): ``sample_top_k`` is
``top_k`` (Hugging Face's sampling top-k), ``stop`` is ``stop_strings``. What used to be called
``top_k`` (how many next-token probabilities each ``Step`` reports) is ``top_k_probs``.
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..core.errors import InputError, InputTypeError, LensnbDeprecationWarning, LensnbWarning

Path = Literal["auto", "fast", "bridge"]
PATHS = ("auto", "fast", "bridge")
# old keyword -> new field
RENAMED = {"sample_top_k": "top_k", "stop": "stop_strings"}


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate (greedy by default). Names and meanings follow Hugging Face's
    ``GenerationConfig`` where it has them.

    Attributes:
        max_new_tokens: how many tokens at most (fewer at EOS or a stop string).
        do_sample: sample instead of greedy decoding.
        temperature: divides the logits before sampling (> 0).
        top_k: sample among the ``top_k`` most likely tokens (``None`` or 0: all tokens; Hugging
            Face defaults to 50, lensnb to no filter).
        top_p: nucleus sampling: the smallest set of tokens whose probability reaches ``top_p``
            (``None`` or 1.0: off).
        seed: seeds the sampler (a ``torch.Generator``), so sampled runs repeat.
        eos_token_id: the end-of-sequence token id(s); ``None``: the model's own.
        stop_strings: stop a row once its generated text contains one of these strings.
        stop_at_eos: stop a row at its end-of-sequence token (later tokens are padding).
        top_k_probs: how many next-token probabilities (and their tokens) each ``Step``
            reports (lensnb's; not a sampling setting).
        logit_lens: ``True`` (5) or ``k``: top-k tokens of every layer's residual at the new
            position, per step.
        cache: hook names/globs whose activation (at the predicting position) each step keeps.
        return_steps: keep the ``Step`` objects in ``Generation.steps`` (also kept with ``cache`` or
            ``logit_lens``).
        return_logits: keep ``[batch, n_new, d_vocab]`` logits.
        path: ``"auto"`` (plain Hugging Face modules when every hook maps onto one), ``"fast"``
            (insist) or ``"bridge"`` (the TransformerBridge's HookPoints).
    """

    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    stop_strings: tuple[str, ...] = ()
    stop_at_eos: bool = True
    top_k_probs: int = 10
    logit_lens: int = 0
    cache: Any = False
    return_steps: bool = False
    return_logits: bool = False
    path: Path = "auto"

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        _positive_int("max_new_tokens", self.max_new_tokens)
        for flag in ("do_sample", "stop_at_eos", "return_steps", "return_logits"):
            if not isinstance(getattr(self, flag), bool):
                raise InputTypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise InputError(f"temperature must be a number > 0, got {t!r}")
        if self.top_k is not None:
            if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
                raise InputError(f"top_k must be None or an int >= 0 (0: no top-k filter), got "
                                 f"{self.top_k!r}; for how many probabilities each step "
                                 "reports use top_k_probs")
            put("top_k", self.top_k or None)
        if self.top_p is not None:
            p = self.top_p
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
                raise InputError(f"top_p must be None or a number in (0, 1], got {p!r}")
            put("top_p", None if p == 1 else float(p))
        if self.seed is not None and (isinstance(self.seed, bool)
                                      or not isinstance(self.seed, int)):
            raise InputTypeError(f"seed must be None or an int, got {self.seed!r}")
        put("eos_token_id", _token_ids(self.eos_token_id))
        put("stop_strings", _strings(self.stop_strings))
        _positive_int("top_k_probs", self.top_k_probs)
        ll = self.logit_lens
        if ll is True:
            put("logit_lens", 5)
        elif ll is False or ll is None:
            put("logit_lens", 0)
        elif not isinstance(ll, int) or ll < 0:
            raise InputError(f"logit_lens must be True, False or an int k >= 0, got {ll!r}")
        if isinstance(self.cache, list):
            put("cache", tuple(self.cache))
        if self.cache is True:
            raise InputError("cache takes hook names or globs, e.g. "
                             "cache='blocks.*.hook_resid_post' (False: cache nothing)")
        if self.path not in PATHS:
            raise InputError(f"path must be 'auto', 'fast' or 'bridge', got {self.path!r}")

    @property
    def keeps_steps(self) -> bool:
        """Whether ``generate`` keeps (and so computes) every ``Step``."""
        return bool(self.cache) or bool(self.logit_lens) or self.return_steps

    def replace(self, **changes: Any) -> GenerationConfig:
        """A copy with ``changes`` (checked like the constructor's keywords)."""
        return dataclasses.replace(self, **_new_names(changes))

    @classmethod
    def build(cls, config: GenerationConfig | None = None, max_new_tokens: int | None = None,
              **kwargs: Any) -> GenerationConfig:
        """``config`` (or the defaults) with ``max_new_tokens`` and ``kwargs`` on top: what
        ``generate(lens, prompt, max_new_tokens, config=..., **kwargs)`` runs with. Unknown
        keywords raise a ``TypeError`` naming the allowed ones."""
        if config is not None and not isinstance(config, GenerationConfig):
            raise InputTypeError(f"config must be a lensnb.GenerationConfig, got "
                                 f"{type(config).__name__}")
        changes = _new_names(kwargs)
        if max_new_tokens is not None:
            changes["max_new_tokens"] = max_new_tokens
        if "top_k" in kwargs and not changes.get("do_sample", getattr(config, "do_sample",
                                                                      False)):
            warnings.warn(
                "top_k is Hugging Face's sampling top-k and has no effect without "
                "do_sample=True; for how many next-token probabilities each step reports, "
                "use top_k_probs", LensnbWarning, stacklevel=_caller_level())
        return dataclasses.replace(config or cls(), **changes)


def fields() -> list[str]:
    """The keyword names ``GenerationConfig`` takes."""
    return [f.name for f in dataclasses.fields(GenerationConfig)]


def _caller_level() -> int:
    """``stacklevel`` for a warning raised by the caller of this function that points at the
    first frame outside lensnb (the user's code, where Jupyter shows the warning)."""
    level, frame = 2, sys._getframe(2)  # 1 would be the function that warns
    while frame is not None and frame.f_globals.get("__name__", "").startswith("lensnb"):
        frame, level = frame.f_back, level + 1
    return level


def _new_names(kwargs: dict[str, Any]) -> dict[str, Any]:
    known = fields()
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in RENAMED:
            new = RENAMED[key]
            warnings.warn(f"{key}= is deprecated: use {new}= (Hugging Face's name)",
                          LensnbDeprecationWarning, stacklevel=_caller_level())
            if new in kwargs:
                raise InputTypeError(f"pass {new}= or the deprecated {key}=, not both")
            key = new
        elif key not in known:
            close = difflib.get_close_matches(key, known + list(RENAMED), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise InputTypeError(f"unknown generation keyword {key!r}.{hint} Allowed: "
                                 f"{', '.join(known)}")
        out[key] = value
    return out


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive int, got {value!r}")


def _token_ids(value: Any) -> int | tuple[int, ...] | None:
    if value is None:
        return None
    ids = [value] if isinstance(value, int) else list(value)
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
        raise InputError(f"eos_token_id must be a token id or a list of them, got {value!r}")
    return ids[0] if isinstance(value, int) else tuple(ids)


def _strings(value: str | Sequence[str] | None) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else list(value or [])
    if any(not isinstance(s, str) or not s for s in stops):
        raise InputError(f"stop strings must be non-empty strings, got {value!r}")
    return tuple(stops)


