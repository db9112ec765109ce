"""The one wire protocol (lensnb/widgets/protocol.py): every widget's requests are checked on
arrival and a bad field comes back as the reply's error naming the field and what it allows;
an unknown request lists the valid ones; buffers arrive under their names; the frontend's
request helper (common.js, run in chromium) fills the same defaults as Python and decodes
the same named buffers. Truths: hook_pattern of a forward, lensnb.rope, numbers written here."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from mllama_fixtures import mllama_dir, picture, vision_lens  # noqa: F401

import lensnb
from lensnb.widgets.attention import AttentionExplorer
from lensnb.widgets.base import STATIC
from lensnb.widgets.generation_stepper import GenerationStepper
from lensnb.widgets.image_attention import ImageAttention
from lensnb.widgets.protocol import (
    Array,
    Reply,
    Request,
    RequestError,
    buffer,
    decode,
    handlers_of,
    param,
    request_schema,
    schema_of,
)
from lensnb.widgets.rope_spectrum import RopeSpectrum

TEXT = "def add(a, b):\n    return a + b"
LLAMA31 = {"_name_or_path": "llama31-test", "model_type": "llama", "hidden_size": 512,
           "num_attention_heads": 4, "head_dim": 128, "max_position_embeddings": 131072,
           "rope_theta": 500000.0,
           "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}


@pytest.fixture(scope="module")
def explorer(demo_lens):
    return AttentionExplorer(demo_lens, TEXT, layers=[1])


@pytest.fixture(scope="module")
def stepper(demo_lens):
    return GenerationStepper(demo_lens, TEXT, max_new_tokens=2)


@pytest.fixture(scope="module")
def spectrum():
    return RopeSpectrum(LLAMA31, compare=None)


@pytest.fixture(scope="module")
def image_attention(vision_lens):  # noqa: F811
    return ImageAttention(vision_lens, "<|image|>a cat", picture(56, 40, seed=3))


def _reply(widget, name, params) -> dict:
    """What the frontend receives for one request through the real message path."""
    sent = []
    widget.send = lambda content, buffers=None: sent.append((content, buffers))
    try:
        widget._on_frontend_msg(widget, {"kind": "request", "id": "t",
                                         "request": {"name": name, "params": params}}, [])
    finally:
        del widget.send
    (content, _), = sent
    assert content["kind"] == "reply" and content["id"] == "t"
    return content


# name, params, what the error must say (the field and what it allows)
BAD = {
    "explorer": [
        ("tile", {"head": "3"}, "RequestError: request 'tile': field 'head' must be an int, "
                                "got '3' (str)"),
        ("tile", {"head": 1, "size": 0}, "field 'size' = 0 is out of range: need size >= 1"),
        ("tile", {"head": 1, "hed": 2}, "request 'tile' has no field 'hed': its fields are "
                                        "layer, head, q0, q1, k0, k1, size"),
        ("row", {"head": 0}, "request 'row' needs field 'pos' (an int)"),
        ("group", {"kv_group": True}, "field 'kv_group' must be an int, got True (bool)"),
    ],
    "stepper": [
        ("add_patch", {"layer": 0, "value": "bogus"},
         "field 'value' must be one of 'zero', 'scale', 'source', got 'bogus'"),
        ("add_patch", {"layer": 0, "every_generated": "yes"},
         "field 'every_generated' must be a bool, got 'yes' (str)"),
        ("add_patch", {"layer": 0, "scale": float("inf")}, "field 'scale' must be a finite"),
        ("cross", {"mode": "max"}, "field 'mode' must be one of 'head', 'kv_group', 'mean'"),
    ],
    "spectrum": [
        ("spectrum", {"params": {"factor": 0.5}},
         "field 'params': field 'factor' = 0.5 is out of range: need factor >= 1"),
        ("decay", {"params": {"theta": "big"}}, "field 'theta' must be a number, got 'big'"),
        ("usage", {"which": "v"}, "field 'which' must be one of 'q', 'k', None, got 'v'"),
        ("spectrum", {"params": 3}, "params must be an object of fields, got int"),
    ],
    "image_attention": [
        ("grid", {"head": -1}, "field 'head' = -1 is out of range: need head >= 0"),
        ("grid", {"token": 1.5}, "field 'token' must be an int, got 1.5 (float)"),
    ],
}
VALID = {"explorer": "'column', 'group', 'row', 'thumb', 'tile'",
         "stepper": "'add_patch', 'attention', 'clear_patches', 'cross', 'explorer', 'reset', "
                    "'state', 'step'",
         "spectrum": "'decay', 'spectrum', 'usage'",
         "image_attention": "'grid'"}


@pytest.mark.parametrize("which", list(BAD))
def test_bad_fields_come_back_as_named_errors(which, request):
    widget = request.getfixturevalue(which)
    for name, params, message in BAD[which]:
        content = _reply(widget, name, params)
        assert "reply" not in content
        assert message in content["error"], (name, params, content["error"])
    if which == "stepper":
        assert widget.patches == []  # a refused add_patch changed nothing


@pytest.mark.parametrize("which", list(BAD))
def test_unknown_request_lists_the_valid_ones(which, request):
    widget = request.getfixturevalue(which)
    cls = type(widget).__name__
    error = _reply(widget, "nope", {})["error"]
    assert error == f"RequestError: unknown request kind 'nope': {cls} answers {VALID[which]}"
    assert sorted(handlers_of(type(widget))) == [v.strip("' ") for v in VALID[which].split(",")]
    with pytest.raises(RequestError, match="put fields in 'params'"):
        widget.answer({"name": "nope", "layer": 1})  # the old flat form is refused clearly


def test_requests_built_in_python_are_checked_too(explorer):
    from lensnb.widgets.requests import Tile

    with pytest.raises(RequestError, match="field 'head' must be an int, got '3'"):
        explorer.answer(Tile(head="3"))
    reply, _ = explorer.answer(Tile(head=3))
    assert reply["window"] == [0, len(explorer.tokens), 0, len(explorer.tokens)]


def test_buffers_arrive_under_their_names(explorer, spectrum, demo_lens):
    _, cache = demo_lens.run_with_cache(TEXT, names=["blocks.1.attn.hook_pattern"])
    pattern = cache["blocks.1.attn.hook_pattern"][0]  # [n_heads, q, k]
    got = explorer.ask("column", head=2, pos=1)
    assert set(got.buffers) == {"weights"}
    np.testing.assert_allclose(got.buffers["weights"], pattern[2, :, 1].numpy(), rtol=1e-5,
                               atol=1e-7)
    got = explorer.ask("group", kv_group=0)
    names = [p["name"] for p in got.reply["panels"]]
    assert list(got.buffers["tiles"]) == names  # a dict of buffers, keyed by panel name
    mean = got.buffers["tiles"]["mean"] / 255.0 * got.reply["panels"][names.index("mean")]["vmax"]
    heads = demo_lens.heads_of_kv(0)
    np.testing.assert_allclose(mean, pattern[heads].mean(0).numpy(),
                               atol=got.reply["panels"][names.index("mean")]["vmax"] / 510 + 1e-6)
    got = spectrum.ask("spectrum")
    truth = lensnb.rope.spectrum(LLAMA31)
    for name in ("base_inv_freq", "inv_freq", "base_wavelength", "wavelength", "smooth"):
        assert len(got.buffers[name]) == 1  # one per series (no comparisons here)
        np.testing.assert_allclose(got.buffers[name][0], truth[name], rtol=1e-6, atol=1e-7)
    assert got.buffers["region"][0].dtype == np.int32
    # the wire JSON says where each named buffer is, and the bytes are the right ones
    reply, raw = spectrum.answer({"name": "spectrum", "params": {}})
    meta = reply["buffers"]["wavelength"][0]
    assert meta["dtype"] == "float32" and meta["shape"] == [64]
    np.testing.assert_allclose(np.frombuffer(raw[meta["index"]], np.float32),
                               truth["wavelength"], rtol=1e-6)


@request_schema("probe")
class Probe(Request):
    count: int = param(ge=1, le=4)
    label: str | None = param(None)


@dataclass
class ProbeReply(Reply):
    label: str
    one: Array = buffer()
    several: list[Array | None] = buffer()
    named: dict[str, Array] = buffer()


def _probe_reply() -> ProbeReply:
    return ProbeReply(label="<b>x</b>", one=Array(np.arange(6, dtype=np.float64).reshape(2, 3)),
                      several=[Array(np.array([1, -2, 3]), "int32"), None,
                               Array(np.array([0.0, 0.5, 1.0]), "uint8")],
                      named={"a": Array(np.array([1.5, 2.5]), "float16")})


def test_schema_checks_and_reply_encoding_by_hand():
    assert Probe.parse({"count": 2.0}) == Probe(count=2)  # JSON numbers may come as floats
    assert Probe(count=3).wire() == {"name": "probe", "params": {"count": 3, "label": None}}
    with pytest.raises(RequestError, match=r"field 'count' = 5 is out of range: need count <= 4"):
        Probe.parse({"count": 5})
    assert Probe.schema() == {"count": {"type": "an int", "ge": 1, "le": 4, "required": True},
                              "label": {"type": "a string or null", "default": None}}
    reply, raw = _probe_reply().encode()
    assert reply["label"] == "<b>x</b>" and len(raw) == 4
    layout = reply["buffers"]
    assert layout["several"][1] is None
    assert np.frombuffer(raw[layout["one"]["index"]], np.float32).tolist() == [0, 1, 2, 3, 4, 5]
    assert np.frombuffer(raw[layout["several"][0]["index"]], np.int32).tolist() == [1, -2, 3]
    assert np.frombuffer(raw[layout["several"][2]["index"]], np.uint8).tolist() == [0, 128, 255]
    assert np.frombuffer(raw[layout["named"]["a"]["index"]], np.float16).tolist() == [1.5, 2.5]
    got = decode(reply, raw)
    assert got.reply == {"label": "<b>x</b>"} and got.buffers["one"].shape == (2, 3)


def test_each_module_carries_its_schemas():
    for cls in (AttentionExplorer, RopeSpectrum, GenerationStepper, ImageAttention):
        first = cls._esm.split("\n", 1)[0]
        assert first.startswith("const LENSNB_REQUESTS = ") and first.endswith(";")
        assert json.loads(first.removeprefix("const LENSNB_REQUESTS = ")[:-1]) == json.loads(
            json.dumps(schema_of(cls)))


@pytest.mark.browser
def test_common_js_matches_python(playwright, explorer):
    """common.js's wireRequest fills the defaults Python's Request.wire() has (so standalone
    exports match requests exactly), and namedBuffers decodes what Reply.encode() packs."""
    from lensnb.export import ChromiumNotFoundError, chromium_path

    try:
        browser_path = chromium_path()
    except ChromiumNotFoundError:
        pytest.skip("no chromium: `make test` installs Debian's chromium")
    reply, raw = _probe_reply().encode()
    cases = [("tile", {"layer": explorer.layer, "head": explorer.head}),
             ("row", {"head": 0, "pos": 3}), ("group", {"kv_group": 1})]
    script = (f"const LENSNB_REQUESTS = {json.dumps(schema_of(AttentionExplorer))};\n"
              + (STATIC / "common.js").read_text(encoding="utf-8") + """
      const raw = RAW.map((bytes) => new DataView(Uint8Array.from(bytes).buffer));
      const named = namedBuffers(REPLY.buffers, raw);
      const plain = (b) => (b === null ? null : { data: Array.from(b.data), shape: b.shape });
      let unknown = null;
      try { wireRequest("nope", {}); } catch (err) { unknown = err.message; }
      return { wire: CASES.map(([n, p]) => wireRequest(n, p)), unknown,
               one: plain(named.one), several: named.several.map(plain), a: plain(named.named.a) };
    """)
    browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
    try:
        page = browser.new_page()
        out = page.evaluate("([src, cases, reply, raw]) => new Function('CASES', 'REPLY', 'RAW', "
                            "src)(cases, reply, raw)",
                            [script, cases, reply, [list(b) for b in raw]])
    finally:
        browser.close()
    schemas = {name: schema for name, (schema, _) in handlers_of(AttentionExplorer).items()}
    assert out["wire"] == [schemas[n].parse(p).wire() for n, p in cases]
    assert out["wire"][0] == explorer.export_requests()[0]  # what the export pre-answers
    assert out["unknown"].startswith("unknown request kind \"nope\": this widget answers 'column'")
    assert out["one"] == {"data": [0, 1, 2, 3, 4, 5], "shape": [2, 3]}
    assert out["several"] == [{"data": [1, -2, 3], "shape": [3]}, None,
                              {"data": [0, 128, 255], "shape": [3]}]
    assert out["a"] == {"data": [1.5, 2.5], "shape": [2]}
