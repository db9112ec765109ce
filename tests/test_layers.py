"""The layers of docs/architecture.md hold in the code: every import inside ``lensnb/`` (imports
inside functions too; ``if TYPE_CHECKING:`` blocks excepted) points to the importer's own layer
or a lower one, ``analysis`` and ``interventions`` do not import each other, there is no import
cycle between modules, and no ``.py``/``.js`` file is over 600 lines.

Two contract rules on top: no module outside ``lensnb/backends/`` imports a concrete backend
(``lensnb.backends.bridge``, ``lensnb.backends.mllama``; at run time, in functions or for type
checkers), and no module but ``lens.py`` touches a private ``Lens`` attribute."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from layouts import REPO

PACKAGE = REPO / "lensnb"
MAX_LINES = 600


def documented_layers() -> list[tuple[str, list[str]]]:
    """``[(layer, [module prefixes])]`` lowest first, from the table in docs/architecture.md."""
    text = (REPO / "docs" / "architecture.md").read_text()
    table = text.split("<!-- layers:", 1)[1].split("\n\n", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and not r.startswith("| layer")]
    return [(cells[0], re.findall(r"`([\w.]+)`", cells[1]))
            for cells in ([c.strip() for c in r.strip("|").split("|")] for r in rows)]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)  # __init__.pyi: the package
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, type_checking: bool = False) -> set[str]:
    """Absolute names of the lensnb modules (or names in them) that ``path`` imports at run
    time (``TYPE_CHECKING`` blocks left out unless ``type_checking``), ``importlib``'s
    ``import_module("lensnb...")`` with a literal name included."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if (not type_checking and isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test)):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    mod = module_name(path)
    pkg = mod if path.stem == "__init__" else mod.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
                ("import_module", "__import__")) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            name = node.args[0].value
            if name.startswith("."):  # import_module(".x", "lensnb.y") style: relative to pkg
                level = len(name) - len(name.lstrip("."))
                base = pkg.split(".")[: len(pkg.split(".")) - level + 1]
                name = ".".join(base + [name.lstrip(".")])
            out.add(name)
    return {n for n in out if n == "lensnb" or n.startswith("lensnb.")}


def layer_of(name: str, layers: list[tuple[str, list[str]]]) -> int:
    best = max(((len(p), i) for i, (_, prefixes) in enumerate(layers) for p in prefixes
                if name == p or name.startswith(p + ".")), default=None)
    assert best is not None, f"{name} is in no layer of docs/architecture.md"
    return best[1]


def test_the_documented_layers_cover_the_package():
    layers = documented_layers()
    assert [name for name, _ in layers][:3] == ["core", "backends", "export"]
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path), layers)


def test_imports_point_downwards_only():
    layers = documented_layers()
    names = [name for name, _ in layers]
    upward, sideways = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = module_name(path)
        here = layer_of(mod, layers)
        for target in imports(path):
            if target == "lensnb":
                continue
            there = layer_of(target, layers)
            if there > here:
                upward.append(f"{mod} ({names[here]}) imports {target} ({names[there]})")
            elif {names[here], names[there]} == {"analysis", "interventions"}:
                sideways.append(f"{mod} imports {target}")
    assert not upward, "imports pointing up a layer:\n" + "\n".join(upward)
    assert not sideways, "analysis and interventions import each other:\n" + "\n".join(sideways)


def test_no_import_cycle_between_modules():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for mod, path in modules.items():
        graph[mod] = set()
        for target in imports(path):  # "lensnb.core.facts.facts" -> the module lensnb.core.facts
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != mod:
                graph[mod].add(target)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt == "lensnb" or (state.get(nxt) == 1 and nxt in _parents(node)):
                continue  # a package's own __init__ (imported by every submodule's import)
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])


def _parents(mod: str) -> set[str]:
    parts = mod.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_file_over_600_lines():
    long = [f"{p.relative_to(REPO)}: {n} lines" for p in sorted(PACKAGE.rglob("*"))
            if p.suffix in (".py", ".js") and (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, "files over 600 lines:\n" + "\n".join(long)


def test_readme_layout_names_every_top_level_part():
    text = (REPO / "README.md").read_text()
    layout = text.split("## Layout", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^lensnb/([\w.]+)", layout, flags=re.M))
    actual = {p.name for p in PACKAGE.iterdir()
              if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}
    actual.add("assets")
    missing = actual - listed - {"rope.py"}  # lensnb.rope: the public alias of analysis/rope.py
    assert not missing, f"README's Layout leaves out lensnb/{sorted(missing)}"
    stale = listed - actual
    assert not stale, f"README's Layout names what is not in lensnb/: {sorted(stale)}"


# ---------------------------------------------------------------------------- the contract rules
CONCRETE_BACKENDS = ("lensnb.backends.bridge", "lensnb.backends.mllama")


def concrete_backend_imports(root: Path = PACKAGE) -> list[str]:
    """``module imports target`` for every import of a concrete backend package by a module
    outside ``lensnb/backends/`` (run time, inside functions and ``TYPE_CHECKING`` blocks alike;
    the ``__init__.pyi`` stub too)."""
    found = []
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.pyi")]):
        mod = module_name(path)
        if mod.startswith("lensnb.backends"):
            continue
        for target in sorted(imports(path, type_checking=True)):
            if any(target == c or target.startswith(c + ".") for c in CONCRETE_BACKENDS):
                found.append(f"{mod} imports {target}")
    return found


def test_no_module_above_the_backends_imports_a_concrete_backend():
    found = concrete_backend_imports()
    assert not found, ("import the contract (lens.capabilities, lens.backend, public Lens "
                       "methods), not a backend package:\n" + "\n".join(found))


def lens_private_names() -> set[str]:
    """The private names of ``Lens``, read off lens.py: its ``_methods`` and ``_properties``,
    the ``self._x`` it assigns, and the ``self.__dict__["_x"]`` keys it stores."""
    tree = ast.parse((PACKAGE / "lens.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Lens"]
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif (isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("__dict__")
              and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            names.add(node.slice.value)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_lens_uses(root: Path = PACKAGE, private: set[str] | None = None) -> list[str]:
    """``file:line: expr`` wherever a module other than lens.py reads or writes one of
    ``Lens``'s private names on anything (``x._name``, ``getattr(x, "_name")``)."""
    private = lens_private_names() if private is None else private
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == PACKAGE / "lens.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            name = None
            if isinstance(node, ast.Attribute) and node.attr in private:
                name = node.attr
            elif (isinstance(node, ast.Call) and ast.unparse(node.func) in (
                    "getattr", "setattr", "hasattr") and len(node.args) > 1
                  and isinstance(node.args[1], ast.Constant) and node.args[1].value in private):
                name = node.args[1].value
            if name:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_lens_touches_private_lens_attributes():
    private = lens_private_names()
    assert {"_tokenizer", "_hooked", "_special_rule"} <= private  # the reading finds them
    found = private_lens_uses(private=private)
    assert not found, ("private Lens attributes used outside lens.py (add a public Lens "
                       "method instead):\n" + "\n".join(found))
