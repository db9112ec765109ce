"""Token ids are checked before any forward pass, wherever they enter (``core.tokens``, through
``Lens.to_tokens``): integer dtype, ``[pos]`` or ``[batch, pos]``, ``0 <= id < vocab_size``;
anything else is a ``TokenError`` (a ``ValueError``) naming the vocabulary size and the bad ids,
where torch raised a bare ``IndexError: index out of range in self`` (or a 3-d tensor gave 5-d
logits). Truth for the vocabulary size: the model's own config, and its embedding's rows."""

from __future__ import annotations

import pytest
import torch
from mllama_fixtures import mllama_dir, picture, vision_lens  # noqa: F401

import lensnb
from lensnb import TokenError
from lensnb.core.tokens import check_tokens

TEXT = "def f(x):\n    return x"


@pytest.fixture(scope="module")
def lens(make_tiny_model):
    return lensnb.load(make_tiny_model("llama", seed=11))


# ------------------------------------------------------------------ the rule (unit)
def test_good_ids_pass_and_gain_a_batch_axis():
    ids = torch.tensor([0, 5, 9])
    out = check_tokens(ids, 10)
    assert out.shape == (1, 3) and out.dtype == torch.int64 and out.tolist() == [[0, 5, 9]]
    assert check_tokens(ids.int()[None], 10).dtype == torch.int32  # kept as given
    assert check_tokens(ids.to(torch.uint8), 10).dtype == torch.int64  # embedding takes these


@pytest.mark.parametrize(("ids", "message"), [
    (torch.tensor([[1, 10, -1, 3, 10]]), r"0\.\.9: the model has a vocabulary of 10 tokens, "
     r"got -1, 10 \(3 out-of-range id\(s\), the first at \[0, 1\]\)"),
    (torch.tensor([[1.0, 2.0]]), r"must be integers, got a torch\.float32 tensor"),
    (torch.tensor([[True]]), r"must be integers, got a torch\.bool tensor"),
    (torch.zeros(2, 3, 4, dtype=torch.long), r"\[pos\] or \[batch, pos\], got a 3-d tensor of "
     r"shape \(2, 3, 4\)"),
    (torch.tensor(3), r"got a 0-d tensor"),
    (torch.zeros(1, 0, dtype=torch.long), r"hold no tokens \(shape \(1, 0\)\)"),
    ([1, 2], r"must be a torch tensor, got list"),
], ids=["out-of-range", "float", "bool", "3-d", "0-d", "empty", "list"])
def test_bad_ids_name_what_is_wrong(ids, message):
    with pytest.raises(TokenError, match=message) as err:
        check_tokens(ids, 10)
    assert isinstance(err.value, ValueError) and isinstance(err.value, lensnb.LensnbError)


def test_many_bad_ids_are_summarised():
    with pytest.raises(TokenError, match=r"got 10, 11, 12, 13, 14, 15, 16, 17 and 4 more"):
        check_tokens(torch.arange(0, 22)[None], 10)


# ------------------------------------------------------------------ every entry point
def _counting(lens):
    """A list that grows by one per forward of the embedding (bridge and fast path alike)."""
    calls: list[int] = []
    for model in (lens.hf_model, lens.fast_path().model):
        if model is not None:
            model.get_input_embeddings().register_forward_pre_hook(lambda *_: calls.append(1))
    return calls


def _bad(lens) -> dict[str, torch.Tensor]:
    v = lens.vocab_size
    return {"oov": torch.tensor([[1, 2, v]]), "negative": torch.tensor([[1, -3, 2]]),
            "3-d": torch.ones(1, 1, 4, dtype=torch.long), "float": torch.ones(1, 4)}


ENTRY_POINTS = {
    "to_tokens": lambda lens, t: lens.to_tokens(t),
    "call": lambda lens, t: lens(t),
    "run_with_cache": lambda lens, t: lens.run_with_cache(t, names="blocks.0.hook_resid_post"),
    "run_with_hooks": lambda lens, t: lens.run_with_hooks(t, [lensnb.patch(0, "hook_resid_post",
                                                                          position=0, value=0.0)]),
    "generate": lambda lens, t: lens.generate(t, 2),
    "generate (bridge path)": lambda lens, t: lens.generate(t, 2, path="bridge"),
    "steps": lambda lens, t: next(lens.steps(t, 2)),
    "patchscope": lambda lens, t: lensnb.patchscope(lens, t, 0, -1, max_new_tokens=1),
    "attention_patterns": lambda lens, t: lensnb.attention_patterns(lens, t, [0]),
    "AttentionExplorer": lambda lens, t: lensnb.AttentionExplorer(lens, t),
    "kv_group_view": lambda lens, t: lens.kv_group_view(t, 0),
    "logit_attribution": lambda lens, t: lens.logit_attribution(t, 1),
    "long_context_profile": lambda lens, t: lensnb.long_context_profile(lens, t, layers=[0]),
}


def test_the_vocabulary_is_the_models(lens, make_tiny_model):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(make_tiny_model("llama", seed=11))
    rows = lens.hf_model.get_input_embeddings().num_embeddings
    assert lens.vocab_size == config.vocab_size == rows


@pytest.mark.parametrize("bad", ["oov", "negative", "3-d", "float"])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_bad_ids_before_any_forward(lens, entry, bad):
    calls = _counting(lens)
    tokens = _bad(lens)[bad]
    with pytest.raises(TokenError, match=f"vocabulary of {lens.vocab_size} tokens"
                       if bad in ("oov", "negative") else "token ids"):
        ENTRY_POINTS[entry](lens, tokens)
    assert calls == []


def test_good_ids_still_run_everywhere(lens):
    """The same calls with valid ids run (the check lets good input through)."""
    tokens = lens.to_tokens(TEXT)
    assert lens(tokens[0]).shape == (1, tokens.shape[1], lens.vocab_size)  # [pos] is accepted
    assert lens.generate(tokens, 2).new_tokens.shape == (1, 2)
    assert lens(tokens.int()).shape[1] == tokens.shape[1]


def test_the_stepper_takes_text_only(lens):
    with pytest.raises(lensnb.InputError, match="prompt must be a non-empty string"):
        lensnb.GenerationStepper(lens, torch.tensor([[1, lens.vocab_size]]))


def test_vision_ids_are_checked_against_its_embedding(vision_lens):  # noqa: F811
    """Llama 3.2 Vision embeds its text vocabulary plus <|image|> and reserved ids: the
    <|image|> id (== the text vocabulary size) is valid, one past the embedding is not, both
    through the Lens and on the hooked model itself."""
    text_vocab = vision_lens.hf_config.text_config.vocab_size
    rows = vision_lens.hf_model.get_input_embeddings().num_embeddings
    assert vision_lens.vocab_size == rows > text_vocab
    image_id = vision_lens.tokenizer.convert_tokens_to_ids("<|image|>")
    assert text_vocab <= image_id < rows
    vision_lens(vision_lens.to_tokens("a picture"))  # runs
    calls = _counting(vision_lens)
    for call in (lambda t: vision_lens(t), lambda t: vision_lens.bridge(t)):
        with pytest.raises(TokenError, match=f"0..{rows - 1}.*vocabulary of {rows} tokens, got "
                           f"{rows}"):
            call(torch.tensor([[1, rows]]))
        with pytest.raises(TokenError, match="3-d tensor"):
            call(torch.ones(1, 1, 3, dtype=torch.long))
    assert calls == []
    logits = vision_lens("<|image|>a picture", images=[picture(28, 28)])  # <|image|> passes
    assert bool(torch.isfinite(logits).all())
