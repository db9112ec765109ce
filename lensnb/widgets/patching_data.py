"""What ``PatchingWorkbench`` computes, kept apart from the widget: the prompt pair and its
reference values (``PairData``) and the sweeps computed so far, a few layers at a time
(``Sweep``, ``Sweeps``). Every number comes from the patching API (``lensnb.patching``,
``lensnb.analysis.logit_lens``) and public ``Lens`` methods; nothing here is a second copy of
their definitions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from ..analysis.logit_lens import LogitLens, logit_lens
from ..core.errors import InputError, InputTypeError, LensnbError
from ..patching import runner
from ..patching.ablation import ablation
from ..patching.activation import activation_patching
from ..patching.metrics import answer_token, check_metric_position, logit_difference, prompt_pair
from ..patching.results import PatchingResult
from ..patching.sites import require_text_model, resolve_sweep
from .attention import explorer_layers

if TYPE_CHECKING:
    from ..lens import Lens, TextOrTokens

SITE_LABELS = {
    "resid_pre": "residual stream (block input)", "resid_mid": "residual stream (mid-block)",
    "resid_post": "residual stream (block output)", "attn_out": "attention output",
    "mlp_out": "MLP output", "head": "attention heads", "head_by_pos": "heads by position",
    "kv_group": "KV groups",
}
STEP_SECONDS = 1.0  # a sweep step (one request) aims at about this much compute


class PairData:
    """The prompt pair, the two tokens, the reference metric values and the cached views that
    do not depend on a sweep (DLA, logit lens, ablations)."""

    def __init__(self, lens: Lens, clean: TextOrTokens, corrupted: TextOrTokens, *,
                 answer: int | str, wrong: int | str, metric_position: int,
                 reference: Any, batch_size: int | None) -> None:
        self.lens = lens
        self.clean_ids, self.corrupted_ids = prompt_pair(lens, clean, corrupted)  # [1, pos] each
        self.n_pos = self.clean_ids.shape[1]
        self.answer = answer_token(lens, answer, "answer")
        self.wrong = answer_token(lens, wrong, "wrong")
        self.metric_position = check_metric_position(metric_position, self.n_pos)
        # what mean ablation averages over: both prompts unless told
        self.reference = [self.clean_ids, self.corrupted_ids] if reference is None else reference
        self.batch_size = batch_size
        self.clean_str = lens.to_str_tokens(self.clean_ids)
        self.corrupted_str = lens.to_str_tokens(self.corrupted_ids)
        self.clean_value = self.metric(self.clean_ids)
        self.corrupted_value = self.metric(self.corrupted_ids)
        self._ablated: dict[tuple, float] = {}
        self._logit_lens: dict[str, tuple[LogitLens, torch.Tensor]] = {}
        self._dla: Any = None
        try:
            self.attention_layers, _ = explorer_layers(lens, self.clean_ids, None)
        except LensnbError as err:
            self.attention_layers, self._attention_reason = [], str(err)
        else:
            self.attention_layers = self.attention_layers or list(range(lens.n_layers))
            self._attention_reason = ""

    def token_text(self, token: int) -> str:
        return self.lens.tokenizer.decode([token])

    # ------------------------------------------------------------------ metric
    def metric(self, tokens: torch.Tensor, hooks: Sequence[Any] = ()) -> float:
        """The raw logit difference ``answer - wrong`` at ``metric_position`` (the metric
        ``activation_patching`` normalises), with ``hooks`` applied."""
        logits = self.lens.run_with_hooks(tokens, fwd_hooks=list(hooks))  # [1, pos, d_vocab]
        return float(logit_difference(self.answer, self.wrong)(
            logits[:, self.metric_position].float())[0])

    # ------------------------------------------------------------------ what applies
    def site_reason(self, site: str, method: str) -> str:
        """Why ``site`` does not apply to this model (``""``: it does), from the refusal
        ``activation_patching`` makes before any forward pass (both methods take the same
        sites)."""
        try:
            resolve_sweep(self.lens, site, self.n_pos)
        except LensnbError as err:
            return str(err)
        return ""

    def logit_lens_reason(self) -> str:
        """Why the logit lens does not apply: on a lens whose layers cross-attend to images,
        those layers do not run on text alone (the rule of ``lensnb.patching``; see
        PATCHING_API.md, requests 4)."""
        try:
            require_text_model(self.lens, "the logit lens")
        except LensnbError as err:
            return str(err)
        return ""

    def attention_reason(self) -> str:
        return self._attention_reason

    def dla_reason(self) -> str:
        """Why direct logit attribution does not apply (the capability the lens declares)."""
        try:
            self.lens.require("direct_logit_attribution", "direct logit attribution",
                              "see the head's effect by patching (site 'head') or ablation")
        except LensnbError as err:
            return str(err)
        return ""

    # ------------------------------------------------------------------ views
    def ablation_patches(self, heads: Sequence[tuple[int, int]],
                         kv_groups: Sequence[tuple[int, int]], how: str = "zero") -> list:
        return ablation(self.lens, heads=list(heads), kv_groups=list(kv_groups), how=how,
                        reference=self.reference if how == "mean" else None)

    def ablated_value(self, heads: Sequence[tuple[int, int]],
                      kv_groups: Sequence[tuple[int, int]], how: str) -> float:
        """The clean prompt's logit difference with these heads / KV groups ablated."""
        key = (tuple(heads), tuple(kv_groups), how)
        if key not in self._ablated:
            if not heads and not kv_groups:
                self._ablated[key] = self.clean_value
            else:
                self._ablated[key] = self.metric(
                    self.clean_ids, self.ablation_patches(heads, kv_groups, how))
        return self._ablated[key]

    def dla(self) -> Any:
        if self._dla is None:
            self._dla = self.lens.logit_attribution(self.clean_ids, self.answer, self.wrong,
                                                    pos=self.metric_position)
        return self._dla

    def logit_lens(self, prompt: str) -> tuple[LogitLens, torch.Tensor]:
        """``(logit_lens(prompt, target=answer), the wrong token's probabilities)``."""
        if prompt not in self._logit_lens:
            ids = self.clean_ids if prompt == "clean" else self.corrupted_ids
            ll = logit_lens(self.lens, ids, self.answer, k=5)
            wrong = logit_lens(self.lens, ids, self.wrong, k=1).target_probs
            self._logit_lens[prompt] = (ll, wrong)
        return self._logit_lens[prompt]

    def has_logit_lens(self, prompt: str) -> bool:
        return prompt in self._logit_lens


@dataclasses.dataclass
class Sweep:
    """One (site, method) sweep as far as it is computed: ``scores`` over every layer, NaN in
    the rows not done yet, and the ``lensnb.PatchingResult`` of each step."""

    pair: PairData
    site: str
    method: str
    layers: list[int]
    scores: torch.Tensor | None = None  # [n_layers, ...] float32, NaN: not computed
    dims: tuple[str, ...] = ()
    done: set[int] = dataclasses.field(default_factory=set)
    chunks: list[Any] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    last_step: tuple[int, float] | None = None  # (layers, seconds) of the last step

    @property
    def key(self) -> str:
        return f"{self.site}/{self.method}"

    @property
    def complete(self) -> bool:
        return len(self.done) == len(self.layers)

    def batch_layers(self) -> int:
        """How many layers' cells fill one forward pass of patched copies (at least 1): a step
        runs whole passes, as one ``activation_patching`` call over every layer would."""
        p = self.pair
        per_layer = len(resolve_sweep(p.lens, self.site, p.n_pos, layers=self.layers[:1]).cells)
        rows = runner.batch_size(p.lens, p.n_pos, p.batch_size,
                                 n_rows=per_layer * len(self.layers))
        return max(1, rows // per_layer)

    def next_layers(self, *, whole: bool = False) -> list[int]:
        """The layers of the next step: all the rest for attribution (two forward passes and a
        backward cover them all) or ``whole``; else one pass's worth of layers first (quick to
        show, and it measures), then about ``STEP_SECONDS`` of them at the rate the last step
        ran (at least twice as many while steps stay short), in whole passes. Each step also
        runs the two reference passes, so a step never holds less than a full pass."""
        rest = [la for la in self.layers if la not in self.done]
        if whole or self.method == "attribution":
            return rest
        per_pass = self.batch_layers()
        if self.last_step is None:
            return rest[:per_pass]
        k, seconds = self.last_step
        n = int(STEP_SECONDS * k / max(seconds, 1e-6))
        if seconds < STEP_SECONDS / 2:
            n = max(n, 2 * k)
        return rest[:max(per_pass, n // per_pass * per_pass)]

    def run(self, layers: list[int], *, progress: Callable[[int, int], Any] | None) -> None:
        """Compute ``layers`` with ``lensnb.activation_patching`` and file them in."""
        p = self.pair
        t0 = time.perf_counter()
        res = activation_patching(
            p.lens, p.clean_ids, p.corrupted_ids, answer=p.answer, wrong=p.wrong, site=self.site,
            method=self.method, metric_position=p.metric_position,
            layers=None if layers == self.layers else layers, batch_size=p.batch_size,
            progress=progress)
        spent = time.perf_counter() - t0
        self.file(res)
        self.seconds += spent
        self.last_step = (len(layers), spent)

    def file(self, res: PatchingResult) -> None:
        """File the rows of ``res`` (a ``PatchingResult`` of this sweep) in."""
        scores = res.scores.detach().to("cpu", torch.float32)
        if self.scores is None:
            self.scores = torch.full((len(self.layers), *scores.shape[1:]), float("nan"))
            self.dims = tuple(res.dims)
        for i, la in enumerate(res.layers):
            self.scores[self.layers.index(la)] = scores[i]
            self.done.add(la)
        self.chunks.append(res)

    def result(self) -> Any:
        """The whole sweep as one ``lensnb.PatchingResult`` (the steps joined along layers)."""
        if not self.complete:
            raise InputError(f"sweep {self.key} is not complete: {len(self.done)} of "
                             f"{len(self.layers)} layers computed")
        if len(self.chunks) == 1:
            return self.chunks[0]
        return dataclasses.replace(self.chunks[0], scores=self.scores.clone(),
                                   layers=list(self.layers))


class Sweeps:
    """The sweeps of one workbench, by (site, method)."""

    def __init__(self, pair: PairData) -> None:
        self.pair = pair
        self._by_key: dict[tuple[str, str], Sweep] = {}

    def get(self, site: str, method: str) -> Sweep:
        key = (site, method)
        if key not in self._by_key:
            self._by_key[key] = Sweep(self.pair, site, method,
                                      list(range(self.pair.lens.n_layers)))
        return self._by_key[key]

    def adopt(self, res: Any) -> Sweep:
        """A sweep computed before (``lensnb.activation_patching`` of this very pair, tokens
        and metric position, every position): filed in as if computed here."""
        p = self.pair
        if not isinstance(res, PatchingResult):
            raise InputTypeError(f"results= holds lensnb.PatchingResult objects, got "
                                 f"{type(res).__name__}")
        checks = [("clean prompt", res.str_tokens, p.clean_str),
                  ("corrupted prompt", res.corrupted_str_tokens, p.corrupted_str),
                  ("answer token", res.answer, p.answer), ("wrong token", res.wrong, p.wrong),
                  ("metric position", res.metric_position, p.metric_position)]
        for what, got, want in checks:
            if got != want:
                raise InputError(f"results=: a {res.site!r} sweep of another {what} ({got!r}; "
                                 f"this workbench's is {want!r}); compute it here instead")
        if res.positions is not None and list(res.positions) != list(range(p.n_pos)):
            raise InputError(f"results=: the {res.site!r} sweep covers positions "
                             f"{res.positions}, not all {p.n_pos}; sweep every position")
        sweep = self.get(res.site, res.method)
        sweep.file(res)
        return sweep

    def started(self) -> list[Sweep]:
        """The sweeps with at least one row computed."""
        return [s for s in self._by_key.values() if s.done]
