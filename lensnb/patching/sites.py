"""The site vocabulary of patching: which hooks a site patches, what a cell is, the scores' shape.

One table (``SITES``) serves ``activation_patching``, its ``PatchingResult`` and the
``PatchingWorkbench``. A *cell* is what one patched copy changes: a layer and a position
(residual stream, attention or MLP output), a layer and a query head (``attn.hook_z`` at every
position), a layer, a position and a head, or a layer and a KV group (``attn.hook_k`` and
``attn.hook_v`` of that key/value head at every position). Cells are named by the model's own
numbers (layer 12, position 9, head 4), which are also the indices of ``scores`` when
``layers``/``positions`` are not narrowed.

A site the model cannot take refuses here, before any forward pass, with
``UnsupportedFeatureError`` naming the sites it does take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.errors import InputError, InputTypeError, UnknownHookError, UnsupportedFeatureError
from ..core.indices import check_layer, check_position

if TYPE_CHECKING:
    from ..lens import Lens


@dataclass(frozen=True)
class Site:
    """One kind of cell.

    Attributes:
        name: the site's name (``"resid_pre"``, ``"head"``, ...).
        hooks: the hook names it patches, relative to ``blocks.{layer}.``.
        dims: the axes of its ``scores`` (``("layer", "position")``, ...).
        heads: ``None``, ``"head"`` (a query-head axis) or ``"kv_group"`` (a key/value-head
            axis) on the hooked activation ``[batch, pos, heads, d_head]``.
        what: a short description (for messages and figure titles).
        carry: the hook of the residual stream that continues past ``hooks[0]`` when that hook
            is only the next norm's input (see ``Sweep.carry``).
    """

    name: str
    hooks: tuple[str, ...]
    dims: tuple[str, ...]
    heads: str | None
    what: str
    carry: str | None = None

    @property
    def by_position(self) -> bool:
        """Whether a cell is one position (else every position at once)."""
        return "position" in self.dims


SITES: dict[str, Site] = {s.name: s for s in (
    Site("resid_pre", ("hook_resid_pre",), ("layer", "position"), None,
         "residual stream entering the block"),
    Site("resid_mid", ("hook_resid_mid",), ("layer", "position"), None,
         "residual stream between attention and MLP", carry="hook_resid_post"),
    Site("resid_post", ("hook_resid_post",), ("layer", "position"), None,
         "residual stream leaving the block"),
    Site("attn_out", ("hook_attn_out",), ("layer", "position"), None, "attention output"),
    Site("mlp_out", ("hook_mlp_out",), ("layer", "position"), None, "MLP output"),
    Site("head", ("attn.hook_z",), ("layer", "head"), "head",
         "one head's output (hook_z), every position"),
    Site("head_by_pos", ("attn.hook_z",), ("layer", "position", "head"), "head",
         "one head's output (hook_z) at one position"),
    Site("kv_group", ("attn.hook_k", "attn.hook_v"), ("layer", "kv_group"), "kv_group",
         "one KV group's keys and values (hook_k, hook_v), every position"),
)}

# what to say when a site's hooks are missing: why, and what to sweep instead
_MISSING = {
    "resid_mid": "it has no residual stream between attention and MLP (attention and MLP read "
                 "the same residual stream in parallel, as in GPT-NeoX/Pythia)",
    "kv_group": "its keys and values are not hooked per key/value head",
    "head": "its attention output is not hooked per head (attn.hook_z)",
    "head_by_pos": "its attention output is not hooked per head (attn.hook_z)",
}


def _has(lens: Lens, site: Site, layer: int) -> bool:
    try:
        for hook in site.hooks:
            lens.hook_name(hook, layer)
    except UnknownHookError:
        return False
    return True


def patching_sites(lens: Lens) -> list[str]:
    """The sites ``lensnb.activation_patching`` takes on ``lens`` (every layer has their
    hooks): all of ``SITES`` but, e.g., ``"resid_mid"`` on a parallel-attention model."""
    return [s for s, site in SITES.items()
            if all(_has(lens, site, layer) for layer in range(lens.n_layers))]


def require_text_model(lens: Lens, feature: str) -> None:
    """``UnsupportedFeatureError`` up front on a lens whose layers cross-attend to images
    (Llama 3.2 Vision): its cross-attention layers are skipped without an image, so their
    cells would read nothing; ``lens.text_only()`` is the same language model on text."""
    if lens.capabilities.cross_attention:
        raise UnsupportedFeatureError(
            f"{feature} is not supported on {lens.backend.kind} ({lens.name!r}): its "
            f"cross-attention layers {list(lens.facts.cross_attention_layers)} only run with an "
            "image; use lens.text_only() (the language model alone on text: the same numbers "
            "as this lens without an image) and run it there")


def get_site(name: str) -> Site:
    """The ``Site`` called ``name``; ``InputError`` listing the sites otherwise."""
    if not isinstance(name, str):
        raise InputTypeError(f"site is a string, one of {', '.join(SITES)}; got "
                             f"{type(name).__name__}")
    if name not in SITES:
        raise InputError(f"unknown site {name!r}: the sites are {', '.join(SITES)}")
    return SITES[name]


@dataclass
class Sweep:
    """The cells of one sweep over one lens.

    Attributes:
        site: the ``Site``.
        layers: the swept layers (rows of ``scores``).
        positions: the swept positions (position sites), else ``None``.
        n_heads: the size of the head axis (query heads or KV groups), else 0.
        cells: every cell as the model's numbers, in ``scores`` order (row-major).
        carry: whether a patch of ``site.hooks[0]`` must also move ``site.carry``. The
            TransformerBridge's ``hook_resid_mid`` is the MLP norm's input (``ln2.hook_in``),
            not the residual stream the block adds the MLP output to: writing it alone would
            patch the MLP's input only. So the difference written there is also added to
            ``hook_resid_post`` (and attribution adds that hook's gradient), which patches the
            residual stream itself.
    """

    site: Site
    layers: list[int]
    positions: list[int] | None
    n_heads: int
    cells: list[tuple[int, ...]] = field(default_factory=list)
    carry: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        out = [len(self.layers)]
        if self.positions is not None:
            out.append(len(self.positions))
        if self.site.heads:
            out.append(self.n_heads)
        return tuple(out)

    def parts(self, cell: tuple[int, ...]) -> tuple[int, int | None, int | None]:
        """``(layer, position or None, head or KV group or None)`` of a cell."""
        layer, rest = cell[0], list(cell[1:])
        pos = rest.pop(0) if self.positions is not None else None
        head = rest.pop(0) if self.site.heads else None
        return layer, pos, head

    def hook_names(self, lens: Lens, layer: int) -> list[str]:
        return [lens.hook_name(h, layer) for h in self.site.hooks]

    def carry_name(self, lens: Lens, layer: int) -> str | None:
        """The hook that carries a patch on past the site's hook (``carry``), else ``None``."""
        return lens.hook_name(self.site.carry, layer) if self.carry and self.site.carry else None


def _is_norm_input(lens: Lens, site: Site) -> bool:
    """Whether ``site``'s hook is the same hook point as the MLP norm's input (``ln2.hook_in``):
    a read-only view of the residual stream, which continues past it unchanged."""
    if site.carry is None:
        return False
    points = lens.bridge.hook_dict
    here, norm = (points.get(f"blocks.0.{n}") for n in (site.hooks[0], "ln2.hook_in"))
    return here is not None and here is norm


def _unique(values: Sequence[int]) -> list[int]:
    seen: list[int] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def resolve_sweep(lens: Lens, site: str, n_pos: int, *, layers: Sequence[int] | None = None,
                  positions: Sequence[int] | None = None, feature: str = "activation "
                  "patching") -> Sweep:
    """Check ``site``, ``layers`` and ``positions`` against ``lens`` and a prompt of ``n_pos``
    tokens, before any forward pass, and list the cells."""
    require_text_model(lens, feature)
    spec = get_site(site)
    if layers is None:
        rows = list(range(lens.n_layers))
    else:
        if isinstance(layers, int):
            layers = [layers]
        rows = _unique([check_layer(la, lens.n_layers) for la in layers])
        if not rows:
            raise InputError("layers is empty: pass None (every layer) or some layers")
    missing = [la for la in rows if not _has(lens, spec, la)]
    if missing:
        names = ", ".join(f"blocks.{{layer}}.{h}" for h in spec.hooks)
        why = _MISSING.get(spec.name, f"it has no {names}")
        others = [s for s in patching_sites(lens) if s != spec.name]
        raise UnsupportedFeatureError(
            f"site {spec.name!r} ({spec.what}) is not supported on {lens.name!r}: {why}. "
            f"Sweep one of {', '.join(repr(s) for s in others)} instead")
    if spec.by_position:
        if positions is None:
            cols: list[int] | None = list(range(n_pos))
        else:
            if isinstance(positions, int):
                positions = [positions]
            cols = _unique([check_position(p, n_pos) % n_pos for p in positions])
            if not cols:
                raise InputError("positions is empty: pass None (every position) or some "
                                 "positions")
    elif positions is not None:
        raise InputError(f"positions= narrows position sites only; site {spec.name!r} patches "
                         f"every position at once ({spec.what})")
    else:
        cols = None
    n_heads = {None: 0, "head": lens.n_heads, "kv_group": lens.n_key_value_heads}[spec.heads]
    sweep = Sweep(spec, rows, cols, n_heads, carry=_is_norm_input(lens, spec))
    heads = range(n_heads) if spec.heads else [None]
    for la in rows:
        for p in (cols if cols is not None else [None]):
            for h in heads:
                sweep.cells.append(tuple(x for x in (la, p, h) if x is not None))
    return sweep
