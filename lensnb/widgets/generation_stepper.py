"""``GenerationStepper``: watch a model generate token by token, with patches and a logit lens.

Step / Run / Stop buttons drive ``lens.steps`` one token per frontend request (so Stop is just
the frontend not asking again; the kernel is never blocked by a long loop). Python owns the
state: the steps so far, the active patches, and the generator, which is closed (hooks removed)
whenever the run is restarted.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
import traitlets

from ..backend.generation import Step, steps
from ..backend.patching import Patch, patch
from .base import Buffers, LensWidget, pack

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..backend.lens import Lens

# Hooks offered in the patch panel (all on the fast path).
PATCH_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
               "hook_mlp_out", "attn.hook_z")
LOGIT_LENS_K = 3


class GenerationStepper(LensWidget):
    """Generate from ``prompt`` one token at a time.

    ``GenerationStepper(lens, prompt, max_new_tokens=32, top_k=8)`` shows the text growing,
    the top-k next tokens of the latest step, a logit-lens heatmap (layer × step: probability
    each layer's residual stream gives the token finally chosen) and the new token's attention
    per head. Patches (``add_patch``) restart generation from the prompt. From Python:
    ``step()``, ``run()``, ``reset()``, ``.steps``, ``.text``, ``attention_explorer()``.
    """

    _esm_file = "generation_stepper.js"
    _css_file = "generation_stepper.css"

    prompt = traitlets.Unicode().tag(sync=True)
    max_new_tokens = traitlets.Int(32).tag(sync=True)
    top_k = traitlets.Int(8).tag(sync=True)
    prompt_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    generated = traitlets.List(traitlets.Unicode()).tag(sync=True)
    done = traitlets.Bool(False).tag(sync=True)
    stop_reason = traitlets.Unicode("").tag(sync=True)
    patches = traitlets.List(traitlets.Dict()).tag(sync=True)  # descriptions, for display
    n_layers = traitlets.Int(1).tag(sync=True)
    n_heads = traitlets.Int(1).tag(sync=True)
    hook_choices = traitlets.List(traitlets.Unicode()).tag(sync=True)

    def __init__(self, lens: Lens, prompt: str, *, max_new_tokens: int = 32,
                 top_k: int = 8) -> None:
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.lens = lens
        self._patches: list[Patch] = []
        self.steps: list[Step] = []
        self._gen: Iterator[Step] | None = None
        super().__init__(prompt=prompt, max_new_tokens=max_new_tokens, top_k=top_k,
                         prompt_tokens=lens.to_str_tokens(prompt), n_layers=lens.n_layers,
                         n_heads=lens.n_heads, hook_choices=list(PATCH_HOOKS))

    # ------------------------------------------------------------------ stepping
    def _generator(self) -> Iterator[Step]:
        if self._gen is None:
            self._gen = steps(self.lens, self.prompt, self.max_new_tokens,
                              hooks=list(self._patches), top_k=self.top_k,
                              logit_lens=LOGIT_LENS_K)
        return self._gen

    def step(self) -> Step | None:
        """Generate one more token; ``None`` once generation has stopped."""
        if self.done:
            return None
        try:
            s = next(self._generator())
        except StopIteration:
            s = None
        if s is not None:
            self.steps.append(s)
            self.generated = [*self.generated, s.text]
        if s is None or bool(s.finished.all()) or len(self.steps) >= self.max_new_tokens:
            self._finish(s)
        return s

    def _finish(self, last: Step | None) -> None:
        self.done = True
        if last is not None and bool(last.finished.all()):
            eos = self.lens.tokenizer.eos_token_id
            self.stop_reason = "eos" if last.token == eos else "stop"
        else:
            self.stop_reason = "max_new_tokens"
        self._close()

    def run(self, n: int | None = None) -> list[Step]:
        """Step until done (or ``n`` more tokens); returns the new steps."""
        out = []
        while not self.done and (n is None or len(out) < n):
            s = self.step()
            if s is not None:
                out.append(s)
        return out

    def reset(self) -> None:
        """Start again from the prompt (with the current patches)."""
        self._close()
        self.steps = []
        self.generated = []
        self.done = False
        self.stop_reason = ""

    def _close(self) -> None:
        if self._gen is not None:
            self._gen.close()  # removes the hooks
            self._gen = None

    @property
    def text(self) -> str:
        """Prompt plus everything generated so far."""
        return self.prompt + "".join(self.generated)

    @property
    def tokens(self) -> torch.Tensor:
        """``[1, pos]`` ids of the prompt and the generated tokens."""
        new = torch.tensor([[s.token for s in self.steps]], dtype=torch.long)
        return torch.cat([self.lens.to_tokens(self.prompt).cpu(), new], dim=1)

    # ------------------------------------------------------------------ patches
    def add_patch(self, layer: int, hook: str = "hook_resid_post", *, position: int | None = -1,
                  value: str | float | torch.Tensor = "zero", scale: float = 0.0,
                  source_prompt: str | None = None, source_position: int = -1,
                  every_generated: bool = False) -> None:
        """Add a patch and restart from the prompt.

        ``value``: ``"zero"``, ``"scale"`` (multiply by ``scale``), ``"source"`` (the same hook's
        activation on ``source_prompt`` at ``source_position``) or a tensor.
        """
        name = self.lens.hook_name(hook, layer)  # raises with suggestions
        if isinstance(value, torch.Tensor):
            v: Any = value
            desc = f"tensor {tuple(value.shape)}"
        elif value == "zero":
            v, desc = 0.0, "zero"
        elif value == "scale":
            factor = float(scale)
            v, desc = (lambda old, f=factor: old * f), f"×{factor:g}"
        elif value == "source":
            if not source_prompt:
                raise ValueError("value='source' needs source_prompt")
            n = self.lens.to_tokens(source_prompt).shape[-1]
            if not -n <= source_position < n:
                raise IndexError(f"source_position {source_position} is outside the source "
                                 f"prompt ({n} tokens)")
            _, cache = self.lens.run_with_cache(source_prompt, names=[name])
            v = cache[name][0, source_position].clone()
            desc = f"from {source_prompt!r}[{source_position}]"
        else:
            raise ValueError(f"value must be 'zero', 'scale', 'source' or a tensor, got "
                             f"{value!r}")
        p = patch(layer, hook, position=position, value=v, every_generated=every_generated)
        p.resolve(self.lens).check_positions([len(self.prompt_tokens)], self.max_new_tokens)
        self._patches.append(p)
        self.patches = [*self.patches, {"name": name, "position": position, "value": desc,
                                        "every_generated": every_generated}]
        self.reset()

    def clear_patches(self) -> None:
        """Remove every patch and restart from the prompt."""
        self._patches = []
        self.patches = []
        self.reset()

    # ------------------------------------------------------------------ attention
    def attention(self, layer: int) -> torch.Tensor:
        """``[n_heads, pos]``: where the newest token attends, per head (unpatched model, on
        the current text)."""
        name = self.lens.hook_name("attn.hook_pattern", layer)
        tokens = self.tokens[:, :-1] if self.steps else self.tokens
        _, cache = self.lens.run_with_cache(tokens.to(self.lens.device), names=[name])
        return cache[name][0, :, -1].float().cpu()

    def attention_explorer(self, layers: Any = None) -> Any:
        """An ``AttentionExplorer`` on the current text (prompt + generated tokens)."""
        try:
            from .attention import AttentionExplorer
        except ImportError as err:  # pragma: no cover - the explorer ships with lensnb
            raise RuntimeError("lensnb.AttentionExplorer is not available") from err
        return AttentionExplorer(self.lens, self.text, layers)

    # ------------------------------------------------------------------ frontend
    def _step_json(self, s: Step) -> tuple[dict, Buffers]:
        top_meta, top_buf = pack(s.top_probs[0], "float32")
        out: dict[str, Any] = {"index": s.index, "token": s.text, "id": s.token,
                               "position": int(s.positions[0]), "top_texts": s.top_texts[0],
                               "top": top_meta}
        bufs = [top_buf]
        if s.logit_lens is not None:
            meta, buf = pack(s.logit_lens.chosen_probs[0], "float32")  # [n_layers]
            ids = s.logit_lens.top_ids[0, :, 0].tolist()
            out["lens"] = meta
            out["lens_top"] = [self.lens.tokenizer.decode([t]) for t in ids]
            bufs.append(buf)
        return out, bufs

    def _state(self) -> tuple[dict, Buffers]:
        items, bufs = [], []
        for s in self.steps:
            j, b = self._step_json(s)
            j["buffers"] = [len(bufs), len(bufs) + len(b)]
            items.append(j)
            bufs.extend(b)
        return {"steps": items, "done": self.done, "stop_reason": self.stop_reason}, bufs

    def answer(self, request: dict) -> tuple[dict, Buffers]:
        """Requests: ``state``, ``step``, ``reset``, ``add_patch``, ``clear_patches``,
        ``attention``, ``explorer``."""
        kind = request.get("kind")
        if kind == "state":
            return self._state()
        if kind == "step":
            s = self.step()
            if s is None:
                return {"step": None, "done": True, "stop_reason": self.stop_reason}, []
            j, b = self._step_json(s)
            return {"step": j, "done": self.done, "stop_reason": self.stop_reason}, b
        if kind == "reset":
            self.reset()
            return self._state()
        if kind == "add_patch":
            self.add_patch(int(request["layer"]), str(request.get("hook", "hook_resid_post")),
                           position=int(request.get("position", -1)),
                           value=str(request.get("value", "zero")),
                           scale=float(request.get("scale", 0.0)),
                           source_prompt=request.get("source_prompt") or None,
                           source_position=int(request.get("source_position", -1)),
                           every_generated=bool(request.get("every_generated", False)))
            return self._state()
        if kind == "clear_patches":
            self.clear_patches()
            return self._state()
        if kind == "attention":
            layer = int(request.get("layer", self.n_layers - 1))
            meta, buf = pack(self.attention(layer), "float32")
            tokens = self.prompt_tokens + self.generated[:-1]
            return {"meta": meta, "layer": layer, "tokens": tokens,
                    "patched": bool(self._patches)}, [buf]
        if kind == "explorer":
            self.explorer = self.attention_explorer()
            return {"ok": True}, []
        raise ValueError(f"unknown request kind {kind!r}: expected state, step, reset, "
                         "add_patch, clear_patches, attention or explorer")

    def export_requests(self) -> list[dict]:
        """The state and, once there are steps, the attention the view draws first."""
        return [{"kind": "state"}] + ([{"kind": "attention", "layer": self.n_layers - 1}]
                                      if self.steps else [])

    # ------------------------------------------------------------------ static figure
    def figure(self, *, style: str | None = None) -> go.Figure:
        """Logit-lens heatmap (layer × step) beside the latest step's top-k bar chart."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from ..export.style import SEQUENTIAL, apply_style

        fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35], horizontal_spacing=0.12,
                            subplot_titles=("logit lens: P(chosen token) per layer",
                                            "top next tokens (last step)"))
        if self.steps:
            z = torch.stack([s.logit_lens.chosen_probs[0] for s in self.steps], 1)  # [L, steps]
            top1 = [[html.escape(self.lens.tokenizer.decode([int(s.logit_lens.top_ids[0, l, 0])]))
                     for s in self.steps] for l in range(self.n_layers)]
            labels = [f"{s.index}:{html.escape(_show(s.text))}" for s in self.steps]
            fig.add_trace(go.Heatmap(z=z.numpy(), x=labels, y=list(range(self.n_layers)),
                                     customdata=top1, colorscale=SEQUENTIAL, zmin=0, zmax=1,
                                     colorbar=dict(title="P", x=0.58),
                                     hovertemplate="layer %{y}, step %{x}<br>P(chosen) %{z:.3f}"
                                     "<br>layer's top token %{customdata}<extra></extra>"),
                          row=1, col=1)
            last = self.steps[-1]
            fig.add_trace(go.Bar(x=last.top_probs[0].tolist()[::-1],
                                 y=[html.escape(_show(t)) for t in last.top_texts[0]][::-1],
                                 orientation="h", marker_color="#3b528b", showlegend=False),
                          row=1, col=2)
        fig.update_xaxes(title_text="step: token", row=1, col=1)
        fig.update_yaxes(title_text="layer", row=1, col=1)
        fig.update_xaxes(title_text="probability", range=[0, 1], row=1, col=2)
        fig.update_layout(title=html.escape(_show(self.text[-120:])))
        return apply_style(fig, style)


def _show(text: str) -> str:
    return text.replace("\n", "\\n")
