"""lensnb.options (lensnb/core/settings.py): every assignment is checked (the error names the
allowed values), unknown names are errors, context() restores, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import lensnb
from lensnb.core.settings import DEFAULTS, ENV_STATIC_FALLBACK, STATIC_FALLBACKS, Options


@pytest.fixture
def options():
    return Options(environ={})  # a fresh instance: the process-wide one stays untouched


def test_public_object_and_defaults():
    from lensnb.core import settings

    # the settings object, not a module: its module is named otherwise, so importing it (as
    # lensnb.export does) cannot shadow the lazy export
    assert isinstance(lensnb.options, Options) and lensnb.options is settings.options
    fresh = Options(environ={})
    assert fresh.static_fallback == "html"
    assert fresh.static_fallback_max_bytes == DEFAULTS["static_fallback_max_bytes"] > 0


@pytest.mark.parametrize("value", STATIC_FALLBACKS)
def test_each_allowed_static_fallback_is_accepted(options, value):
    options.static_fallback = value
    assert options.static_fallback == value


@pytest.mark.parametrize("value", ["svg", "HTML", "html,png", "", True, 0, ["html"]])
def test_other_static_fallbacks_are_refused_naming_the_allowed(options, value):
    with pytest.raises(ValueError) as err:
        options.static_fallback = value
    message = str(err.value)
    assert "static_fallback" in message and repr(value) in message
    for allowed in ("'html'", "'png'", "'html+png'", "None"):
        assert allowed in message
    assert options.static_fallback == "html"  # unchanged


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "1MB"])
def test_max_bytes_must_be_a_positive_int_or_none(options, value):
    with pytest.raises(ValueError, match="static_fallback_max_bytes.*positive whole number"):
        options.static_fallback_max_bytes = value
    options.static_fallback_max_bytes = None
    assert options.static_fallback_max_bytes is None
    options.static_fallback_max_bytes = 1234
    assert options.static_fallback_max_bytes == 1234


@pytest.mark.parametrize("value", [0, 1, None, "no"])
def test_progress_is_true_or_false(options, value):
    assert options.progress is True
    options.progress = False
    assert options.progress is False
    with pytest.raises(TypeError, match="progress must be True or False") as err:
        options.progress = value
    assert isinstance(err.value, lensnb.LensnbError)


def test_unknown_setting_is_an_error_naming_the_settings(options):
    with pytest.raises(AttributeError, match="static_fallbak.*static_fallback, "
                                             "static_fallback_max_bytes"):
        options.static_fallbak = "png"
    with pytest.raises(AttributeError, match="no setting 'nope'"):
        options.nope  # noqa: B018


def test_context_restores_even_after_an_error_and_reset(options):
    options.static_fallback = "png"
    with pytest.raises(RuntimeError), options.context(static_fallback=None,
                                                      static_fallback_max_bytes=10):
        assert (options.static_fallback, options.static_fallback_max_bytes) == (None, 10)
        raise RuntimeError("inside")
    assert options.static_fallback == "png"
    with pytest.raises(ValueError), options.context(static_fallback="gif"):
        pass
    assert options.static_fallback == "png"
    options.reset()
    assert options.static_fallback == "html"
    assert "static_fallback='html'" in repr(options)


def test_import_is_cheap():
    code = ("import sys, lensnb; o = lensnb.options; o.static_fallback = 'png'; "
            "print('torch' in sys.modules, 'anywidget' in sys.modules, 'plotly' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


@pytest.mark.parametrize(("raw", "mode"), [("html+png", "html+png"), (" PNG ", "png"),
                                           ("none", None), ("None", None), ("", "html")])
def test_environment_sets_the_default_mode(raw, mode):
    options = Options(environ={ENV_STATIC_FALLBACK: raw})
    assert options.static_fallback == mode
    options.static_fallback = "html"
    options.reset()  # back to the environment's default, not the built-in one
    assert options.static_fallback == mode


def test_unknown_environment_value_warns_and_keeps_the_built_in_default():
    with pytest.warns(UserWarning, match="LENSNB_STATIC_FALLBACK='svg' is not one of"):
        options = Options(environ={ENV_STATIC_FALLBACK: "svg"})
    assert options.static_fallback == "html"
