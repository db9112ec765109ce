"""The fast generation path: a plain Hugging Face module tree sharing the bridge's weight tensors
(no copy), with TransformerLens hook names mapped onto torch forward hooks of its modules.

Hooks whose TransformerLens name is a Hugging Face module's input or output (residual stream,
attention/MLP outputs, q/k/v/z, norms, embed, unembed; ``fast_sites``, derived from the
TransformerLens adapter's ``component_mapping``, so every bridged architecture has one) become
plain torch forward hooks, registered only where a hook was asked for. Anything else
(``hook_pattern``, ``hook_rot_q``) exists only in the bridge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..contract import input_device

_SIDES = {"hook_in": "in", "hook_out": "out"}
_PROJECTIONS = ("q", "k", "v", "o")  # TransformerLens's names of the attention projections


@dataclass(frozen=True)
class Site:
    """Where a TransformerLens hook sits in the plain Hugging Face model.

    Attributes:
        module: the Hugging Face module path (``model.layers.3.self_attn.q_proj``).
        side: ``"in"`` (the module's first input) or ``"out"`` (its output, the first element
            of a tuple output).
        conversion: the bridge hook's own tensor conversion (``hook_conversion``, e.g. the
            per-head view ``[batch, pos, d_model] -> [batch, pos, n_heads, d_head]``), applied
            before the hook function and reverted on what it returns; ``None`` for none.
    """

    module: str
    side: str
    conversion: Any = None

    @property
    def heads(self) -> bool:
        """Whether the hook sees the tensor per head (``[batch, pos, n_heads, d_head]``)."""
        return bool(getattr(self.conversion, "splits_attention_heads", False))


def _hf_paths(components: dict[str, Any], n_layers: int, tl: str = "",
              hf: str = "") -> dict[str, str]:
    """TransformerLens component path -> Hugging Face module path, read off an adapter's
    ``component_mapping`` (each bridge component names its HF module, relative to its parent;
    list components such as ``blocks`` repeat per layer)."""
    out: dict[str, str] = {}
    for key, comp in components.items():
        name = getattr(comp, "name", None)
        if not name:  # no module of its own in the HF model (a computed or joint part)
            continue
        tl_path = f"{tl}.{key}" if tl else key
        hf_path = f"{hf}.{name}" if hf else name
        items = ([(f"{tl_path}.{i}", f"{hf_path}.{i}") for i in range(n_layers)]
                 if getattr(comp, "is_list_item", False) else [(tl_path, hf_path)])
        subs = getattr(comp, "submodules", None) or {}
        if "Attention" in type(comp).__name__:
            # inside attention only the q/k/v/o projections: q/k norms get [batch, n_heads,
            # pos, d_head] (position on axis 2, which hooks do not expect), and a fused qkv
            # projection's hooks never fire in the bridge (it splits q/k/v itself)
            subs = {k: c for k, c in subs.items()
                    if k in _PROJECTIONS and type(c).__name__ == "LinearBridge"}
        for t, h in items:
            out[t] = h
            out.update(_hf_paths(subs, n_layers, t, h))
    return out


def mapped_sites(model: Any) -> dict[str, Site]:
    """Every hook name of the bridge ``model`` that is a module input or output in the
    adapter's mapping, with its ``Site``. Derived, not typed: a hook name resolves (aliases
    included) to its bridge HookPoint ``{component}.hook_in`` / ``.hook_out``, and the adapter's
    ``component_mapping`` says which HF module the component wraps. Rotary embeddings (a tuple
    of cos/sin) and hooks inside a computation (``hook_pattern``, ``hook_rot_q``,
    ``ln1.hook_scale``, ...) exist only in the bridge."""
    bridge = model
    mapping = getattr(getattr(bridge, "adapter", None), "component_mapping", None) or {}
    paths = _hf_paths(mapping, bridge.cfg.n_layers)
    rotary = {k for k, c in mapping.items() if type(c).__name__ == "RotaryEmbeddingBridge"}
    sites: dict[str, Site] = {}
    for name, point in bridge.hook_dict.items():
        component, _, hook = (getattr(point, "name", None) or name).rpartition(".")
        if hook in _SIDES and component in paths and component.split(".")[0] not in rotary:
            sites[name] = Site(paths[component], _SIDES[hook],
                               getattr(point, "hook_conversion", None))
    return sites


def fast_sites(model: Any) -> dict[str, Site]:
    """The hooks the fast path serves: ``mapped_sites`` whose module the plain Hugging Face
    model has (an adapter may split a fused module into parts that exist only under the bridge,
    e.g. GPT-2's ``c_attn`` into ``q``/``k``/``v``: those hooks stay in the bridge). Empty where
    there is no plain model (``plain_model`` says why)."""
    return fast_path(model).sites


def fast_site(model: Any, name: str) -> Site | None:
    """The ``Site`` of TransformerLens hook ``name`` in the plain HF model, or ``None`` when
    only the bridge has it."""
    return fast_sites(model).get(name)


# ---------------------------------------------------------------------------- the plain HF model
@dataclass(frozen=True)
class PlainModel:
    """The bridge backend's fast path (``contract.FastPath``): a plain Hugging Face module tree
    sharing the bridge's weights, and where each TransformerLens hook sits in it.

    Attributes:
        model: the plain model, or ``None`` where there is none (``why`` says why).
        why: why there is no plain model (``""`` where there is one).
        sites: hook name -> its ``Site`` in ``model``.
    """

    model: torch.nn.Module | None
    why: str = ""
    sites: dict[str, Site] = field(default_factory=dict)

    def serves(self, name: str) -> bool:
        """Whether hook ``name`` can run on the plain model."""
        return self.model is not None and name in self.sites

    def hook(self, name: str, run: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
        """Install ``run`` at hook ``name`` of the plain model (``torch_hook``); the handle's
        ``remove()`` takes it off."""
        site = self.sites[name]
        return torch_hook(self.model.get_submodule(site.module), site, run)  # type: ignore[union-attr]


def fast_path(model: Any) -> PlainModel:
    """The fast path of the bridge ``model`` (built once, cached on the bridge): the bridge
    backend's ``Backend.fast_path``."""
    cached = model.__dict__.get("_lensnb_fast_path")
    if cached is None:
        cached = model.__dict__["_lensnb_fast_path"] = _build_plain_model(model)
    return cached


def plain_model(model: Any) -> tuple[torch.nn.Module | None, str]:
    """A plain Hugging Face module tree sharing the bridge ``model``'s weights, or
    ``(None, why not)``."""
    path = fast_path(model)
    return path.model, path.why


def _build_plain_model(bridge: Any) -> PlainModel:
    import accelerate
    from transformers import AutoModelForCausalLM

    hf_model = bridge.original_model
    config = hf_model.config
    if getattr(bridge, "compatibility_mode", False):
        return PlainModel(None, "compatibility mode changes the weights")
    mapped = mapped_sites(bridge)
    if not mapped:
        return PlainModel(None, "the TransformerLens adapter maps no Hugging Face module")
    if len(set((getattr(hf_model, "hf_device_map", None) or {0: 0}).values())) > 1:
        return PlainModel(None, "the model is split over several devices")
    shared: dict[str, torch.Tensor] = {}
    for n, p in hf_model.named_parameters(remove_duplicate=False):
        shared.setdefault(n.replace("._original_component", ""), p)
    dtype = next(hf_model.parameters()).dtype
    try:
        with accelerate.init_empty_weights():
            plain = AutoModelForCausalLM.from_config(
                config, attn_implementation=config._attn_implementation, dtype=dtype)
    except Exception as err:  # an architecture AutoModel cannot build: use the bridge
        return PlainModel(None, f"cannot rebuild the Hugging Face model ({err})")
    own = dict(plain.named_parameters())
    missing = [k for k in own if k not in shared or shared[k].shape != own[k].shape]
    if missing:
        return PlainModel(None, f"weights not found in the bridge: {missing[:3]}")
    modules = dict(plain.named_modules())
    plain.load_state_dict({k: shared[k] for k in own}, assign=True, strict=False)
    plain.to(input_device(bridge)).eval()
    plain.generation_config = hf_model.generation_config
    return PlainModel(plain, "", {n: s for n, s in mapped.items() if s.module in modules})


def torch_hook(module: torch.nn.Module, site: Site,
               run: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
    """A torch forward (pre-)hook on ``module`` that shows ``run`` the tensor at ``site`` as the
    bridge's hook sees it (its conversion applied) and writes back what ``run`` returns."""
    conv = site.conversion

    def call(t: torch.Tensor) -> torch.Tensor | None:
        new = run(conv.convert(t) if conv is not None else t)
        if new is None:
            return None
        return conv.revert(new) if conv is not None else new

    if site.side == "out":
        def out_hook(_m: Any, _args: Any, output: Any) -> Any:
            t = output[0] if isinstance(output, tuple) else output
            new = call(t)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new

        return module.register_forward_hook(out_hook)

    def in_hook(_m: Any, args: tuple, kwargs: dict) -> Any:
        if args:
            new = call(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)
        new = call(kwargs["hidden_states"])
        return None if new is None else (args, {**kwargs, "hidden_states": new})

    return module.register_forward_pre_hook(in_hook, with_kwargs=True)
