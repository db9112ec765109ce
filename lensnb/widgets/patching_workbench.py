"""``PatchingWorkbench``: which layer, position, head and KV group carries the answer.

One prompt pair (clean, corrupted) and two tokens (``answer``, ``wrong``); the metric is the
logit difference ``answer - wrong``, normalised so 0 is the corrupted run and 1 the clean one
(``lensnb.activation_patching``'s convention). The widget computes nothing until asked: the
frontend asks for a sweep a few layers at a time (``sweep_step``, each step sized to about
``STEP_SECONDS``), so rows fill in as they come, progress shows, and Stop is the frontend not
asking again; what is computed is kept per (site, method). Clicking a head shows its attention
on the clean prompt (the explorer's head view, answered by an ``AttentionExplorer`` of the
clean prompt built on first use) and its direct logit attribution; clicking a KV group shows
its query heads. The ablation board switches heads / KV groups off (``lensnb.ablation`` +
``lens.run_with_hooks``); the logit lens is a tab. Standalone HTML carries every sweep computed
so far and the views around the selection (``export_requests``).

Views that do not apply to the model (a site it cannot patch, KV-group ablation where k/v are
not hooked per head, ...) are found when the widget is built, from the
``UnsupportedFeatureError`` each feature raises before running, and shown as disabled switches
with that message as the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import traitlets

from ..core.errors import InputError, LensnbError, RequestError, UnsupportedFeatureError
from ..core.indices import check_index, check_layer
from ..patching.results import PatchingResult
from . import patching_data as data
from .attention import AttentionExplorer
from .base import Buffers, LensWidget
from .patching_data import SITE_LABELS, Sweeps
from .protocol import Array, Reply, Request, handles
from .requests import (
    ABLATIONS,
    METHODS,
    PROMPTS,
    SITES,
    Ablate,
    AblateReply,
    Dla,
    DlaReply,
    Group,
    LogitLensReply,
    LogitLensRequest,
    Row,
    Sweep,
    SweepReply,
    SweepStep,
    Tile,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..lens import Lens, TextOrTokens

TABS = ("patching", "ablation", "logit_lens")
LOGIT_LENS_K = 5
# a standalone export pre-answers the attention views of every head while their tiles stay
# under this many cells in all (the demo up to 32 tokens), else those of the selected layer
EXPORT_ATTENTION_CELLS = 2**15


class _Relayed(Reply):
    """Another widget's encoded answer, passed on as it is (the explorer's tile/row/group)."""

    def __init__(self, encoded: tuple[dict, Buffers]) -> None:
        self._encoded = encoded

    def encode(self) -> tuple[dict, Buffers]:
        return self._encoded


def _reason(fn: Callable[[], Any]) -> str:
    """``""`` when ``fn()`` runs, else the message of the ``UnsupportedFeatureError`` (or other
    lensnb error) it raises up front."""
    try:
        fn()
    except LensnbError as err:
        return str(err)
    return ""


class PatchingWorkbench(LensWidget):
    """Activation patching, attribution patching, ablation and the logit lens on one prompt pair.

    ``PatchingWorkbench(lens, clean, corrupted, answer=" Mary", wrong=" John")``: ``clean`` and
    ``corrupted`` are texts (or tokens) of the same token length; ``answer``/``wrong`` are token
    ids or strings of exactly one token. Nothing runs until a sweep is asked for: in the widget
    (pick a site and a method) or from Python with ``sweep(site, method)``, which returns the
    ``lensnb.PatchingResult``. The widget asks for a sweep a few layers per request (whole
    forward passes, about a second each), so rows fill in with a progress bar; Stop ends it
    after the step in flight (Kernel > Interrupt ends that step at once); the rows done stay.

    Tabs: **patching** (heatmaps layer x position for ``resid_pre``/``resid_mid``/
    ``resid_post``/``attn_out``/``mlp_out``, layer x head for ``head`` and ``head_by_pos``, layer
    x KV group for ``kv_group``; hover for the exact score and token; click a head for its
    attention on the clean prompt and its direct logit attribution, a KV group for its query
    heads), **ablation** (switch heads or KV groups off, ``how="zero"`` or ``"mean"``, and see
    the clean prompt's logit difference beside the clean and corrupted ones) and **logit_lens**.

    Synced traits, readable and settable from Python: ``site``, ``method``, ``tab``,
    ``selected`` (``{"kind": "head", "layer", "head"}`` or ``{"kind": "kv_group", "layer",
    "kv_group"}``), ``ablated_heads``, ``ablated_kv_groups``, ``ablate_how``.
    ``figure(style=)`` / ``save(path)`` give the current heatmap (or the logit lens) as a
    figure; a standalone export (``save("x.html")``, the notebook's static copy) carries every
    sweep computed so far.

    ``results=[res, ...]``: sweeps computed before (``lensnb.activation_patching`` of this pair),
    shown without computing them again.

    Options: ``metric_position`` (where the logit difference is read, default the last token),
    ``reference`` (the text(s) mean ablation averages over; default both prompts),
    ``batch_size`` (patched copies per forward pass; None: from a memory budget).
    """

    _esm_file = ("attention_draw.js", "attention_head.js", "attention_group.js",
                 "patching_heatmap.js", "patching_panels.js", "patching_workbench.js")
    _css_file = ("attention.css", "patching_workbench.css")

    # what the frontend shows (Python sets these)
    clean_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    corrupted_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    answer_text = traitlets.Unicode().tag(sync=True)
    wrong_text = traitlets.Unicode().tag(sync=True)
    clean_value = traitlets.Float().tag(sync=True)
    corrupted_value = traitlets.Float().tag(sync=True)
    n_layers = traitlets.Int(1).tag(sync=True)
    n_heads = traitlets.Int(1).tag(sync=True)
    n_kv = traitlets.Int(1).tag(sync=True)
    sites = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{site, label, reasons}]
    reasons = traitlets.Dict().tag(sync=True)  # view -> why it does not apply ("" if it does)
    attention_layers = traitlets.List(traitlets.Int()).tag(sync=True)
    sweeps = traitlets.Dict().tag(sync=True)  # "site/method" -> {done, total}
    # what the user chooses (either side sets these)
    site = traitlets.Enum(SITES, default_value="resid_pre").tag(sync=True)
    method = traitlets.Enum(METHODS, default_value="exact").tag(sync=True)
    tab = traitlets.Enum(TABS, default_value="patching").tag(sync=True)
    selected = traitlets.Dict().tag(sync=True)
    head_by_pos_head = traitlets.Int(0).tag(sync=True)  # the head shown for "head_by_pos"
    ablated_heads = traitlets.List(traitlets.List(traitlets.Int())).tag(sync=True)
    ablated_kv_groups = traitlets.List(traitlets.List(traitlets.Int())).tag(sync=True)
    ablate_how = traitlets.Enum(ABLATIONS, default_value="zero").tag(sync=True)

    def __init__(self, lens: Lens, clean: TextOrTokens, corrupted: TextOrTokens, *,
                 answer: int | str, wrong: int | str, site: str = "resid_pre",
                 method: str = "exact", metric_position: int = -1,
                 reference: str | Sequence[str] | None = None, batch_size: int | None = None,
                 results: Sequence[PatchingResult] = (), tab: str = "patching") -> None:
        self.lens = lens
        self._data = data.PairData(lens, clean, corrupted, answer=answer, wrong=wrong,
                                   metric_position=metric_position, reference=reference,
                                   batch_size=batch_size)
        d = self._data
        self._sweeps = Sweeps(d)
        adopted = [self._sweeps.adopt(res) for res in results]
        self._explorer: Any = None
        self._site_reasons = {(s, m): d.site_reason(s, m) for s in SITES for m in METHODS}
        self._built = False
        site_rows = [{"site": s, "label": SITE_LABELS[s],
                      "reasons": {m: self._site_reasons[s, m] for m in METHODS}} for s in SITES]
        reasons = {"ablate_heads": _reason(lambda: d.ablation_patches([(0, 0)], [])),
                   "ablate_kv_groups": _reason(lambda: d.ablation_patches([], [(0, 0)])),
                   "attention": d.attention_reason(), "dla": d.dla_reason(),
                   "logit_lens": d.logit_lens_reason()}
        super().__init__(
            clean_tokens=d.clean_str, corrupted_tokens=d.corrupted_str,
            answer_text=d.token_text(d.answer), wrong_text=d.token_text(d.wrong),
            clean_value=d.clean_value, corrupted_value=d.corrupted_value,
            n_layers=lens.n_layers, n_heads=lens.n_heads, n_kv=lens.n_key_value_heads,
            sites=site_rows, reasons=reasons, attention_layers=d.attention_layers,
            sweeps={sw.key: {"done": len(sw.done), "total": len(sw.layers)} for sw in adopted},
        )
        self.method, self.tab = method, tab
        self.site = self._first_site(site, explicit=site != "resid_pre")
        self._built = True

    def _first_site(self, site: str, *, explicit: bool) -> str:
        """``site`` if it applies; a site asked for that does not raises its
        ``UnsupportedFeatureError``; the default falls back to the first site that applies
        (none may: a Llama 3.2 Vision lens takes no patching; its switches say why)."""
        reason = self._site_reasons.get((site, self.method), "")
        if not reason:
            return site
        if explicit:
            raise UnsupportedFeatureError(reason)
        return next((s for s in SITES if not self._site_reasons[s, self.method]), site)

    # ------------------------------------------------------------------ traits
    @traitlets.validate("selected")
    def _valid_selected(self, proposal: dict) -> dict:
        value = dict(proposal["value"])
        if not value:
            return value
        kind = value.get("kind")
        try:
            layer = check_layer(value.get("layer"), self.lens.n_layers)
            if kind == "head":
                return {"kind": kind, "layer": layer,
                        "head": self.lens.kv_groups.check_head(value.get("head"))}
            if kind == "kv_group":
                return {"kind": kind, "layer": layer,
                        "kv_group": self.lens.kv_groups.check_kv_head(value.get("kv_group"))}
        except (IndexError, TypeError) as err:
            raise traitlets.TraitError(f"selected: {err}") from None
        raise traitlets.TraitError(
            f"selected must be {{}} (nothing), {{'kind': 'head', 'layer', 'head'}} or "
            f"{{'kind': 'kv_group', 'layer', 'kv_group'}}, not {proposal['value']!r}")

    @traitlets.validate("head_by_pos_head")
    def _valid_head_by_pos_head(self, proposal: dict) -> int:
        try:
            return self.lens.kv_groups.check_head(proposal["value"])
        except IndexError as err:
            raise traitlets.TraitError(str(err)) from None

    @traitlets.validate("site")
    def _valid_site(self, proposal: dict) -> str:
        site = proposal["value"]
        reason = self._site_reasons.get((site, "exact"), "")
        if self._built and reason and all(self._site_reasons[site, m] for m in METHODS):
            raise traitlets.TraitError(f"site {site!r} does not apply: {reason}")
        return site

    def select(self, layer: int, *, head: int | None = None,
               kv_group: int | None = None) -> None:
        """Show a head's attention and direct logit attribution (``head=``), or a KV group's
        query heads (``kv_group=``), as clicking it does."""
        if (head is None) == (kv_group is None):
            raise InputError("select(layer, head=...) or select(layer, kv_group=...): one of "
                             "them")
        self.selected = ({"kind": "head", "layer": layer, "head": head} if head is not None
                         else {"kind": "kv_group", "layer": layer, "kv_group": kv_group})

    # ------------------------------------------------------------------ Python API
    def sweep(self, site: str | None = None, method: str | None = None, *,
              progress: Callable[[int, int], Any] | None = None) -> PatchingResult:
        """The whole sweep of ``site`` with ``method`` (default: the widget's), computed now if
        it is not yet (the rows computed in the widget are kept); shows it in the widget and
        returns the ``lensnb.PatchingResult``. The widget shows the progress; ``progress``, a
        function ``(done, total)``, is called too."""
        site, method = site or self.site, method or self.method
        if site not in SITES or method not in METHODS:
            raise InputError(f"site must be one of {', '.join(SITES)} and method one of "
                             f"{', '.join(METHODS)}; got {site!r}, {method!r}")
        reason = self._site_reasons[site, method]
        if reason:
            raise UnsupportedFeatureError(reason)
        sweep = self._sweeps.get(site, method)
        while not sweep.complete:
            self._step(sweep, progress=progress, whole=True)
        self.site, self.method = site, method
        return sweep.result()

    def ablate(self, heads: Sequence[tuple[int, int]] = (),
               kv_groups: Sequence[tuple[int, int]] = (), *, how: str | None = None) -> float:
        """Set the ablation board (as its switches do) and return the clean prompt's logit
        difference with those heads / KV groups ablated."""
        how = how or self.ablate_how
        heads, kv_groups = self._check_pairs(heads, kv_groups, how, error=InputError)
        value = self._data.ablated_value(heads, kv_groups, how)
        self.set_trait("ablated_heads", [list(p) for p in heads])
        self.set_trait("ablated_kv_groups", [list(p) for p in kv_groups])
        self.ablate_how = how
        return value

    def logit_lens(self, prompt: str = "clean") -> Any:
        """``lensnb.logit_lens`` of the clean (or corrupted) prompt, target the answer."""
        return self._data.logit_lens(prompt)[0]

    @property
    def logit_attribution(self) -> Any:
        """``lens.logit_attribution(clean, answer, wrong)`` (computed once)."""
        return self._data.dla()

    # ------------------------------------------------------------------ requests
    def _on_frontend_msg(self, widget: Any, content: dict, buffers: list) -> None:
        """As ``LensWidget``'s; an interrupt (Kernel > Interrupt) during a long request becomes
        an error reply: the frontend shows it and stays usable; finished rows are kept."""
        try:
            super()._on_frontend_msg(widget, content, buffers)
        except KeyboardInterrupt:
            self.send({"kind": "reply", "id": content.get("id"),
                       "error": "Interrupted: the rows finished before are kept; ask again to go "
                                "on"})

    def _progress(self, sweep: data.Sweep, chunk: int, user: Any) -> Callable[[int, int], None]:
        """A progress callback for one step of ``sweep`` over ``chunk`` layers: tells the
        frontend (at most every 0.1 s) and the user's callable, if any."""
        last = [0.0]
        total_layers = len(sweep.layers)

        def tick(done: int, total: int) -> None:
            now = time.monotonic()
            if callable(user):
                user(done, total)
            if now - last[0] < 0.1 and done < total:
                return
            last[0] = now
            fraction = (len(sweep.done) + chunk * done / max(total, 1)) / total_layers
            self.send({"kind": "progress", "site": sweep.site, "method": sweep.method,
                       "fraction": fraction, "done": done, "total": total})

        return tick

    def _step(self, sweep: data.Sweep, *, progress: Any = None, whole: bool = False) -> None:
        layers = sweep.next_layers(whole=whole)
        sweep.run(layers, progress=self._progress(sweep, len(layers), progress))
        self.sweeps = {**self.sweeps, sweep.key: {"done": len(sweep.done),
                                                  "total": len(sweep.layers)}}

    def _sweep_reply(self, sweep: data.Sweep) -> SweepReply:
        d = self._data
        return SweepReply(site=sweep.site, method=sweep.method, dims=list(sweep.dims),
                          layers=sweep.layers, done=sorted(sweep.done), complete=sweep.complete,
                          clean_value=d.clean_value, corrupted_value=d.corrupted_value,
                          seconds=round(sweep.seconds, 4), scores=Array(sweep.scores))

    def _sweep_of(self, req: Sweep) -> data.Sweep:
        reason = self._site_reasons[req.site, req.method]
        if reason:
            raise RequestError(f"request {req.NAME!r}: site {req.site!r} with method "
                               f"{req.method!r} does not apply to this model: {reason}")
        return self._sweeps.get(req.site, req.method)

    @handles(Sweep)
    def _on_sweep(self, req: Sweep) -> SweepReply:
        return self._sweep_reply(self._sweep_of(req))

    @handles(SweepStep)
    def _on_sweep_step(self, req: SweepStep) -> SweepReply:
        sweep = self._sweep_of(req)
        if not sweep.complete:
            self._step(sweep)
        return self._sweep_reply(sweep)

    def _refused(self, view: str, fn: Callable[[], Any]) -> Any:
        """``fn()``; a refusal (``UnsupportedFeatureError``, or a ``NotImplementedError`` of a
        model a view does not cover yet) becomes ``reasons[view]`` (the frontend then says why
        instead of asking again) and a ``RequestError`` saying so."""
        reason = self.reasons.get(view, "")
        if not reason:
            try:
                return fn()
            except NotImplementedError as err:  # UnsupportedFeatureError is one too
                reason = str(err)
                self.reasons = {**self.reasons, view: reason}
        raise RequestError(f"the {view} view does not apply to this model: {reason}")

    @handles(Dla)
    def _on_dla(self, req: Dla) -> DlaReply:
        dla = self._refused("dla", self._data.dla)
        return DlaReply(logit_diff=float(dla.logit_diff), embed=float(dla.embed),
                        heads=Array(dla.heads), mlp=Array(dla.mlp))

    def _check_pairs(self, heads: Sequence, kv_groups: Sequence, how: str, *,
                     error: type[LensnbError] = RequestError,
                     ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Heads and KV groups as sorted unique (layer, index) pairs; ``error`` (a
        ``RequestError`` for a frontend request) names the first that does not fit."""
        where = "ablate"
        if how not in ABLATIONS:
            raise error(f"{where}: how must be one of {ABLATIONS}, got {how!r}")
        out = []
        for field, pairs, n, plural in (("heads", heads, self.lens.n_heads, "query heads"),
                                        ("kv_groups", kv_groups, self.lens.n_key_value_heads,
                                         "KV groups")):
            got = set()
            for pair in pairs:
                try:
                    layer, index = (int(v) for v in pair)
                    got.add((check_layer(layer, self.lens.n_layers),
                              check_index(index, n, field[:-1], plural=plural)))
                except IndexError as err:
                    raise error(f"{where}: field {field!r} item {list(pair)!r}: {err}") from None
                except (TypeError, ValueError):
                    raise error(f"{where}: field {field!r} item {pair!r} is not a [layer, index] "
                                "pair of ints") from None
            reason = self.reasons.get(f"ablate_{field}", "")
            if got and reason:
                raise error(f"{where}: {field} cannot be ablated on this model: {reason}")
            out.append(sorted(got))
        return out[0], out[1]

    @handles(Ablate)
    def _on_ablate(self, req: Ablate) -> AblateReply:
        heads, kv_groups = self._check_pairs(req.heads, req.kv_groups, req.how)
        value = self.ablate(heads, kv_groups, how=req.how)
        d = self._data
        span = d.clean_value - d.corrupted_value
        return AblateReply(value=value, clean_value=d.clean_value,
                           corrupted_value=d.corrupted_value,
                           normalised=(value - d.corrupted_value) / span if span else None,
                           heads=[list(p) for p in heads], kv_groups=[list(p) for p in kv_groups],
                           how=req.how)

    @handles(LogitLensRequest)
    def _on_logit_lens(self, req: LogitLensRequest) -> LogitLensReply:
        ll, wrong = self._data.logit_lens(req.prompt)
        tokens = self._data.clean_str if req.prompt == "clean" else self._data.corrupted_str
        return LogitLensReply(prompt=req.prompt, rows=ll.row_labels, tokens=tokens,
                              top_tokens=ll.top_tokens, top_probs=Array(ll.top_probs),
                              answer=Array(ll.target_probs), wrong=Array(wrong))

    # the explorer's head and KV-group views, answered by an explorer of the clean prompt
    def _relay(self, req: Request) -> _Relayed:
        if self._explorer is None:
            self._explorer = self._refused("attention", lambda: AttentionExplorer(
                self.lens, self._data.clean_ids, layers=self.attention_layers, progress=False))
        return _Relayed(self._explorer.answer(req))

    @handles(Tile)
    def _on_tile(self, req: Tile) -> _Relayed:
        return self._relay(req)

    @handles(Row)
    def _on_row(self, req: Row) -> _Relayed:
        return self._relay(req)

    @handles(Group)
    def _on_group(self, req: Group) -> _Relayed:
        return self._relay(req)

    # ------------------------------------------------------------------ export
    def export_requests(self) -> list[dict]:
        """Every sweep computed so far (the whole of each), the ablation board's current value,
        the logit lens where computed, DLA, and the attention views of the heads (all of them
        while small, else the selected one) and KV groups."""
        reqs: list[Request] = [Sweep(site=s.site, method=s.method)
                               for s in self._sweeps.started()]
        reqs.append(Ablate(heads=self.ablated_heads, kv_groups=self.ablated_kv_groups,
                           how=self.ablate_how))
        reqs += [LogitLensRequest(prompt=p) for p in PROMPTS if self._data.has_logit_lens(p)]
        # a head is reachable in the copy (selected, or a head / KV-group sweep to click): its
        # views come along; a fresh widget's copy (shown at display) computes nothing for them
        heads = self.selected or any(s.dims[1:2] in (("head",), ("kv_group",))
                                     or s.site == "head_by_pos" for s in self._sweeps.started())
        if heads and not self.reasons.get("dla"):
            reqs.append(Dla())
        if heads and not self.reasons.get("attention"):
            reqs += self._attention_requests()
        return [r.wire() for r in reqs]

    def _attention_requests(self) -> list[Request]:
        n, sel = len(self.clean_tokens), self.selected
        layers, heads = self.attention_layers, range(self.lens.n_heads)
        if len(layers) * len(heads) * n * n <= EXPORT_ATTENTION_CELLS:
            reqs: list[Request] = [Tile(layer=la, head=h) for la in layers for h in heads]
            reqs += [Group(layer=la, kv_group=g) for la in layers
                     for g in range(self.lens.n_key_value_heads)]
        elif sel.get("layer") in layers:
            reqs = [Tile(layer=sel["layer"], head=h) for h in heads]
            reqs += [Group(layer=sel["layer"], kv_group=g)
                     for g in range(self.lens.n_key_value_heads)]
        else:
            reqs = []
        if sel.get("kind") == "head" and sel["layer"] in layers:  # its exact rows for hover
            reqs += [Row(layer=sel["layer"], head=sel["head"], pos=q) for q in range(n)]
        return reqs

    # ------------------------------------------------------------------ static figure
    def figure(self, *, style: str | None = None) -> go.Figure:
        """The current view as a plotly figure: the logit lens on its tab, else the current
        sweep's heatmap (computed now if it is not yet)."""
        if self.tab == "logit_lens":
            return self.logit_lens("clean").figure(style=style)
        return self.sweep(self.site, self.method).figure(title=self._title(), style=style)

    def _title(self) -> str:
        label = SITE_LABELS[self.site]
        return (f"{label} ({self.method}): logit diff {self.answer_text!r} − "
                f"{self.wrong_text!r}, 0 = corrupted, 1 = clean")

    def __repr__(self) -> str:
        done = [k for k, v in self.sweeps.items() if v["done"] == v["total"]]
        return (f"<PatchingWorkbench: {len(self.clean_tokens)} tokens, logit diff clean "
                f"{self.clean_value:+.3f} / corrupted {self.corrupted_value:+.3f}; sweeps "
                f"computed: {', '.join(done) or 'none'}>")
