"""``GenerationStepper``: watch a model generate token by token, with patches and a logit lens.

Step / Run / Stop buttons drive ``lens.steps`` one token per frontend request (so Stop is just
the frontend not asking again; the kernel is never blocked by a long loop). Python owns the
state: the steps so far, the active patches, and the generator, which is closed (hooks removed)
whenever the run is restarted.

On a Llama 3.2 Vision lens with ``image=``, it is a captioning stepper: every step keeps the
cross-attention row of the position that wrote the new token (``[n_heads, image_tokens]`` per
cross-attention layer, from the generation's own hooks), and the frontend draws it over the
picture with ImageAttention's overlay (``image_overlay``), per layer and head.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import traitlets

from ..backends.images import ImageLayout, open_image
from ..core import theme
from ..core.errors import ImageTokenError, InputError, InputTypeError, UnsupportedFeatureError
from ..core.indices import check_index, check_layer, check_position
from ..interventions.generation import Step, steps
from ..interventions.generation_config import GenerationConfig
from ..interventions.patch import Patch, patch
from .base import LensWidget
from .image_overlay import (
    SHARED_FILES,
    data_url,
    grid_reply,
    head_weights,
    overlay_geometry,
    picture_grid,
)
from .protocol import Array, Done, Request, handles
from .requests import (
    MODES,
    AddPatch,
    Attention,
    AttentionReply,
    ClearPatches,
    Cross,
    CrossReply,
    Explorer,
    Reset,
    State,
    StateReply,
    StepOnce,
    StepReply,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..lens import Lens

# Hooks offered in the patch panel (all on the fast path).
PATCH_HOOKS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out",
               "hook_mlp_out", "attn.hook_z")
LOGIT_LENS_K = 3


class GenerationStepper(LensWidget):
    """Generate from ``prompt`` one token at a time.

    ``GenerationStepper(lens, prompt, max_new_tokens=32, top_k_probs=8)`` shows the text
    growing, the ``top_k_probs`` most likely next tokens of the latest step, a logit-lens
    heatmap (layer × step: probability each layer's residual stream gives the token finally
    chosen) and the new token's attention per head. Patches (``add_patch``) restart generation
    from the prompt. From Python: ``step()``, ``run()``, ``reset()``, ``.steps``, ``.text``,
    ``attention_explorer()``.
    How to generate: ``config=lensnb.GenerationConfig(...)`` or its fields as keywords
    (``do_sample=True, temperature=0.8, top_k=40, seed=0``: Hugging Face's names), as for
    ``lens.steps``; ``.config`` is what it runs with.

    ``GenerationStepper(vision_lens, "<|image|>", image=img)`` (Llama 3.2 Vision; the prompt
    holds one ``<|image|>``): also the picture with each new token's cross-attention over it,
    for cross-attention layer ``cross_layer`` and ``cross_mode`` ``"head"`` (``cross_head``),
    ``"kv_group"`` (``cross_kv_group``) or ``"mean"`` (synced traits); from Python
    ``cross_attention(step)`` and ``cross_grid(step)``.
    """

    _esm_file = ("generation_stepper_panels.js", "generation_stepper_picture.js",
                 "generation_stepper_patches.js", "generation_stepper.js")
    _css_file = "generation_stepper.css"
    _shared_files = SHARED_FILES

    prompt = traitlets.Unicode().tag(sync=True)
    max_new_tokens = traitlets.Int(32).tag(sync=True)
    top_k_probs = traitlets.Int(8).tag(sync=True)
    prompt_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    generated = traitlets.List(traitlets.Unicode()).tag(sync=True)
    done = traitlets.Bool(False).tag(sync=True)
    stop_reason = traitlets.Unicode("").tag(sync=True)
    patches = traitlets.List(traitlets.Dict()).tag(sync=True)  # descriptions, for display
    n_layers = traitlets.Int(1).tag(sync=True)
    n_heads = traitlets.Int(1).tag(sync=True)
    hook_choices = traitlets.List(traitlets.Unicode()).tag(sync=True)
    attention_layers = traitlets.List(traitlets.Int()).tag(sync=True)  # self-attention layers
    # captioning (a vision lens with an image)
    vision = traitlets.Bool(False).tag(sync=True)
    cross_layers = traitlets.List(traitlets.Int()).tag(sync=True)
    n_kv_heads = traitlets.Int(1).tag(sync=True)
    picture = traitlets.Unicode("").tag(sync=True)  # data: URL of a PNG preview
    geometry = traitlets.Dict().tag(sync=True)
    cross_layer = traitlets.Int(-1).tag(sync=True)
    cross_mode = traitlets.Enum(MODES, default_value="mean").tag(sync=True)
    cross_head = traitlets.Int(0).tag(sync=True)
    cross_kv_group = traitlets.Int(0).tag(sync=True)

    def __init__(self, lens: Lens, prompt: str, *, max_new_tokens: int | None = None,
                 top_k_probs: int = 8, image: Any = None, config: GenerationConfig | None = None,
                 **generation: Any) -> None:
        if not isinstance(prompt, str) or not prompt:
            raise InputError(f"prompt must be a non-empty string, got {prompt!r}")
        for own in ("logit_lens", "cache", "images", "hooks"):
            if own in generation:
                raise InputTypeError(f"GenerationStepper sets {own}= itself (logit lens of "
                                     f"{LOGIT_LENS_K}, patches through add_patch)")
        self.config = GenerationConfig.build(config, max_new_tokens, top_k_probs=top_k_probs,
                                             logit_lens=LOGIT_LENS_K, **generation)
        self.lens = lens
        self._patches: list[Patch] = []
        self.steps: list[Step] = []
        self._gen: Iterator[Step] | None = None
        cross = lens.cross_attention_layers
        traits: dict[str, Any] = {}
        self._image = None
        self._image_kwargs: dict[str, torch.Tensor] = {}
        marker = lens.image_token
        if image is not None or (marker is not None and marker in prompt):
            traits = self._set_image(lens, prompt, image, cross)
            ids = self._prompt_ids
        else:
            ids = lens.to_tokens(prompt)
            self._prompt_ids = ids.cpu()
        super().__init__(prompt=prompt, max_new_tokens=self.config.max_new_tokens,
                         top_k_probs=self.config.top_k_probs,
                         prompt_tokens=[lens.tokenizer.decode([t]) for t in ids[0].tolist()],
                         n_layers=lens.n_layers, n_heads=lens.n_heads,
                         n_kv_heads=lens.n_key_value_heads, hook_choices=list(PATCH_HOOKS),
                         attention_layers=[i for i in range(lens.n_layers) if i not in cross],
                         **traits)

    def _set_image(self, lens: Lens, prompt: str, image: Any, cross: list[int]) -> dict:
        """Check and keep the picture; the traits the captioning view needs."""
        lens.require("images", "GenerationStepper(..., image=)",
                     "image= needs a Llama 3.2 Vision model (cross-attention to images): "
                     "load one, or step through a text prompt without image=")
        marker = lens.image_token
        if image is None:
            raise ImageTokenError(f"the prompt holds {marker} but no image was given: pass "
                                  "image=PIL.Image (or a file path)")
        if prompt.count(marker) != 1:
            raise ImageTokenError(f"the prompt must hold exactly one {marker} (where the "
                                  f"picture goes), e.g. '{marker}' or '{marker}a photo of'")
        self._image = open_image(image, "image")
        ids, kwargs = lens.inputs(prompt, [self._image])
        self._prompt_ids = ids.cpu()
        self._image_kwargs = kwargs
        self._layout: ImageLayout = lens.image_layout(self._image)
        return {"vision": True, "cross_layers": cross, "cross_layer": cross[-1],
                "picture": data_url(self._image), "geometry": overlay_geometry(self._layout)}

    @traitlets.validate("cross_layer")
    def _valid_cross_layer(self, proposal: dict) -> int:
        v = proposal["value"]
        if self.vision and v not in self.cross_layers:
            raise traitlets.TraitError(f"cross_layer {v} is not a cross-attention layer; "
                                       f"cross-attention layers are {self.cross_layers}")
        return v

    @traitlets.validate("cross_head")
    def _valid_cross_head(self, proposal: dict) -> int:
        return self.lens.kv_groups.check_head(proposal["value"])

    @traitlets.validate("cross_kv_group")
    def _valid_cross_kv_group(self, proposal: dict) -> int:
        return self.lens.kv_groups.check_kv_head(proposal["value"])

    # ------------------------------------------------------------------ stepping
    def _generator(self) -> Iterator[Step]:
        if self._gen is None:
            extra: dict[str, Any] = {}
            if self._image is not None:  # keep each step's cross-attention rows
                extra = {"images": [self._image],
                         "cache": [f"blocks.{i}.attn.hook_pattern" for i in self.cross_layers]}
            config = self.config.replace(max_new_tokens=self.max_new_tokens,
                                         top_k_probs=self.top_k_probs)
            self._gen = steps(self.lens, self.prompt, config=config, hooks=list(self._patches),
                              **extra)
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
        return torch.cat([self._prompt_ids, new], dim=1)

    # ------------------------------------------------------------------ patches
    def add_patch(self, layer: int | Patch, hook: str = "hook_resid_post", *,
                  position: int | None = -1, value: str | float | torch.Tensor = "zero",
                  scale: float = 0.0, source_prompt: str | None = None,
                  source_position: int = -1, every_generated: bool = False) -> None:
        """Add a patch and restart from the prompt.

        ``value``: ``"zero"``, ``"scale"`` (multiply by ``scale``), ``"source"`` (the same hook's
        activation on ``source_prompt`` at ``source_position``) or a tensor. Or pass any
        ``lensnb.patch(...)`` as ``layer`` (the same object ``generate`` takes; the other
        arguments are then unused).
        """
        if isinstance(layer, Patch):
            self._add(layer, "function" if callable(layer.value) and not isinstance(
                layer.value, torch.Tensor) else _describe(layer.value))
            return
        name = self.lens.hook_name(hook, layer)  # raises with suggestions
        if isinstance(value, torch.Tensor):
            v: Any = value
            desc = _describe(value)
        elif value == "zero":
            v, desc = 0.0, "zero"
        elif value == "scale":
            factor = float(scale)
            v, desc = (lambda old, f=factor: old * f), f"×{factor:g}"
        elif value == "source":
            if not source_prompt:
                raise InputError("value='source' needs source_prompt")
            n = self.lens.to_tokens(source_prompt).shape[-1]
            check_position(source_position, n, "source_position")
            _, cache = self.lens.run_with_cache(source_prompt, names=[name])
            v = cache[name][0, source_position].clone()
            desc = f"from {source_prompt!r}[{source_position}]"
        else:
            raise InputError(f"value must be 'zero', 'scale', 'source' or a tensor, got "
                             f"{value!r}")
        self._add(patch(layer, hook, position=position, value=v,
                        every_generated=every_generated), desc)

    def _add(self, p: Patch, desc: str) -> None:
        p.resolve(self.lens).check_positions([len(self.prompt_tokens)], self.max_new_tokens)
        where = "every position" if p.every_position else (
            p.position if isinstance(p.position, int) or p.position is None else
            ", ".join(str(i) for i in p.positions()))
        head = (f" head {p.head}" if p.head is not None else
                f" KV group {p.kv_group}" if p.kv_group is not None else "")
        self._patches.append(p)
        self.patches = [*self.patches, {"name": p.name + head, "position": where, "value": desc,
                                        "every_generated": p.every_generated}]
        self.reset()

    def clear_patches(self) -> None:
        """Remove every patch and restart from the prompt."""
        self._patches = []
        self.patches = []
        self.reset()

    # ------------------------------------------------------------------ attention
    def attention(self, layer: int) -> torch.Tensor:
        """``[n_heads, pos]``: where the newest token attends, per head (unpatched model, on
        the current text; self-attention layers)."""
        name = self.lens.hook_name("attn.hook_pattern", layer)  # checks the layer
        if check_layer(layer, self.n_layers) not in self.attention_layers:
            raise UnsupportedFeatureError(
                f"layer {layer} is a cross-attention layer (its keys are image tokens: see "
                f"cross_attention()); self-attention layers are {self.attention_layers}")
        tokens = (self.tokens[:, :-1] if self.steps else self.tokens).to(self.lens.device)
        if self._image is None:
            _, cache = self.lens.run_with_cache(tokens, names=[name])
        else:
            _, cache = self.lens.run_with_cache(tokens, names=[name], progress=False,
                                                **self._image_inputs(tokens.shape[1]))
        return cache[name][0, :, -1].float().cpu()

    def _image_inputs(self, n: int) -> dict[str, torch.Tensor]:
        """The image inputs for ``n`` tokens (prompt + generated): generated tokens see what
        the last prompt token saw, as in generation."""
        out = dict(self._image_kwargs)
        extra = n - self._prompt_ids.shape[1]
        if extra > 0:
            mask = out["attention_mask"]
            out["attention_mask"] = torch.cat([mask, mask[:, -1:].expand(-1, extra)], 1)
            cam = out["cross_attention_mask"]
            out["cross_attention_mask"] = torch.cat([cam, cam[:, -1:].expand(-1, extra, -1, -1)],
                                                    1)
        return out

    # ------------------------------------------------------------------ cross-attention
    def cross_attention(self, step: int = -1, *, layer: int | None = None,
                        mode: str | None = None, head: int | None = None,
                        kv_group: int | None = None) -> torch.Tensor:
        """``[image_tokens]``: where the position that wrote step ``step``'s token looked in
        the picture (cross-attention layer ``layer``; head choice as the traits), with the
        active patches."""
        if self._image is None:
            raise InputError("no image: build the stepper with image=... on a Llama 3.2 "
                             "Vision model")
        if not self.steps:
            raise InputError("no step yet: call step() first")
        check_index(step, len(self.steps), "step", from_end=True,
                    why=f"{len(self.steps)} steps so far")
        layer = self.cross_layer if layer is None else layer
        if layer not in self.cross_layers:
            raise UnsupportedFeatureError(f"layer {layer} is not a cross-attention layer "
                                          f"({self.cross_layers})")
        row = self.steps[step].cache[f"blocks.{layer}.attn.hook_pattern"][0]  # [heads, tokens]
        return head_weights(self.lens, row.float(), self.cross_mode if mode is None else mode,
                            self.cross_head if head is None else head,
                            self.cross_kv_group if kv_group is None else kv_group)

    def cross_grid(self, step: int = -1, **choice: Any) -> tuple[np.ndarray, dict]:
        """``cross_attention`` as a grid over the picture's patches, and where the rest went."""
        return picture_grid(self._layout, self.cross_attention(step, **choice))

    def attention_explorer(self, layers: Any = None) -> Any:
        """An ``AttentionExplorer`` on the current text (prompt + generated tokens)."""
        from .attention import AttentionExplorer

        return AttentionExplorer(self.lens, self.text, layers)

    # ------------------------------------------------------------------ frontend
    def _step_json(self, s: Step) -> tuple[dict, Array, Array | None]:
        out: dict[str, Any] = {"index": s.index, "token": s.text, "id": s.token,
                               "position": int(s.positions[0]), "top_texts": s.top_texts[0]}
        lens = None
        if s.logit_lens is not None:
            lens = Array(s.logit_lens.chosen_probs[0])  # [n_layers]
            ids = s.logit_lens.top_ids[0, :, 0].tolist()
            out["lens_top"] = [self.lens.tokenizer.decode([t]) for t in ids]
        return out, Array(s.top_probs[0]), lens

    @handles(State)
    def _on_state(self, _req: Request | None = None) -> StateReply:
        steps = [self._step_json(s) for s in self.steps]
        return StateReply(steps=[j for j, _, _ in steps], done=self.done,
                          stop_reason=self.stop_reason, top=[t for _, t, _ in steps],
                          lens=[lens for _, _, lens in steps])

    @handles(StepOnce)
    def _on_step(self, _req: StepOnce) -> StepReply:
        s = self.step()
        if s is None:
            return StepReply(step=None, done=True, stop_reason=self.stop_reason)
        j, top, lens = self._step_json(s)
        return StepReply(step=j, done=self.done, stop_reason=self.stop_reason, top=top,
                         lens=lens)

    @handles(Reset)
    def _on_reset(self, _req: Reset) -> StateReply:
        self.reset()
        return self._on_state()

    @handles(AddPatch)
    def _on_add_patch(self, req: AddPatch) -> StateReply:
        self.add_patch(req.layer, req.hook, position=req.position, value=req.value,
                       scale=req.scale, source_prompt=req.source_prompt or None,
                       source_position=req.source_position, every_generated=req.every_generated)
        return self._on_state()

    @handles(ClearPatches)
    def _on_clear_patches(self, _req: ClearPatches) -> StateReply:
        self.clear_patches()
        return self._on_state()

    @handles(Attention)
    def _on_attention(self, req: Attention) -> AttentionReply:
        layer = self.n_layers - 1 if req.layer is None else req.layer
        return AttentionReply(layer=layer, tokens=self.prompt_tokens + self.generated[:-1],
                              patched=bool(self._patches), weights=Array(self.attention(layer)))

    @handles(Explorer)
    def _on_explorer(self, _req: Explorer) -> Done:
        self.explorer = self.attention_explorer()
        return Done()

    @handles(Cross)
    def _on_cross(self, req: Cross) -> CrossReply:
        choice = {k: getattr(req, k) for k in ("layer", "mode", "head", "kv_group")
                  if getattr(req, k) is not None}
        grid, summary = self.cross_grid(req.step, **choice)
        s = self.steps[req.step]
        return grid_reply(grid, summary, CrossReply, step=s.index, token=s.text)

    def export_requests(self) -> list[dict]:
        """The state and, once there are steps, what the view draws first: the newest
        token's attention (last self-attention layer) and each step's picture overlay."""
        reqs: list[Request] = [State()]
        if self.steps and self.attention_layers:
            reqs.append(Attention(layer=self.attention_layers[-1]))
        if self._image is not None:
            reqs += [Cross(step=i, layer=self.cross_layer, mode=self.cross_mode,
                           head=self.cross_head, kv_group=self.cross_kv_group)
                     for i in range(len(self.steps))]
        return [r.wire() for r in reqs]

    # ------------------------------------------------------------------ static figure
    def figure(self, *, style: str | None = None, max_pictures: int = 6) -> go.Figure:
        """Logit-lens heatmap (layer × step) beside the latest step's top-k bar chart; with a
        picture, a second row shows where the model looked while writing each of the last
        ``max_pictures`` tokens (``cross_layer``, the current head choice)."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        from ..export.style import SEQUENTIAL, apply_style

        shown = self.steps[-max_pictures:] if self._image is not None else []
        # with pictures: the logit lens, a gap column (its colour bar), the top-k chart
        cols = max(4, len(shown)) if shown else 2
        span = cols - 2 if shown else 1
        titles = ["logit lens: P(chosen token) per layer", "top next tokens (last step)"]
        specs: list[list[dict | None]] = [[{"colspan": span}] + [None] * (cols - 2) + [{}]]
        if shown:
            titles += [f"{s.index}: {html.escape(_show(s.text)[:10])}" for s in shown]
            specs.append([{} for _ in shown] + [None] * (cols - len(shown)))
        fig = make_subplots(rows=len(specs), cols=cols, specs=specs, subplot_titles=titles,
                            horizontal_spacing=0.06 if shown else 0.12,
                            vertical_spacing=0.4, row_heights=[0.6, 0.4] if shown else None)
        bar_x = fig.layout.xaxis.domain[1] + 0.01 if shown else 0.58
        if self.steps:
            z = torch.stack([s.logit_lens.chosen_probs[0] for s in self.steps], 1)  # [L, steps]
            top1 = [[html.escape(self.lens.tokenizer.decode([int(s.logit_lens.top_ids[0, l, 0])]))
                     for s in self.steps] for l in range(self.n_layers)]
            labels = [f"{s.index}:{html.escape(_show(s.text))}" for s in self.steps]
            fig.add_trace(go.Heatmap(z=z.numpy(), x=labels, y=list(range(self.n_layers)),
                                     customdata=top1, colorscale=SEQUENTIAL, zmin=0, zmax=1,
                                     colorbar=dict(title="P", x=bar_x, len=0.45 if shown else 1,
                                                   y=0.8 if shown else 0.5),
                                     hovertemplate="layer %{y}, step %{x}<br>P(chosen) %{z:.3f}"
                                     "<br>layer's top token %{customdata}<extra></extra>"),
                          row=1, col=1)
            last = self.steps[-1]
            fig.add_trace(go.Bar(x=last.top_probs[0].tolist()[::-1],
                                 y=[html.escape(_show(t)) for t in last.top_texts[0]][::-1],
                                 orientation="h", marker_color=theme.ROLES["probability"],
                                 showlegend=False),
                          row=1, col=cols)
        fig.update_xaxes(title_text="step: token", row=1, col=1)
        fig.update_yaxes(title_text="layer", row=1, col=1)
        fig.update_xaxes(title_text="probability", range=[0, 1], row=1, col=cols)
        for j, s in enumerate(shown, start=1):
            self._add_picture(fig, s.index, row=2, col=j)
        fig.update_layout(title=html.escape(_show(self.text[-120:])),
                          meta={"cross_layer": self.cross_layer, "cross_mode": self.cross_mode}
                          if shown else None)
        fig = apply_style(fig, style)
        if shown and fig.layout.height:  # room for the row of pictures
            fig.update_layout(height=fig.layout.height * 1.6)
        return fig

    def _add_picture(self, fig: go.Figure, step: int, *, row: int, col: int) -> None:
        """The picture with step ``step``'s cross-attention over it (one subplot)."""
        import plotly.graph_objects as go

        from ..export.style import SEQUENTIAL

        geo = self.geometry
        grid, _ = self.cross_grid(step)
        xs = (np.arange(geo["cols"]) + 0.5) * geo["patch_w"]
        ys = (np.arange(geo["rows"]) + 0.5) * geo["patch_h"]
        fig.add_trace(go.Image(source=self.picture, dx=1, dy=1, hoverinfo="skip"), row=row,
                      col=col)
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=grid, colorscale=SEQUENTIAL,
                                 opacity=theme.OVERLAY_OPACITY, zmin=0,
                                 showscale=False, name=f"step {step}",
                                 hovertemplate="x %{x:.0f}px, y %{y:.0f}px: %{z:.3f}"
                                 "<extra></extra>"), row=row, col=col)
        fig.update_xaxes(range=[0, geo["width"]], showgrid=False, showticklabels=False, row=row,
                         col=col)
        x_axis = fig.get_subplot(row, col).xaxis.plotly_name.replace("axis", "")  # "x3"
        fig.update_yaxes(range=[geo["height"], 0], showgrid=False, showticklabels=False,
                         scaleanchor=x_axis, row=row, col=col)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)}"
    return "zero" if value == 0 else f"{value:g}"


def _show(text: str) -> str:
    return text.replace("\n", "\\n")
