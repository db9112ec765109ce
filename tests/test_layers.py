"""The layers of docs/architecture.md hold in the code: every import inside ``lensnb/`` (imports
inside functions too; ``if TYPE_CHECKING:`` blocks excepted) points to the importer's own layer
or a lower one, ``analysis`` and ``interventions`` do not import each other, there is no import
cycle between modules, and no ``.py``/``.js`` file is over 600 lines."""

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
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of the lensnb modules (or names in them) that ``path`` imports at run
    time, ``TYPE_CHECKING`` blocks left out."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    mod = module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
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
