"""The API reference: one page per group of ``lensnb.__all__``, written before Sphinx reads.

Every public name is documented from its docstring (autodoc), on the page of the group its
defining module belongs to (``GROUPS``, by module prefix; a name no prefix claims lands in
"Other names", so a new public name is never left out). ``api/index`` lists them all with their
first docstring line. The pages are generated (``docs/api/`` is not committed): what is in
``lensnb.__all__`` when the site is built is what the reference covers.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# (slug, title, what the page holds, module prefixes), in reading order
GROUPS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("loading", "Loading and the Lens",
     "Load a model and hold it: ``lensnb.load``, the ``Lens`` facade, what a backend can do, "
     "the self-check.",
     ("lensnb.loading", "lensnb.lens", "lensnb.backends", "lensnb.core.sources",
      "lensnb.selfcheck")),
    ("facts", "Model facts and KV groups",
     "The shape of a model from its config alone, and how query heads share key/value heads.",
     ("lensnb.core.facts", "lensnb.core.kv_groups")),
    ("interventions", "Hooks, patches and generation",
     "One intervention vocabulary for forward passes and generation: ``patch``, the hook "
     "context, generation settings and results, patchscopes.",
     ("lensnb.interventions",)),
    ("patching", "Activation patching",
     "Causal experiments over a ``Lens``.", ("lensnb.patching",)),
    ("analysis", "Analysis",
     "What lensnb computes from activations: patterns at any length, KV-group views, logit "
     "attribution, long-context profiles, RoPE.",
     ("lensnb.analysis", "lensnb.rope")),
    ("widgets", "Widgets",
     "The notebook views. Each also exports (``save``, ``figure``) and carries a static copy "
     "in its output.", ("lensnb.widgets",)),
    ("export", "Export and settings",
     "Paper-ready figures, standalone HTML, and ``lensnb.options``.",
     ("lensnb.export", "lensnb.core.settings")),
    ("errors", "Errors and warnings",
     "Every error lensnb raises on purpose is a ``LensnbError`` that keeps its builtin type.",
     ("lensnb.core.errors",)),
]
OTHER = ("other", "Other names", "Public names not in the groups above.", ("",))


@dataclass
class Group:
    slug: str
    title: str
    intro: str
    names: list[str] = field(default_factory=list)


def defining_module(name: str, obj: Any) -> str:
    """The module a public object comes from: its ``__module__`` for classes and functions,
    itself for modules, else the lensnb module that binds ``name`` to this very object
    (constants such as ``IDENTITY_PROMPT``, instances such as ``options``)."""
    if isinstance(obj, ModuleType):
        return obj.__name__
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return obj.__module__
    homes = [m for m, mod in list(sys.modules.items()) if m.startswith("lensnb.") and mod
             and getattr(mod, name, None) is obj]
    return max(homes, key=lambda m: m.count("."), default="lensnb")


def group_names(public: list[str]) -> list[Group]:
    lensnb = importlib.import_module("lensnb")
    groups = [Group(slug, title, intro) for slug, title, intro, _ in [*GROUPS, OTHER]]
    prefixes = [p for *_, p in [*GROUPS, OTHER]]
    for name in public:
        module = defining_module(name, getattr(lensnb, name))
        index = next(i for i, ps in enumerate(prefixes)
                     if any(module == p or module.startswith(p + ".") or not p for p in ps))
        groups[index].names.append(name)
    return [g for g in groups if g.names]


def _directive(name: str, obj: Any) -> str:
    if inspect.isclass(obj):
        kind = "autoexception" if issubclass(obj, BaseException) else "autoclass"
        return f".. {kind}:: {name}\n"
    if inspect.isroutine(obj):
        return f".. autofunction:: {name}\n"
    if isinstance(obj, str | int | float):
        return _constant(name, obj)
    return f".. autodata:: {name}\n   :no-value:\n"  # an instance: its class's docstring


def _constant(name: str, value: str | int | float) -> str:
    """A constant with its value and the ``#:`` comment above its definition (autodata would
    show the docstring of ``str``)."""
    from sphinx.errors import PycodeError
    from sphinx.pycode import ModuleAnalyzer

    module = defining_module(name, value)
    try:
        doc = ModuleAnalyzer.for_module(module).find_attr_docs().get(("", name))
    except PycodeError:
        doc = None
    body = [f"   {line}" for line in doc] if doc else [f"   A constant of ``{module}``."]
    return "\n".join([f".. py:data:: {name}", f"   :value: {value!r}", "", *body, ""])


def _module_section(name: str) -> str:
    """A public module's page section: its members, less those that are public names of
    ``lensnb`` too (documented there once; two descriptions of one object clash)."""
    lensnb = importlib.import_module("lensnb")
    module = getattr(lensnb, name)
    top = {id(getattr(lensnb, n)) for n in lensnb.__all__}
    shared = [m for m in getattr(module, "__all__", []) if id(getattr(module, m, None)) in top]
    title = f"``lensnb.{name}``"
    exclude = f"   :exclude-members: {', '.join(shared)}\n" if shared else ""
    also = (f"Also here, documented under ``lensnb``: "
            f"{', '.join(f':py:obj:`~lensnb.{m}`' for m in shared)}.\n\n" if shared else "")
    return (f".. _api-{name}:\n\n{title}\n{'-' * len(title)}\n\n"
            f".. automodule:: lensnb.{name}\n   :members:\n{exclude}\n{also}")


def group_page(group: Group) -> str:
    lensnb = importlib.import_module("lensnb")
    objects = {n: getattr(lensnb, n) for n in group.names}
    plain = [n for n, o in objects.items() if not isinstance(o, ModuleType)]
    lines = [group.title, "=" * len(group.title), "", group.intro, "",
             ".. currentmodule:: lensnb", ""]
    if plain:
        lines += [".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   {n}" for n in plain] + [""]
    for name in plain:
        lines += [_directive(name, objects[name]), ""]
    for name, obj in objects.items():
        if isinstance(obj, ModuleType):
            lines += [_module_section(name)]
    return "\n".join(lines)


def index_page(groups: list[Group]) -> str:
    lines = ["API reference", "=============", "",
             "Every name in ``lensnb.__all__``, documented from its docstring and grouped by "
             "what it is for. ``import lensnb`` is cheap: each name loads its module (and torch) "
             "on first use.", "",
             ".. toctree::", "   :hidden:", ""]
    lines += [f"   {g.slug}" for g in groups] + [""]
    for g in groups:
        lines += [f":doc:`{g.title} <{g.slug}>`", "-" * (len(g.title) + len(g.slug) + 10), "",
                  g.intro, "", ".. currentmodule:: lensnb", ""]
        plain = [n for n in g.names if not isinstance(getattr(sys.modules["lensnb"], n),
                                                      ModuleType)]
        if plain:
            lines += [".. autosummary::", "   :nosignatures:", ""]
            lines += [f"   {n}" for n in plain] + [""]
        modules = [n for n in g.names if n not in plain]
        lines += [f"- :ref:`lensnb.{n} <api-{n}>` (module)" for n in modules]
        lines += [""]
    return "\n".join(lines)


def write_if_changed(path: Path, text: str) -> None:
    """Sphinx re-reads a source whose mtime moved: leave unchanged pages alone."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def write_api_pages(out: Path) -> list[Group]:
    """Write ``out/index.rst`` and one page per group; remove pages of groups now empty."""
    lensnb = importlib.import_module("lensnb")
    groups = group_names(list(lensnb.__all__))
    pages = {"index.rst": index_page(groups)}
    pages.update({f"{g.slug}.rst": group_page(g) for g in groups})
    for stale in set(p.name for p in out.glob("*.rst")) - set(pages):
        (out / stale).unlink()
    for name, text in pages.items():
        write_if_changed(out / name, text)
    return groups
