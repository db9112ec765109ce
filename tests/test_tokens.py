"""Tokens as the model's own tokenizer makes them: ``lens.to_tokens`` equals
``AutoTokenizer.from_pretrained(dir)`` (with its own BOS rule) on every model lensnb ships or
names and on tiny layouts; ``prepend_bos=`` forces BOS on or off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from layouts import DEMO_DIR, LAYOUTS
from real_fixtures import load_real
from tokenizers import Tokenizer
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import lensnb
from lensnb.core.sources import NAMED, converted_path
from lensnb.loading import DEMOS

TEXTS = ["The capital of Japan is", "print(add(1, 2))", "def main():\n    return 0\n",
         "  leading spaces and ünïcode — ok"]
REAL = [pytest.param(n, marks=[pytest.mark.slow, pytest.mark.real_model]) for n in NAMED]


def _lens_and_dir(name: str) -> tuple[lensnb.Lens, Path]:
    if name in NAMED:
        return load_real(name), converted_path(NAMED[name])
    return lensnb.load(name), DEMOS[name]


def _ids(lens: lensnb.Lens, text: str, **kw) -> list[int]:
    return lens.to_tokens(text, **kw)[0].tolist()


def test_vision_tokens_equal_its_processors():
    """Llama 3.2 Vision's tokenizer adds no BOS; its processor (MllamaProcessor) does, and that
    is what the model was trained on."""
    from transformers import AutoProcessor

    lens = lensnb.load("demo-vision")
    proc = AutoProcessor.from_pretrained(DEMOS["demo-vision"])
    for text in ["a red circle", "a blue square at the centre", "the"]:
        assert _ids(lens, text) == proc(text=text)["input_ids"][0]
    assert _ids(lens, "a red circle", prepend_bos=False) == proc.tokenizer("a red circle")[
        "input_ids"]


@pytest.mark.parametrize("name", ["demo", *REAL])
def test_tokens_equal_the_models_own_tokenizer(name):
    lens, path = _lens_and_dir(name)
    own = AutoTokenizer.from_pretrained(path)
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))  # the file itself, no transformers
    for text in TEXTS:
        assert _ids(lens, text) == own(text)["input_ids"] == raw.encode(text).ids, text
        assert lens.to_str_tokens(text) == [own.decode([i]) for i in own(text)["input_ids"]]


def test_llama3_tokenizer_starts_with_begin_of_text(demo_lens):
    lens = demo_lens
    ids = _ids(lens, "x = 1")
    assert lens.tokenizer.convert_ids_to_tokens(ids[0]) == "<|begin_of_text|>"
    assert ids.count(lens.tokenizer.bos_token_id) == 1
    assert _ids(lens, "x = 1", prepend_bos=True) == ids  # never doubled
    assert _ids(lens, "x = 1", prepend_bos=False) == ids[1:]


@pytest.mark.slow
@pytest.mark.real_model
def test_smollm2_adds_no_bos_unless_asked():
    lens = load_real("smollm2-135m")
    # measured in the issue with SmolLM2's own tokenizer
    assert _ids(lens, "The capital of Japan is") == [504, 3575, 282, 3085, 314]
    assert _ids(lens, "The capital of Japan is", prepend_bos=True) == [1, 504, 3575, 282, 3085,
                                                                       314]
    assert lens.tokenizer.convert_ids_to_tokens(1) == "<|im_start|>"
    assert _ids(lens, "The capital of Japan is", prepend_bos=False) == [504, 3575, 282, 3085,
                                                                        314]
    # the bridge's own to_tokens follows the same rule
    assert lens.bridge.to_tokens("The capital of Japan is")[0].tolist() == [504, 3575, 282,
                                                                           3085, 314]


@pytest.mark.slow
@pytest.mark.real_model
def test_gemma3_adds_bos_as_its_gguf_says(tmp_path):
    from gguf import GGUFReader

    from lensnb.core.sources.gguf import gguf_file

    lens = load_real("gemma3-270m")
    fields = GGUFReader(gguf_file(NAMED["gemma3-270m"], tmp_path)).fields
    assert fields["tokenizer.ggml.add_bos_token"].contents() is True
    ids = _ids(lens, "The capital of Japan is")
    assert ids[0] == fields["tokenizer.ggml.bos_token_id"].contents()
    assert lens.tokenizer.convert_ids_to_tokens(ids[0]) == "<bos>"
    assert _ids(lens, "The capital of Japan is", prepend_bos=False) == ids[1:]


# ------------------------------------------------------------------ tiny layouts
def _no_bos_tokenizer_json(out: Path) -> Path:
    """The demo's tokenizer.json without its BOS post-processor (a SmolLM2/Qwen2-like rule)."""
    data = json.loads((DEMO_DIR / "tokenizer.json").read_text())
    data["post_processor"] = None
    path = out / "tokenizer.json"
    path.write_text(json.dumps(data))
    return path


def _tiny(model_type: str, out: Path, **overrides) -> torch.nn.Module:
    cfg = dict(vocab_size=4096, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    cfg.update(overrides)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **cfg))
    model.save_pretrained(out)
    return model


@pytest.mark.parametrize("bos", [True, False], ids=["file-adds-bos", "file-adds-none"])
def test_qwen2_directory_with_a_plain_tokenizer_json(tmp_path, bos):
    """Only config.json, weights and tokenizer.json. ``AutoTokenizer`` makes a
    ``Qwen2Tokenizer`` here, which keeps the file's BOS rule but applies Qwen2's own
    pre-tokenizer (``" 2"`` -> ``" ", "2"``, where the file alone gives one token): lensnb
    follows ``AutoTokenizer``, BOS included (it used to drop the file's BOS)."""
    _tiny("qwen2", tmp_path)
    if bos:
        shutil.copy(DEMO_DIR / "tokenizer.json", tmp_path / "tokenizer.json")
    else:
        _no_bos_tokenizer_json(tmp_path)
    raw = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    lens = lensnb.load(tmp_path)
    own = AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS:
        assert _ids(lens, text) == own(text)["input_ids"], text
    first = lens.tokenizer.convert_ids_to_tokens(_ids(lens, "x")[0])
    assert (first == "<|begin_of_text|>") is bos
    assert (raw.encode("x").tokens[0] == "<|begin_of_text|>") is bos  # the file's own rule


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_tiny_layouts_tokenize_as_their_tokenizer(make_tiny_model, layout):
    model_type, overrides = LAYOUTS[layout]
    path = make_tiny_model(model_type, **overrides)
    lens = lensnb.load(path)
    own = AutoTokenizer.from_pretrained(path)
    for text in TEXTS:
        assert _ids(lens, text) == own(text)["input_ids"], text


def test_loaded_model_uses_the_given_tokenizer_and_its_bos_rule(tmp_path):
    """``lensnb.load(model, tokenizer=tok)``: the issue measured id 1 prepended here."""
    model = _tiny("llama", tmp_path)
    _no_bos_tokenizer_json(tmp_path)
    shutil.copy(DEMO_DIR / "tokenizer_config.json", tmp_path)  # names the BOS token
    tok = AutoTokenizer.from_pretrained(tmp_path)
    lens = lensnb.load(model, tokenizer=tok)
    assert lens.tokenizer is tok
    text = "The capital of Japan is"
    assert _ids(lens, text) == tok(text)["input_ids"]
    assert tok(text)["input_ids"][0] != tok.bos_token_id
    assert _ids(lens, text, prepend_bos=True) == [tok.bos_token_id, *tok(text)["input_ids"]]


@pytest.mark.parametrize("side", ["left", "right"])
def test_batches_are_padded_like_the_tokenizer_pads(demo_lens, side):
    texts = ["a", "def f(x):\n    return x"]
    ref = AutoTokenizer.from_pretrained(DEMO_DIR)(texts, padding=True, padding_side=side,
                                                   return_tensors="pt")["input_ids"]
    assert torch.equal(demo_lens.to_tokens(texts, padding_side=side).cpu(), ref)


def test_bad_padding_side_is_refused(demo_lens):
    with pytest.raises(ValueError, match="padding_side must be 'left' or 'right'"):
        demo_lens.to_tokens(["a", "bb"], padding_side="middle")


def test_text_part_of_a_vision_model_keeps_its_bos(tmp_path):
    """The processor puts BOS first; the text part alone (and its saved checkpoint, through
    AutoTokenizer) tokenizes the same way, so its logits equal the vision model's."""
    lens = lensnb.load("demo-vision")
    text = "a red circle at the"
    assert _ids(lens.text_only(), text) == _ids(lens, text)
    path = lensnb.save_text_only(lens, tmp_path)
    assert AutoTokenizer.from_pretrained(path)(text)["input_ids"] == _ids(lens, text)
    # same mode (both plain Llamas, sdpa unless a hook needs the pattern): identical logits
    assert torch.equal(lensnb.load(path)(text), lens.text_only()(text))
    # against the vision model's own (eager) attention: float rounding, measured 9.5e-7
    torch.testing.assert_close(lensnb.load(path)(text), lens(text), atol=1e-5, rtol=0)
    assert lens.tokenizer(text)["input_ids"][0] != lens.tokenizer.bos_token_id  # not mutated
