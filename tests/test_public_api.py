"""The public API: small, every name importable, and ``import lensnb`` stays cheap."""

import subprocess
import sys

import lensnb


def test_every_public_name_resolves():
    assert sorted(lensnb.__all__) == sorted(lensnb._EXPORTS)
    for name in lensnb.__all__:
        assert getattr(lensnb, name) is not None


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
