"""SmolLM2-135M, the indirect-object pair of the tutorial and the benchmark: exact per-head
patching equals TransformerLens's own ``get_act_patch_attn_head_out_all_pos`` on the lens's
bridge (270 unbatched passes), the residual / attention / MLP sites equal its
``generic_activation_patch`` with ``layer_pos_patch_setter`` (what ``get_act_patch_resid_pre``
and its siblings run) over four layers' cells, and the KV-group sweep equals a loop written
here."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from real_fixtures import load_real
from transformer_lens import patching as tl_patching

import lensnb

CLEAN = "When Mary and John went to the store, John gave a drink to"
CORRUPTED = "When Mary and John went to the store, Mary gave a drink to"

pytestmark = [pytest.mark.real_model, pytest.mark.slow]


@pytest.fixture(scope="module")
def smollm2():
    lens = load_real("smollm2-135m")
    answer, wrong = (lens.tokenizer.encode(t, add_special_tokens=False)[0]
                     for t in (" Mary", " John"))
    return lens, answer, wrong


def test_heads_equal_transformer_lens(smollm2, tl_metric):
    lens, answer, wrong = smollm2
    res = lensnb.activation_patching(lens, CLEAN, CORRUPTED, answer=" Mary", wrong=" John",
                                     site="head", progress=False)
    assert res.clean_value > 3 and res.corrupted_value < -3  # the pair separates the names
    with torch.no_grad():
        _, cache = lens.bridge.run_with_cache(lens.to_tokens(CLEAN))
        truth = tl_patching.get_act_patch_attn_head_out_all_pos(
            lens.bridge, lens.to_tokens(CORRUPTED), cache,
            tl_metric(lens, CLEAN, CORRUPTED, answer, wrong))
    # noise floor: batched memory-efficient attention vs the bridge's eager attention one row
    # at a time, float32: <= 3e-6 measured
    assert torch.allclose(res.scores, truth.float(), atol=1e-4), (res.scores - truth).abs().max()


@pytest.mark.parametrize("site", ["resid_pre", "attn_out", "mlp_out"])
def test_position_sites_equal_transformer_lens(smollm2, tl_metric, site):
    """Four layers' cells: the first, around the handover (19, 22) and the last (the whole
    sweep is 420 unbatched passes per site; BENCHMARKS.md compares all of resid_pre)."""
    lens, answer, wrong = smollm2
    layers = [0, 19, 22, 29]
    res = lensnb.activation_patching(lens, CLEAN, CORRUPTED, answer=" Mary", wrong=" John",
                                     site=site, layers=layers, progress=False)
    cells = pd.DataFrame([(la, p) for la in layers for p in range(res.scores.shape[1])],
                         columns=["layer", "pos"])
    with torch.no_grad():
        _, cache = lens.bridge.run_with_cache(lens.to_tokens(CLEAN))
        truth = tl_patching.generic_activation_patch(
            lens.bridge, lens.to_tokens(CORRUPTED), cache,
            tl_metric(lens, CLEAN, CORRUPTED, answer, wrong),
            tl_patching.layer_pos_patch_setter, site, index_df=cells)
    # noise floor as for heads (<= 3e-6 measured on resid_pre in the benchmark)
    assert torch.allclose(res.scores.flatten(), truth.float(), atol=1e-4), (
        (res.scores.flatten() - truth).abs().max())
    assert res.scores.abs().max() > 0.05  # not all zeros: some cell moves the answer


def test_kv_groups_equal_a_loop(smollm2):
    lens, answer, wrong = smollm2
    layers = [0, 14, 29]
    res = lensnb.activation_patching(lens, CLEAN, CORRUPTED, answer=answer, wrong=wrong,
                                     site="kv_group", layers=layers, progress=False)
    names = [f"blocks.{la}.attn.hook_{x}" for la in layers for x in "kv"]
    _, cache = lens.run_with_cache(CLEAN, names=names)

    def diff(text, hooks=()):
        logits = lens.run_with_hooks(text, fwd_hooks=list(hooks))
        return float(logits[0, -1, answer] - logits[0, -1, wrong])

    c, r = diff(CLEAN), diff(CORRUPTED)
    truth = torch.tensor([[(diff(CORRUPTED, [
        lensnb.patch(la, f"attn.hook_{x}", kv_group=g, every_position=True,
                     value=cache[f"blocks.{la}.attn.hook_{x}"][:, :, g]) for x in "kv"]) - r)
        / (c - r) for g in range(lens.n_key_value_heads)] for la in layers])
    assert torch.allclose(res.scores, truth, atol=1e-4)
