"""The one wire protocol between a lensnb widget's frontend and Python.

A frontend asks for data with ``request(model, name, params)`` (``static/common.js``); the
message is the envelope ``{"kind": "request", "id", "request": {"name", "params"}}`` and Python
answers ``{"kind": "reply", "id", "reply" | "error"}`` with binary buffers (``base.py``).

- A **request** is a dataclass (``@request_schema("tile")``): its fields are the parameters,
  with types and ranges (``param(ge=0)``, ``param(choices=...)``). ``Request.parse`` checks a
  wire dict on arrival and raises ``RequestError`` naming the field and what is allowed.
- A widget's **handlers** are its methods marked ``@handles(Tile)``; ``handlers_of(cls)`` is the
  table ``request name -> (schema, method name)`` that ``LensWidget`` dispatches on. An unknown
  name is refused with the names the widget answers.
- A **reply** is a dataclass too (``Reply``): plain fields travel as JSON, fields declared with
  ``buffer()`` hold ``Array``s (one, a list, or a dict of them) and travel as binary buffers
  under their names: the reply's JSON carries ``"buffers": {name: {dtype, shape, index}}`` and
  the frontend reads ``buffers.wavelength``, never a position.

The schemas of a widget's requests (``schema_of``) are written into its ES module, so the
frontend fills in the same defaults as Python: a standalone export matches requests exactly.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from ..core.errors import InputError, InputTypeError, RequestError

Buffers = list[bytes]
DTYPES = ("float32", "float16", "uint8", "int32")
_TYPE_NAMES = {int: "an int", float: "a number", str: "a string", bool: "a bool"}
R = TypeVar("R", bound="Request")
_BOUNDS = (("ge", ">=", operator.ge), ("gt", ">", operator.gt), ("le", "<=", operator.le),
           ("lt", "<", operator.lt))


def pack(array: torch.Tensor | np.ndarray, dtype: str = "float32") -> tuple[dict, bytes]:
    """An array as ``({"dtype", "shape"}, bytes)``; ``common.js``'s ``unpack`` reverses it.

    ``dtype``: ``"float32"``, ``"float16"``, ``"uint8"`` (values in [0, 1] quantised to 0..255),
    ``"int32"``. bf16 is converted first (JS has no bf16).
    """
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if isinstance(array, torch.Tensor):
        array = array.detach().to("cpu", torch.float32 if array.is_floating_point() else None)
        array = array.numpy()
    array = np.asarray(array)
    if dtype == "uint8":
        out = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    else:
        out = array.astype({"float32": np.float32, "float16": np.float16,
                            "int32": np.int32}[dtype])
    return {"dtype": dtype, "shape": list(out.shape)}, np.ascontiguousarray(out).tobytes()


def unpack(meta: Mapping[str, Any], raw: bytes | memoryview) -> np.ndarray:
    """The array ``pack`` sent (uint8 stays quantised, as in ``common.js``'s ``unpack``)."""
    return np.frombuffer(bytes(raw), dtype=meta["dtype"]).reshape(meta["shape"])


# ---------------------------------------------------------------------------------- requests
def param(default: Any = MISSING, *, ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None,
          choices: tuple | None = None, doc: str = "") -> Any:
    """A request field with its allowed values (``ge``/``gt``/``le``/``lt``: numeric bounds;
    ``choices``: the allowed values)."""
    checks = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt),
                                ("choices", choices)) if v is not None}
    return dataclasses.field(default=default, metadata={"checks": checks, "doc": doc})


@dataclass(frozen=True, kw_only=True)
class Request:
    """A named request: subclasses are made with ``@request_schema(name)``."""

    NAME: ClassVar[str] = ""

    @classmethod
    def parse(cls: type[R], params: Any, *, where: str | None = None) -> R:
        """``params`` (a JSON object) checked against the fields: a ``RequestError`` names the
        first field that does not fit and what it allows."""
        where = where or f"request {cls.NAME!r}"
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise RequestError(f"{where}: params must be an object of fields, got "
                               f"{type(params).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - set(fields))
        if unknown:
            raise RequestError(f"{where} has no field {unknown[0]!r}: its fields are "
                               f"{', '.join(fields) or '(none)'}")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, f in fields.items():
            if name not in params:
                if f.default is MISSING:
                    raise RequestError(f"{where} needs field {name!r} "
                                       f"({_describe(hints[name])})")
                continue
            values[name] = _check(params[name], hints[name], f.metadata.get("checks", {}),
                                  f"{where}: field {name!r}", name)
        return cls(**values)

    def wire(self) -> dict[str, Any]:
        """The request as the frontend sends it: ``{"name", "params"}`` with every field."""
        return {"name": self.NAME, "params": _jsonable(self)}

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """Fields with their JSON defaults (``null`` for required ones) and checks."""
        hints = typing.get_type_hints(cls)
        out = {}
        for f in dataclasses.fields(cls):
            entry = {"type": _describe(hints[f.name]), **f.metadata.get("checks", {})}
            if f.default is not MISSING:
                entry["default"] = _jsonable(f.default)
            else:
                entry["required"] = True
            out[f.name] = entry
        return out


def request_schema(name: str) -> Callable[[type], type]:
    """Class decorator: a frozen, keyword-only dataclass request answered as ``name``."""

    def make(cls: type) -> type:
        cls.NAME = name
        return dataclass(frozen=True, kw_only=True)(cls)

    return make


def _describe(tp: Any) -> str:
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    args = typing.get_args(tp)
    if _is_union(tp):
        inner = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(inner) + (" or null" if type(None) in args else "")
    if dataclasses.is_dataclass(tp):
        return f"an object ({', '.join(f.name for f in dataclasses.fields(tp))})"
    if typing.get_origin(tp) is list:
        return f"a list of {_describe(args[0])}s" if args else "a list"
    return getattr(tp, "__name__", str(tp))


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _check(value: Any, tp: Any, checks: Mapping[str, Any], where: str, name: str) -> Any:
    """``value`` as type ``tp`` within ``checks``, or a ``RequestError`` saying why not."""
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise RequestError(f"{where} must be {_describe(tp)}, got null")
        inner = [a for a in args if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else tp
    if dataclasses.is_dataclass(tp):
        return tp.parse(value, where=where)
    if typing.get_origin(tp) is list:
        if not isinstance(value, list):
            raise RequestError(f"{where} must be {_describe(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check(v, item, {}, f"{where}[{i}]", name) for i, v in enumerate(value)]
    got = f"got {value!r} ({type(value).__name__})"
    if tp is bool:
        if not isinstance(value, bool):
            raise RequestError(f"{where} must be a bool, {got}")
    elif tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{where} must be an int, {got}")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(f"{where} must be a number, {got}")
        value = float(value)
        if not math.isfinite(value):
            raise RequestError(f"{where} must be a finite number, {got}")
    elif tp is str:
        if not isinstance(value, str):
            raise RequestError(f"{where} must be a string, {got}")
    choices = checks.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise RequestError(f"{where} must be one of {allowed}, got {value!r}")
    if _num(value):
        for op, sign, ok in _BOUNDS:
            if op in checks and not ok(value, checks[op]):
                raise RequestError(f"{where} = {value!r} is out of range: need {name} {sign} "
                                   f"{checks[op]}")
    return value


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------------------ replies
@dataclass(frozen=True)
class Array:
    """One buffer of a reply: an array and the dtype it travels as (see ``pack``)."""

    data: torch.Tensor | np.ndarray
    dtype: str = "float32"


def buffer(default: Any = MISSING, *, doc: str = "") -> Any:
    """A reply field that travels as binary: an ``Array``, a list of ``Array | None``, or a
    dict ``str -> Array``; it arrives in the frontend as ``buffers[field]``."""
    return dataclasses.field(default=default, metadata={"buffer": True, "doc": doc})


@dataclass
class Reply:
    """A reply: JSON fields plus named buffers (fields made with ``buffer()``)."""

    def encode(self) -> tuple[dict[str, Any], Buffers]:
        """``(json, [bytes, ...])``: the JSON fields and ``"buffers"``, the layout of the named
        buffers (``{dtype, shape, index}`` each, ``index`` into the list of bytes)."""
        out: dict[str, Any] = {}
        layout: dict[str, Any] = {}
        raw: Buffers = []

        def one(a: Array | None) -> dict | None:
            if a is None:
                return None
            if not isinstance(a, Array):
                raise InputTypeError(f"{type(self).__name__}: a buffer field holds Array values, "
                                     f"not {type(a).__name__}")
            meta, data = pack(a.data, a.dtype)
            raw.append(data)
            return {**meta, "index": len(raw) - 1}

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not f.metadata.get("buffer"):
                out[f.name] = _jsonable(value)
            elif isinstance(value, list):
                layout[f.name] = [one(v) for v in value]
            elif isinstance(value, Mapping):
                layout[f.name] = {str(k): one(v) for k, v in value.items()}
            else:
                layout[f.name] = one(value)
        if "buffers" in out:
            raise InputTypeError(f"{type(self).__name__}: 'buffers' is the name of the layout")
        out["buffers"] = layout
        return out, raw


@dataclass
class Done(Reply):
    """A reply with nothing to say but that it is done."""

    ok: bool = True


@dataclass(frozen=True)
class Answer:
    """A decoded reply, as the frontend sees it: ``reply`` (the JSON fields) and ``buffers``
    (numpy arrays under their names; uint8 stays quantised, as in ``common.js``)."""

    reply: dict[str, Any]
    buffers: dict[str, Any]


def decode(reply: Mapping[str, Any], raw: list[bytes] | list[memoryview]) -> Answer:
    """``(json, [bytes])`` from ``Reply.encode`` (or the wire) as an ``Answer``: the Python
    mirror of ``common.js``'s ``namedBuffers``."""

    def one(meta: Mapping | None) -> np.ndarray | None:
        return None if meta is None else unpack(meta, raw[meta["index"]])

    fields = {k: v for k, v in reply.items() if k != "buffers"}
    buffers: dict[str, Any] = {}
    for name, layout in (reply.get("buffers") or {}).items():
        if isinstance(layout, list):
            buffers[name] = [one(m) for m in layout]
        elif isinstance(layout, Mapping) and "index" not in layout:
            buffers[name] = {k: one(m) for k, m in layout.items()}
        else:
            buffers[name] = one(layout)
    return Answer(fields, buffers)


# ----------------------------------------------------------------------------------- handlers
def handles(schema: type[Request]) -> Callable[[Callable], Callable]:
    """Mark a widget method as the handler of ``schema``'s request: ``method(self, request)``
    returns a ``Reply``."""
    if not (isinstance(schema, type) and issubclass(schema, Request) and schema.NAME):
        raise InputTypeError(f"@handles takes a request schema made with @request_schema, not "
                             f"{schema!r}")

    def mark(method: Callable) -> Callable:
        method._lensnb_request = schema  # type: ignore[attr-defined]
        return method

    return mark


def handlers_of(cls: type) -> dict[str, tuple[type[Request], str]]:
    """``request name -> (schema, method name)`` of a widget class (subclasses override)."""
    table: dict[str, tuple[type[Request], str]] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            schema = getattr(value, "_lensnb_request", None)
            if schema is not None:
                table[schema.NAME] = (schema, attr)
    return table


def schema_of(cls: type) -> dict[str, Any]:
    """``{name: {field: {type, default | required, checks...}}}`` of a widget's requests (what
    ``common.js`` fills defaults from)."""
    return {name: schema.schema() for name, (schema, _) in sorted(handlers_of(cls).items())}


def parse_request(cls: type, request: Any) -> Request:
    """A wire request ``{"name", "params"}`` (or a ``Request``) checked against ``cls``'s
    handlers: an unknown name is refused with the names ``cls`` answers."""
    table = handlers_of(cls)
    valid = ", ".join(repr(n) for n in sorted(table)) or "nothing"
    if isinstance(request, Request):
        if request.NAME not in table:
            raise RequestError(f"unknown request kind {request.NAME!r}: {cls.__name__} "
                               f"answers {valid}")
        return type(request).parse(request.wire()["params"])  # built in Python: checked too
    if not isinstance(request, Mapping) or not isinstance(request.get("name"), str):
        raise RequestError(f"a request is {{'name': ..., 'params': {{...}}}}, got {request!r}: "
                           f"{cls.__name__} answers {valid}")
    extra = sorted(set(request) - {"name", "params"})
    if extra:
        raise RequestError(f"a request has 'name' and 'params' only, not {extra[0]!r} "
                           "(put fields in 'params')")
    name = request["name"]
    if name not in table:
        raise RequestError(f"unknown request kind {name!r}: {cls.__name__} answers {valid}")
    return table[name][0].parse(request.get("params"))
