"""Every public feature on every family works, or refuses before any forward pass: the family x
feature table in README.md ("What works on which family") is read here and every cell is run on
a tiny random model of its family (Llama 3.2 Vision: the tiny Mllama). A refusal must be
``UnsupportedFeatureError`` (``GQAError`` for the GQA-only view) raised while a counter on
``torch.nn.functional.embedding`` (every forward pass embeds its tokens) stays at 0."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
from layouts import LAYOUTS, REPO
from mllama_fixtures import mllama_dir, picture, vision_lens  # noqa: F401

import lensnb

TEXT = "def add(a, b):\n    return a + b\n"
VISION = "Llama 3.2 Vision"
COLUMNS = {  # README column -> tiny layout (tests/layouts.py)
    "Llama, Mistral, Qwen2": "gqa-llama3", "Gemma": "mqa-gemma", "GPT-2": "gpt2",
    "GPT-NeoX (Pythia)": "gpt-neox", "Phi-3": "phi3", "Qwen3": "qwen3", "OLMo-2": "olmo2",
    "Gemma 2": "gemma2", "Gemma 3": "gemma3", VISION: "mllama",
}


def readme_table() -> tuple[list[str], dict[str, list[str]]]:
    """``(columns, {feature: cells})`` of the table after the ``<!-- families:`` marker."""
    text = (REPO / "README.md").read_text()
    lines = text[text.index("<!-- families:"):].splitlines()
    rows = [ln for ln in lines[lines.index(next(ln for ln in lines if ln.startswith("|"))):]
            if ln.startswith("|")]
    table = []
    for line in rows:
        if not line.startswith("|"):
            break
        table.append([c.strip() for c in line.strip("|").split("|")])
    header, _, *body = table
    return header[1:], {row[0]: row[1:] for row in body}


COLUMN_NAMES, FEATURES = readme_table()


# ---------------------------------------------------------------------------- the features
def _forward(lens: Any, source: Any) -> None:
    lens(TEXT)
    lens.run_with_cache(TEXT, names="blocks.0.hook_resid_post")
    lens.run_with_hooks(TEXT, fwd_hooks=[("blocks.0.hook_resid_post", lambda t, hook: t)])


def _patterns(lens: Any, source: Any) -> None:
    kept = lensnb.attention_patterns(lens, TEXT)
    kept.pattern(kept.layers[-1])
    lensnb.AttentionExplorer(lens, TEXT)


def _generation(lens: Any, source: Any) -> None:
    p = lensnb.patch(0, "hook_resid_post", position=1, value=torch.zeros_like)
    lens.generate(TEXT, 2, hooks=[p])
    list(lens.steps(TEXT, 2, hooks=[p]))
    stepper = lensnb.GenerationStepper(lens, TEXT)
    stepper.add_patch(p)


def _split(lens: Any, source: Any) -> None:
    layer = lens.n_layers - 1
    with lens.split_qkv():
        lens.run_with_cache(TEXT, names=f"blocks.{layer}.attn.hook_k_input")
    with lens.patch_kv_input(layer, 0, torch.zeros_like):
        lens(TEXT)
    with lens.patch_q_input(layer, 0, torch.zeros_like):
        lens(TEXT)


def _images(lens: Any, source: Any) -> None:
    lensnb.ImageAttention(lens, "<|image|>a picture of", picture(56, 28))
    lens("<|image|>a picture of", images=[picture(28, 28)])


def _pair(lens: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A prompt pair of equal token length on any tokenizer: ``TEXT``'s ids and them reversed."""
    clean = lens.to_tokens(TEXT)  # [1, pos]
    return clean, clean.flip(1)


def _patching(lens: Any, source: Any) -> None:
    clean, corrupted = _pair(lens)
    last = lens.n_layers - 1
    for site in lensnb.patching_sites(lens):
        lensnb.activation_patching(lens, clean, corrupted, answer=5, wrong=7, site=site,
                                   layers=[last], progress=False)
        lensnb.activation_patching(lens, clean, corrupted, answer=5, wrong=7, site=site,
                                   method="attribution", progress=False)


def _ablation(lens: Any, source: Any) -> None:
    layer = lens.self_attention_layers[-1]
    for how, reference in (("zero", None), ("mean", [TEXT])):
        patches = lensnb.ablation(lens, heads=[(layer, 0)], kv_groups=[(layer, 0)], how=how,
                                  reference=reference)
        lens.run_with_hooks(TEXT, fwd_hooks=patches)


def _workbench(lens: Any, source: Any) -> None:
    clean, corrupted = _pair(lens)
    wb = lensnb.PatchingWorkbench(lens, clean, corrupted, answer=5, wrong=7)
    wb.ablate([(lens.self_attention_layers[-1], 0)])


FEATURE_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "`lens(text)`, `run_with_cache`, `run_with_hooks`": _forward,
    "`attention_patterns`, `AttentionExplorer`": _patterns,
    "`long_context_profile`": lambda lens, _: lensnb.long_context_profile(lens, TEXT,
                                                                          progress=False),
    "`kv_group_view`": lambda lens, _: lens.kv_group_view(TEXT, lens.self_attention_layers[-1]),
    "`logit_attribution`": lambda lens, _: lens.logit_attribution(TEXT, 5, 7),
    "`RopeSpectrum(lens)`": lambda lens, _: lensnb.RopeSpectrum(lens, compare=None),
    "`rope.frequency_usage`, `RopeSpectrum(lens, text=)`": lambda lens, _: (
        lensnb.rope.frequency_usage(lens, TEXT),
        lensnb.RopeSpectrum(lens, text=TEXT, compare=None)),
    "`generate`, `steps`, `GenerationStepper`, with patches": _generation,
    "`patchscope`": lambda lens, _: lensnb.patchscope(lens, "a b c", 0, -1, "x y z", 0, -1,
                                                     max_new_tokens=2),
    "`split_qkv`, `patch_kv_input`, `patch_q_input`": _split,
    "`compatibility=True`": lambda lens, source: lensnb.load(source, compatibility=True)(TEXT),
    "`activation_patching` (every site, exact and attribution)": _patching,
    "`ablation`": _ablation,
    "`causal_trace`": lambda lens, _: lensnb.causal_trace(lens, TEXT, [1, 2], 5, samples=2,
                                                          window=2, progress=False),
    "`logit_lens`": lambda lens, _: lensnb.logit_lens(lens, TEXT, target=5),
    "`PatchingWorkbench`": _workbench,
    "`ImageAttention`, `images=`": _images,
}


def test_the_table_names_every_family_and_feature():
    assert COLUMN_NAMES == list(COLUMNS)
    assert list(FEATURES) == list(FEATURE_CALLS)
    for feature, cells in FEATURES.items():
        assert len(cells) == len(COLUMNS), feature
        for cell in cells:
            assert cell.startswith(("✓", "refuses")), (feature, cell)


@pytest.fixture(scope="module")
def family(make_tiny_model, mllama_dir):  # noqa: F811
    built: dict[str, tuple] = {}

    def get(column: str) -> tuple[Any, Any]:
        if column not in built:
            layout = COLUMNS[column]
            if layout == "mllama":
                source = mllama_dir
            else:
                model_type, overrides = LAYOUTS[layout]
                source = make_tiny_model(model_type, **overrides)
            built[column] = (lensnb.load(source), source)
        return built[column]

    return get


@pytest.fixture
def forward_passes(monkeypatch) -> list[int]:
    """Counts token embeddings: every forward pass of every backend and path embeds tokens."""
    calls = [0]
    real = torch.nn.functional.embedding

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "embedding", counted)
    return calls


CELLS = [(feature, column, cell) for feature, cells in FEATURES.items()
         for column, cell in zip(COLUMNS, cells, strict=True)]


@pytest.mark.parametrize("feature,column,cell", CELLS,
                         ids=[f"{re.sub(r'[^a-z0-9]+', '-', f.lower()).strip('-')[:24]}"
                              f"|{COLUMNS[c]}" for f, c, _ in CELLS])
def test_every_cell(family, forward_passes, feature, column, cell):
    lens, source = family(column)
    call = FEATURE_CALLS[feature]
    if cell.startswith("✓"):
        call(lens, source)
        assert forward_passes[0] > 0 or feature == "`RopeSpectrum(lens)`"
        return
    with pytest.raises((lensnb.UnsupportedFeatureError, lensnb.GQAError)) as err:
        call(lens, source)
    assert forward_passes[0] == 0, f"{feature} on {column} ran the model before refusing"
    if "use `lens.text_only()`" in cell:
        assert "text_only()" in str(err.value)
