"""The public API: small, written once (``lensnb/__init__.pyi``), every name importable, and
``import lensnb`` stays cheap."""

import ast
import subprocess
import sys
from pathlib import Path

import lensnb

STUB = Path(lensnb.__file__).with_suffix(".pyi")


def stub_names() -> set[str]:
    """The names ``lensnb/__init__.pyi`` imports, read here with ``ast`` (not lazy_loader)."""
    tree = ast.parse(STUB.read_text())
    return {a.asname or a.name for node in tree.body if isinstance(node, ast.ImportFrom)
            for a in node.names}


def test_every_public_name_resolves():
    assert sorted(lensnb.__all__) == sorted(stub_names())
    assert set(dir(lensnb)) >= set(lensnb.__all__)
    for name in lensnb.__all__:
        assert getattr(lensnb, name) is not None
    assert lensnb.rope.inv_freq and lensnb.export.save is lensnb.save  # submodules too


def test_every_public_error_is_a_lensnb_error_and_exported():
    """The stub exports every error and warning type in ``core/errors.py``, each under the
    family's base."""
    from lensnb.core import errors

    declared = {n for n, v in vars(errors).items()
                if isinstance(v, type) and issubclass(v, Exception | Warning)
                and v.__module__ == errors.__name__}
    assert declared <= set(lensnb.__all__), declared - set(lensnb.__all__)
    for name in declared:
        base = lensnb.LensnbWarning if issubclass(getattr(errors, name), Warning) else (
            lensnb.LensnbError)
        assert issubclass(getattr(lensnb, name), base), name


def test_import_is_cheap():
    code = "import sys, lensnb; print('torch' in sys.modules, 'anywidget' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_unknown_attribute():
    try:
        lensnb.no_such_thing  # noqa: B018
    except AttributeError as err:
        assert "no_such_thing" in str(err)
    else:
        raise AssertionError("expected AttributeError")
