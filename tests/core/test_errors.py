"""One error family: every error lensnb raises on purpose is a ``LensnbError`` that keeps its
builtin, and every warning it issues a ``LensnbWarning``. Read off the source with ``ast``
(every ``raise`` and ``warnings.warn`` in ``lensnb/``), so a new bare ``raise ValueError(...)``
fails here, and checked on the classes themselves."""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import pytest
from layouts import REPO

import lensnb
from lensnb.core import errors

PACKAGE = REPO / "lensnb"
BUILTIN_EXCEPTIONS = {n for n, v in vars(builtins).items()
                      if isinstance(v, type) and issubclass(v, BaseException)}
# Raises of a builtin that are protocol, not lensnb's errors: a module-level ``__getattr__``
# must raise AttributeError (the import system's rule), and a ``lensnb.check()`` invariant
# signals its cell's failure with AssertionError (always caught by ``selfcheck.runner``).
ALLOWED = {("__getattr__", "AttributeError"), ("lensnb/selfcheck/invariants.py", "AssertionError")}


def _enclosing_functions(tree: ast.AST) -> dict[int, str]:
    """id(node) -> the name of the function it is in (``""`` at module level)."""
    out: dict[int, str] = {}

    def visit(node: ast.AST, fn: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else fn
            out[id(child)] = name
            visit(child, name)

    visit(tree, "")
    return out


def bare_builtin_raises(root: Path = PACKAGE) -> list[str]:
    """``file:line: raise ...`` for every ``raise`` of a builtin exception class in ``root``
    (called or not), except the protocol raises in ``ALLOWED``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = str(path.relative_to(root.parent))
        tree = ast.parse(path.read_text())
        where = _enclosing_functions(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = ast.unparse(exc)
            if name not in BUILTIN_EXCEPTIONS:
                continue
            if (where.get(id(node)), name) in ALLOWED or (rel, name) in ALLOWED:
                continue
            found.append((rel, node.lineno, f"{rel}:{node.lineno}: {ast.unparse(node)[:90]}"))
    return [text for *_, text in sorted(found)]


def test_no_bare_builtin_raise_in_lensnb():
    found = bare_builtin_raises()
    assert not found, ("raise the lensnb.core.errors type for the condition (InputError, "
                       "InputTypeError, IndexRangeError, ...), not a bare builtin:\n"
                       + "\n".join(found))


def test_the_raise_check_finds_a_planted_bare_raise(tmp_path):
    pkg = tmp_path / "lensnb"
    pkg.mkdir()
    (pkg / "m.py").write_text("def f(x):\n    if x:\n        raise ValueError('bad x')\n"
                              "    raise KeyError\n")
    (pkg / "ok.py").write_text("from .errors import InputError\n\n\n"
                               "def __getattr__(name):\n    raise AttributeError(name)\n\n\n"
                               "def g():\n    raise InputError('fine')\n")
    assert bare_builtin_raises(pkg) == ["lensnb/m.py:3: raise ValueError('bad x')",
                                        "lensnb/m.py:4: raise KeyError"]


def warning_categories(root: Path = PACKAGE) -> list[tuple[str, str | None]]:
    """``(file:line, category name or None)`` of every ``warnings.warn`` call in ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("warnings.warn", "warn"):
                category = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "category"), None)
                found.append((f"{path.relative_to(root.parent)}:{node.lineno}",
                              None if category is None else ast.unparse(category)))
    return found


def test_every_warning_lensnb_issues_is_a_lensnb_warning():
    calls = warning_categories()
    assert len(calls) >= 4  # fallback, split QKV, generation config (2), settings
    bad = [f"{at}: {name or 'no category (UserWarning)'}" for at, name in calls
           if name is None or not issubclass(getattr(errors, name, Warning), lensnb.LensnbWarning)]
    assert not bad, "warn with a lensnb.LensnbWarning subclass:\n" + "\n".join(bad)


def public_error_types() -> dict[str, type]:
    return {n: v for n, v in vars(errors).items() if inspect.isclass(v)
            and issubclass(v, BaseException) and v.__module__ == errors.__name__}


@pytest.mark.parametrize("name", sorted(public_error_types()))
def test_each_error_is_a_lensnb_error_keeping_its_builtin(name):
    cls = public_error_types()[name]
    if issubclass(cls, Warning):
        assert issubclass(cls, lensnb.LensnbWarning) and issubclass(cls, UserWarning)
        return
    assert issubclass(cls, lensnb.LensnbError)
    if cls is not lensnb.LensnbError:  # a builtin besides Exception, so `except ValueError` works
        kept = [b for b in cls.__mro__ if b.__name__ in BUILTIN_EXCEPTIONS
                and b not in (Exception, BaseException)]
        assert kept, f"{name} keeps no builtin"


def test_exceptions_are_defined_only_in_core_errors():
    """Public exception classes live in core/errors.py (private control-flow ones, ``_Enough``,
    and selfcheck's cell outcomes excepted)."""
    outside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_") and any(
                    ast.unparse(b) in BUILTIN_EXCEPTIONS or ast.unparse(b).endswith("Error")
                    for b in node.bases):
                outside.append(f"{path.relative_to(REPO)}: {node.name}")
    assert outside == ["lensnb/selfcheck/result.py: NotApplicable",
                       "lensnb/selfcheck/result.py: Unavailable"], outside


def test_one_condition_one_type():
    """A wrong image count is ImageTokenError, a layer of the wrong attention kind
    UnsupportedFeatureError, wherever they are raised: read off the raise statements."""
    seen: dict[str, set[str]] = {"<|image|>": set(), "cross-attention layer": set()}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):  # (traitlets
                # validators answer with TraitError, traitlets' own protocol)
                text = ast.unparse(node.exc)
                kind = ast.unparse(node.exc.func)
                if ("exactly one" in text or "token(s) but" in text) and (
                        "IMAGE_TOKEN" in text or "marker" in text or "<|image|>" in text):
                    seen["<|image|>"].add(kind)
                if "a cross-attention layer" in text and kind != "traitlets.TraitError":
                    seen["cross-attention layer"].add(kind)
    assert seen == {"<|image|>": {"ImageTokenError"},
                    "cross-attention layer": {"UnsupportedFeatureError"}}, seen
