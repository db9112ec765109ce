"""``GenerationConfig``: one set of generation keywords for ``generate``, ``steps`` and
``GenerationStepper``, with Hugging Face's names and meanings.

Unit tier for the checks; integration tier (a tiny random GQA Llama) for what the keywords do.
Truths: ``transformers.GenerationConfig`` (the names), Hugging Face's own ``TopKLogitsWarper`` /
``TopPLogitsWarper`` (which tokens sampling may pick) and greedy decoding."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
import transformers
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

import lensnb
from lensnb import GenerationConfig, GenerationStepper
from lensnb.interventions import generation

PROMPT = "def add(a, b):\n    return"
PROMPTS = ["import os", "def add(a, b):\n    return a +", "class A:\n    x = 1"]


@pytest.fixture(scope="module")
def tiny(make_tiny_model):
    path = make_tiny_model("llama", seed=3, num_attention_heads=8, num_key_value_heads=2)
    return lensnb.load(path)


# ------------------------------------------------------------------ names and checks
def test_sampling_names_are_hugging_faces():
    hf = transformers.GenerationConfig()
    for name in ("max_new_tokens", "do_sample", "temperature", "top_k", "top_p",
                 "eos_token_id", "stop_strings"):
        assert hasattr(hf, name), name
        assert name in {f.name for f in dataclasses.fields(GenerationConfig)}
    assert lensnb.GenerationConfig is GenerationConfig and "GenerationConfig" in lensnb.__all__


@pytest.mark.parametrize("kw,err,msg", [
    (dict(max_new_tokens=0), ValueError, "max_new_tokens must be a positive int"),
    (dict(temperature=0), ValueError, "temperature must be a number > 0"),
    (dict(top_k=-1), ValueError, "top_k must be None or an int >= 0.*top_k_probs"),
    (dict(top_p=1.5), ValueError, r"top_p must be None or a number in \(0, 1\]"),
    (dict(top_k_probs=0), ValueError, "top_k_probs must be a positive int"),
    (dict(logit_lens=-2), ValueError, "logit_lens must be True, False or an int"),
    (dict(stop_strings=["", "x"]), ValueError, "stop strings must be non-empty"),
    (dict(path="slow"), ValueError, "path must be 'auto', 'fast' or 'bridge'"),
    (dict(do_sample="yes"), TypeError, "do_sample must be True or False"),
    (dict(seed=1.5), TypeError, "seed must be None or an int"),
    (dict(eos_token_id=[1, -3]), ValueError, "eos_token_id must be a token id"),
    (dict(cache=True), ValueError, "cache takes hook names"),
])
def test_bad_values_name_what_is_allowed(kw, err, msg):
    with pytest.raises(err, match=msg):
        GenerationConfig(**kw)


def test_config_is_frozen_and_normalised():
    cfg = GenerationConfig(stop_strings="\n", top_k=0, top_p=1.0, logit_lens=True,
                           cache=["blocks.0.hook_resid_post"], eos_token_id=[2, 3])
    assert cfg.stop_strings == ("\n",) and cfg.top_k is None and cfg.top_p is None
    assert cfg.logit_lens == 5 and cfg.cache == ("blocks.0.hook_resid_post",)
    assert cfg.eos_token_id == (2, 3) and cfg.keeps_steps
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.top_k = 3  # type: ignore[misc]
    assert cfg.replace(top_k=3).top_k == 3 and cfg.top_k is None


def test_unknown_keyword_lists_the_allowed_ones(tiny):
    with pytest.raises(TypeError, match="unknown generation keyword 'temprature'.*Did you mean "
                                        "temperature.*Allowed: max_new_tokens"):
        tiny.generate(PROMPT, 2, temprature=0.5)
    with pytest.raises(TypeError, match="config must be a lensnb.GenerationConfig"):
        tiny.generate(PROMPT, config={"max_new_tokens": 2})


# ------------------------------------------------------------------ what they do
def test_config_and_keywords_are_the_same_run(tiny):
    cfg = GenerationConfig(max_new_tokens=6, do_sample=True, temperature=1.5, seed=3)
    a = tiny.generate(PROMPT, config=cfg)
    b = tiny.generate(PROMPT, 6, do_sample=True, temperature=1.5, seed=3)
    c = generation.generate(tiny, PROMPT, config=cfg.replace(max_new_tokens=2), max_new_tokens=6)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.tokens, c.tokens)
    assert a.new_tokens.shape[1] == 6
    d = [s.token for s in tiny.steps(PROMPT, config=cfg)]
    assert d == a.new_tokens[0].tolist()
    assert tiny.generate(PROMPT, config=cfg, seed=4).tokens.shape == a.tokens.shape


@pytest.mark.parametrize("kw,warper", [(dict(top_k=3), TopKLogitsWarper(3)),
                                       (dict(top_p=0.5), TopPLogitsWarper(0.5))])
def test_sampling_picks_only_what_hugging_face_keeps(tiny, kw, warper):
    """``top_k``/``top_p`` mean Hugging Face's: every sampled token survives HF's own warper
    applied to that step's logits (temperature 3 flattens the distribution so an unfiltered
    sampler would leave the set)."""
    out = tiny.generate(PROMPTS, 8, do_sample=True, temperature=3.0, seed=0, return_logits=True,
                        stop_at_eos=False, **kw)
    plain = tiny.generate(PROMPTS, 8, do_sample=True, temperature=3.0, seed=0,
                          return_logits=True, stop_at_eos=False)
    outside = 0
    for k in range(8):
        kept = warper(None, out.logits[:, k].float() / 3.0)  # [batch, d_vocab]
        assert bool(torch.isfinite(kept.gather(1, out.new_tokens[:, k:k + 1])).all())
        kept_plain = warper(None, plain.logits[:, k].float() / 3.0)
        outside += int((~torch.isfinite(kept_plain.gather(1, plain.new_tokens[:, k:k + 1]))).sum())
    assert outside > 0  # without the filter the sampler does leave the kept set


def test_top_k_one_is_greedy_and_top_k_probs_is_how_many_probabilities(tiny):
    greedy = tiny.generate(PROMPT, 6)
    assert torch.equal(tiny.generate(PROMPT, 6, do_sample=True, top_k=1, seed=1).tokens,
                       greedy.tokens)
    first = next(iter(tiny.steps(PROMPT, 1, top_k_probs=4)))
    assert first.top_ids.shape == (1, 4)


def test_eos_token_id_overrides_the_models(tiny):
    greedy = tiny.generate(PROMPT, 8).new_tokens[0].tolist()
    k = next(i for i in range(1, 8) if greedy[i] not in greedy[:i])  # first new token id
    out = tiny.generate(PROMPT, 8, eos_token_id=greedy[k])
    assert out.stop_reason == "eos" and out.new_tokens[0].tolist() == greedy[:k + 1]


# ------------------------------------------------------------------ renamed keywords
def test_old_names_still_work_with_a_deprecation_warning_at_the_caller(tiny):
    want = tiny.generate(PROMPT, 6, do_sample=True, top_k=1, seed=2)
    with pytest.warns(DeprecationWarning, match="sample_top_k= is deprecated: use top_k=") as rec:
        got = tiny.generate(PROMPT, 6, do_sample=True, sample_top_k=1, seed=2)
    assert torch.equal(got.tokens, want.tokens)
    assert rec[0].filename == __file__  # points at the user's line, where Jupyter shows it
    stop = tiny.tokenizer.decode(want.new_tokens[0, 1:3].tolist())
    with pytest.warns(DeprecationWarning, match="stop= is deprecated: use stop_strings="):
        old = generation.generate(tiny, PROMPT, 10, stop=stop)
    assert torch.equal(old.tokens, tiny.generate(PROMPT, 10, stop_strings=stop).tokens)
    with pytest.raises(TypeError, match="not both"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tiny.generate(PROMPT, 2, top_k=1, sample_top_k=1)


def test_top_k_without_sampling_says_what_it_means(tiny):
    with pytest.warns(UserWarning, match="no effect without do_sample=True.*top_k_probs"):
        tiny.generate(PROMPT, 2, top_k=4)


def test_stepper_takes_the_same_keywords(tiny):
    greedy = tiny.generate(PROMPT, 4)
    w = GenerationStepper(tiny, PROMPT, max_new_tokens=4, top_k_probs=3, do_sample=True,
                          top_k=1, seed=0)
    w.run()
    assert torch.equal(w.tokens, greedy.tokens)
    assert w.config.do_sample and w.config.top_k == 1 and w.top_k_probs == 3
    assert w.steps[0].top_ids.shape == (1, 3)
    cfg = GenerationConfig(max_new_tokens=2, do_sample=True, temperature=2.0, seed=5)
    v = GenerationStepper(tiny, PROMPT, config=cfg)
    v.run()
    assert v.config.max_new_tokens == 2 and len(v.steps) == 2
    assert [s.token for s in v.steps] == tiny.generate(PROMPT, config=cfg).new_tokens[0].tolist()
    with pytest.raises(TypeError, match="sets logit_lens= itself"):
        GenerationStepper(tiny, PROMPT, logit_lens=2)


def test_nothing_in_lensnb_uses_a_deprecated_name(tiny):
    """The stepper, patchscope, steps and the self-check's generation paths, with every
    warning recorded: none is lensnb's own deprecation."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        w = GenerationStepper(tiny, PROMPT, max_new_tokens=2)
        w.add_patch(0, position=1)
        w.run()
        lensnb.patchscope(tiny, PROMPT, 0, -1, max_new_tokens=2)
        list(tiny.steps(PROMPT, 2, logit_lens=True, cache="blocks.0.hook_resid_post"))
    assert not [r for r in rec if "is deprecated: use" in str(r.message)]
