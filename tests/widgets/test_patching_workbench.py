"""PatchingWorkbench's Python side, through the real message path (``_on_frontend_msg`` with the
wire envelope, replies captured from ``send``): sweeps equal ``lensnb.activation_patching`` and
a loop over ``lens.run_with_hooks`` written here, the ablation board equals hooks written by
hand, DLA / logit lens / attention replies equal their truths, bad requests are
``RequestError``s, and on every family a site or view that does not apply is disabled with the
reason instead of crashing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import traitlets
from real_fixtures import load_real

import lensnb
from lensnb import InputError, PatchingWorkbench, UnsupportedFeatureError
from lensnb.widgets.protocol import decode

# the demo model (trained on Python code) tells `os.` from `re.`: logit diff
# path - match is +7.5 on the clean prompt, -6.2 on the corrupted one
CLEAN, CORRUPTED = "import os\nos.", "import re\nre."
ANSWER, WRONG = "path", "match"
# float32 forward passes batched differently (a chunk of rows vs one row) differ by ~1e-6 in
# the logits; over a clean-corrupted span of 13.6 that is ~1e-7 in a score (measured <= 2e-7)
ATOL = 1e-5


@pytest.fixture(scope="module")
def wb(demo_lens):
    return PatchingWorkbench(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG)


def wire(widget, name, **params):
    """One request through the message path: ``(Answer, [progress messages])``; an error reply
    is raised as ``RuntimeError(error text)``."""
    sent = []
    widget.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))
    try:
        widget._on_frontend_msg(widget, {"kind": "request", "id": "t1", "request": {
            "name": name, "params": params}}, [])
    finally:
        del widget.send
    (content, buffers), = [m for m in sent if m[0].get("kind") == "reply"]
    assert content["id"] == "t1"
    if "error" in content:
        raise RuntimeError(content["error"])
    return decode(content["reply"], buffers), [m[0] for m in sent if m[0]["kind"] == "progress"]


def sweep_by_wire(widget, site, method="exact"):
    """Ask ``sweep_step`` until complete, as the frontend does: (last Answer, steps, progress)."""
    steps, progress = [], []
    while True:
        got, prog = wire(widget, "sweep_step", site=site, method=method)
        steps.append(got.reply["done"])
        progress += prog
        if got.reply["complete"]:
            return got, steps, progress


def _id(lens, text):
    (i,) = lens.tokenizer(text, add_special_tokens=False)["input_ids"]
    return i


def metric(logits, lens, answer=ANSWER, wrong=WRONG):
    """The logit difference answer - wrong at the last position of ``logits [1, pos, vocab]``."""
    return float(logits[0, -1, _id(lens, answer)] - logits[0, -1, _id(lens, wrong)])


def loop_scores(lens, site, n_pos):
    """Activation patching written out: one ``run_with_hooks`` of the corrupted prompt per cell,
    the clean activation written in by a plain hook function."""
    clean, corrupted = lens.to_tokens(CLEAN), lens.to_tokens(CORRUPTED)
    _, cache = lens.run_with_cache(clean)
    m_clean, m_corr = metric(lens(clean), lens), metric(lens(corrupted), lens)
    n_cols = {"resid_pre": n_pos, "head": lens.n_heads, "kv_group": lens.n_key_value_heads}[site]
    out = torch.zeros(lens.n_layers, n_cols)
    for layer in range(lens.n_layers):
        for j in range(n_cols):
            if site == "resid_pre":
                names = [f"blocks.{layer}.hook_resid_pre"]
            elif site == "head":
                names = [f"blocks.{layer}.attn.hook_z"]
            else:
                names = [f"blocks.{layer}.attn.hook_k", f"blocks.{layer}.attn.hook_v"]

            def write(act, hook, j=j):
                act = act.clone()
                if site == "resid_pre":
                    act[:, j] = cache[hook.name][:, j]
                else:  # [batch, pos, heads, d_head]: one head (or KV head), every position
                    act[:, :, j] = cache[hook.name][:, :, j]
                return act

            m = metric(lens.run_with_hooks(corrupted, fwd_hooks=[(n, write) for n in names]), lens)
            out[layer, j] = (m - m_corr) / (m_clean - m_corr)
    return out


@pytest.mark.parametrize("site", ["resid_pre", "head", "kv_group"])
def test_sweep_through_the_wire_equals_the_api_and_a_loop(demo_lens, site):
    # 6 patched copies per pass: a step is whole passes, the first one pass of layers
    widget = PatchingWorkbench(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                               batch_size=6)
    got, steps, progress = sweep_by_wire(widget, site)
    scores = got.buffers["scores"]
    cells_per_layer = {"resid_pre": len(widget.clean_tokens), "head": demo_lens.n_heads,
                       "kv_group": demo_lens.n_key_value_heads}[site]
    total = cells_per_layer * demo_lens.n_layers  # the passes of one call are balanced:
    rows = -(-total // -(-total // 6))  # ceil(total / ceil(total / 6)) copies per pass
    per_pass = max(1, rows // cells_per_layer)
    assert steps[0] == list(range(per_pass))
    assert len(steps) > 1 and sorted(steps[-1]) == list(range(demo_lens.n_layers))
    assert progress and all(0 < p["fraction"] <= 1 for p in progress)
    assert got.reply["dims"] == list(lensnb.patching.sites.SITES[site].dims)
    api = lensnb.activation_patching(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                                     site=site, progress=False)
    np.testing.assert_allclose(scores, api.scores.numpy(), atol=ATOL, rtol=0)
    loop = loop_scores(demo_lens, site, len(widget.clean_tokens))
    np.testing.assert_allclose(scores, loop.numpy(), atol=ATOL, rtol=0)
    assert np.abs(scores).max() > 0.1  # not a sweep of zeros
    assert widget.sweeps[f"{site}/exact"] == {"done": 4, "total": 4}
    again, _ = wire(widget, "sweep_step", site=site)  # cached per (site, method): no new work
    assert again.reply["seconds"] == got.reply["seconds"]
    np.testing.assert_array_equal(again.buffers["scores"], scores)
    # the Python side returns the same sweep, joined into one PatchingResult
    res = widget.sweep(site)
    np.testing.assert_array_equal(res.scores.numpy(), scores)
    assert res.layers == list(range(demo_lens.n_layers))


def test_results_computed_before_are_shown_not_recomputed(demo_lens):
    heads = lensnb.activation_patching(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                                       site="head", progress=False)
    widget = PatchingWorkbench(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                               results=[heads])
    assert widget.sweeps == {"head/exact": {"done": 4, "total": 4}}
    got, _ = wire(widget, "sweep_step", site="head")
    assert got.reply["complete"] and got.reply["seconds"] == 0  # nothing ran
    np.testing.assert_array_equal(got.buffers["scores"], heads.scores.numpy())
    assert widget.sweep("head") is heads
    other = lensnb.activation_patching(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong="stat",
                                       site="head", progress=False)
    with pytest.raises(InputError, match="another wrong token"):
        PatchingWorkbench(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                          results=[other])


def test_an_interrupt_is_an_error_reply_and_the_rows_stay(demo_lens, monkeypatch):
    widget = PatchingWorkbench(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                               batch_size=6)
    wire(widget, "sweep_step", site="resid_pre")  # layer 0
    from lensnb.widgets import patching_data

    real = patching_data.activation_patching

    def interrupted(*args, progress=None, **kwargs):
        progress(1, 6)
        raise KeyboardInterrupt

    monkeypatch.setattr(patching_data, "activation_patching", interrupted)
    with pytest.raises(RuntimeError, match="^Interrupted: the rows finished before are kept"):
        wire(widget, "sweep_step", site="resid_pre")
    monkeypatch.setattr(patching_data, "activation_patching", real)
    got, _, _ = sweep_by_wire(widget, "resid_pre")
    api = lensnb.activation_patching(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                                     progress=False)
    np.testing.assert_allclose(got.buffers["scores"], api.scores.numpy(), atol=ATOL, rtol=0)


def test_attribution_sweep_is_the_apis(wb, demo_lens):
    got, steps, _ = sweep_by_wire(wb, "attn_out", "attribution")
    assert len(steps) == 1  # two forward passes and a backward cover every layer at once
    api = lensnb.activation_patching(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                                     site="attn_out", method="attribution", progress=False)
    np.testing.assert_allclose(got.buffers["scores"], api.scores.numpy(), atol=ATOL, rtol=0)


def zero_hooks(heads, kv_groups):
    def zero(index):
        def fn(act, hook):
            act = act.clone()
            act[:, :, index] = 0.0  # [batch, pos, heads, d_head]
            return act
        return fn

    return ([(f"blocks.{la}.attn.hook_z", zero(h)) for la, h in heads]
            + [(f"blocks.{la}.attn.hook_{kv}", zero(g)) for la, g in kv_groups for kv in "kv"])


def test_ablation_board_equals_run_with_hooks_by_hand(wb, demo_lens):
    clean = demo_lens.to_tokens(CLEAN)
    heads, groups = [[3, 5], [1, 2]], [[2, 1]]
    got, _ = wire(wb, "ablate", heads=heads, kv_groups=groups, how="zero")
    by_hand = metric(demo_lens.run_with_hooks(clean, fwd_hooks=zero_hooks(
        [(1, 2), (3, 5)], [(2, 1)])), demo_lens)
    assert got.reply["value"] == pytest.approx(by_hand, abs=1e-5)
    assert abs(by_hand - got.reply["clean_value"]) > 0.05  # the ablation changed something
    assert got.reply["clean_value"] == pytest.approx(metric(demo_lens(clean), demo_lens), abs=1e-5)
    assert got.reply["corrupted_value"] == pytest.approx(
        metric(demo_lens(CORRUPTED), demo_lens), abs=1e-5)
    span = got.reply["clean_value"] - got.reply["corrupted_value"]
    assert got.reply["normalised"] == pytest.approx(
        (got.reply["value"] - got.reply["corrupted_value"]) / span)
    assert wb.ablated_heads == [[1, 2], [3, 5]] and wb.ablated_kv_groups == [[2, 1]]

    # mean ablation: the mean of hook_z over every position of both prompts, written by hand
    _, c1 = demo_lens.run_with_cache(clean)
    _, c2 = demo_lens.run_with_cache(CORRUPTED)
    z = torch.cat([c1["blocks.1.attn.hook_z"][0], c2["blocks.1.attn.hook_z"][0]])  # [pos, h, d]

    def mean_head(act, hook):
        act = act.clone()
        act[:, :, 2] = z.double().mean(0)[2].to(act.dtype)
        return act

    got, _ = wire(wb, "ablate", heads=[[1, 2]], kv_groups=[], how="mean")
    by_hand = metric(demo_lens.run_with_hooks(
        clean, fwd_hooks=[("blocks.1.attn.hook_z", mean_head)]), demo_lens)
    assert got.reply["value"] == pytest.approx(by_hand, abs=1e-5)
    assert wb.ablate_how == "mean"
    assert wb.ablate([], []) == pytest.approx(got.reply["clean_value"])  # all back on


def test_dla_logit_lens_and_attention_replies(wb, demo_lens):
    clean = demo_lens.to_tokens(CLEAN)
    got, _ = wire(wb, "dla")
    dla = demo_lens.logit_attribution(clean, ANSWER, WRONG)
    np.testing.assert_allclose(got.buffers["heads"], dla.heads.numpy(), rtol=1e-6, atol=1e-7)
    assert got.reply["logit_diff"] == pytest.approx(metric(demo_lens(clean), demo_lens), abs=1e-4)

    got, _ = wire(wb, "logit_lens", prompt="corrupted")
    # the last row is the model's own prediction
    probs = demo_lens(CORRUPTED)[0].float().softmax(-1)  # [pos, d_vocab]
    np.testing.assert_allclose(got.buffers["answer"][-1], probs[:, _id(demo_lens, ANSWER)],
                               atol=1e-5)
    np.testing.assert_allclose(got.buffers["wrong"][-1], probs[:, _id(demo_lens, WRONG)],
                               atol=1e-5)
    assert [c[0] for c in got.reply["top_tokens"][-1]] == [
        demo_lens.tokenizer.decode([i]) for i in probs.argmax(-1).tolist()]
    assert len(got.reply["rows"]) == demo_lens.n_layers + 1

    # the explorer's head view, relayed: hook_pattern of the clean prompt
    _, cache = demo_lens.run_with_cache(clean, names="blocks.2.attn.hook_pattern")
    pattern = cache["blocks.2.attn.hook_pattern"][0, 6]  # [q, k]
    got, _ = wire(wb, "row", layer=2, head=6, pos=len(wb.clean_tokens) - 1)
    np.testing.assert_allclose(got.buffers["weights"], pattern[-1].numpy(), rtol=1e-5, atol=1e-7)
    got, _ = wire(wb, "group", layer=2, kv_group=1)
    assert [p["name"] for p in got.reply["panels"]][:4] == [
        f"H{h}" for h in demo_lens.heads_of_kv(1)]


@pytest.mark.parametrize(("name", "params", "message"), [
    ("sweep", {"site": "resid_middle"}, "field 'site' must be one of"),
    ("sweep_step", {"site": "head", "method": "gradient"}, "field 'method' must be one of"),
    ("sweep", {}, "needs field 'site'"),
    ("ablate", {"heads": [[9, 0]], "kv_groups": []}, "field 'heads' item [9, 0]: layer"),
    ("ablate", {"heads": [], "kv_groups": [[0, 2]]}, "field 'kv_groups' item [0, 2]"),
    ("ablate", {"heads": [[1]], "kv_groups": []}, "is not a [layer, index] pair"),
    ("ablate", {"heads": [["a", 1]], "kv_groups": []}, "must be an int"),
    ("ablate", {"heads": []}, "needs field 'kv_groups'"),
    ("ablate", {"heads": [], "kv_groups": [], "how": "resample"}, "field 'how' must be one of"),
    ("logit_lens", {"prompt": "both"}, "field 'prompt' must be one of"),
    ("nope", {}, "unknown request kind 'nope'"),
])
def test_bad_requests_give_request_errors(wb, name, params, message):
    with pytest.raises(RuntimeError) as err:
        wire(wb, name, **params)
    assert str(err.value).startswith("RequestError: ")
    assert message in str(err.value)


def test_python_side_checks(wb, demo_lens):
    with pytest.raises(traitlets.TraitError, match="head 8 is out of range: valid heads are 0..7"):
        wb.selected = {"kind": "head", "layer": 1, "head": 8}
    with pytest.raises(traitlets.TraitError, match="selected must be"):
        wb.selected = {"kind": "neuron", "layer": 1}
    wb.select(2, kv_group=1)
    assert wb.selected == {"kind": "kv_group", "layer": 2, "kv_group": 1}
    with pytest.raises(InputError, match="site must be one of"):
        wb.sweep("resid_middle")
    with pytest.raises(InputError, match=r"ablate: field 'heads' item \[9, 0\]: layer"):
        wb.ablate([(9, 0)])
    with pytest.raises(InputError, match="clean has 6.*corrupted has 7|6.*7"):
        PatchingWorkbench(demo_lens, CLEAN, CORRUPTED + "x", answer=ANSWER, wrong=WRONG)


def test_figure_export_and_repr(demo_lens):
    widget = PatchingWorkbench(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                               site="mlp_out")
    fig = widget.figure(style="paper")  # computes the current sweep
    res = widget.sweep("mlp_out")
    np.testing.assert_array_equal(np.asarray(fig.data[0].z, dtype=np.float32), res.scores.numpy())
    assert "mlp_out/exact" in repr(widget)
    widget.tab = "logit_lens"
    assert widget.figure().data[0].type == "heatmap"
    # a standalone export pre-answers every computed sweep (and computes nothing new)
    requests = widget.export_requests()
    assert {"name": "sweep", "params": {"site": "mlp_out", "method": "exact"}} in requests
    assert not any(r["name"] == "sweep_step" for r in requests)
    from lensnb.export.html import widget_payload

    payload = widget_payload(widget)
    assert [k for k, v in widget.sweeps.items() if v["done"]] == ["mlp_out/exact"]
    (reply,) = [r for r in payload["replies"] if r["request"]["name"] == "sweep"]
    assert reply["reply"]["complete"] is True


def test_export_requests_bound_the_attention_views(demo_lens, monkeypatch):
    from lensnb.widgets import patching_workbench as module

    widget = PatchingWorkbench(demo_lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG)
    assert [r["name"] for r in widget.export_requests()] == ["ablate"]  # fresh: nothing to carry
    widget.select(2, head=5)
    names = [r["name"] for r in widget.export_requests()]
    assert names.count("tile") == demo_lens.n_layers * demo_lens.n_heads  # small: every head
    monkeypatch.setattr(module, "EXPORT_ATTENTION_CELLS", 0)  # as on a larger model
    tiles = [r["params"] for r in widget.export_requests() if r["name"] == "tile"]
    assert {(t["layer"], t["head"]) for t in tiles} == {(2, h) for h in range(8)}
    rows = [r["params"] for r in widget.export_requests() if r["name"] == "row"]
    assert [r["pos"] for r in rows] == list(range(len(widget.clean_tokens)))  # exact hover


# tiny random models of the families whose layouts differ from the demo's (LayerNorm, parallel
# attention and MLP, fused QKV, MQA): every site either sweeps or is disabled with the reason
FAMILIES = {
    "gpt_neox-parallel": ("gpt_neox", dict(use_parallel_residual=True, rotary_pct=0.25,
                                           num_key_value_heads=4)),
    "gpt2": ("gpt2", dict(n_positions=512, num_key_value_heads=4)),
    "mqa-gemma": ("gemma", dict(num_attention_heads=8, num_key_value_heads=1, head_dim=16)),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_disables_what_does_not_apply(make_tiny_model, family):
    model_type, overrides = FAMILIES[family]
    lens = lensnb.load(str(make_tiny_model(model_type, **overrides)))
    widget = PatchingWorkbench(lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG)
    for row in widget.sites:
        reason = row["reasons"]["exact"]
        if reason:
            with pytest.raises(UnsupportedFeatureError):
                lensnb.activation_patching(lens, CLEAN, CORRUPTED, answer=ANSWER, wrong=WRONG,
                                           site=row["site"], progress=False)
            with pytest.raises(RuntimeError, match="RequestError: .*does not apply"):
                wire(widget, "sweep_step", site=row["site"])
            with pytest.raises(UnsupportedFeatureError):
                widget.sweep(row["site"])
            continue
        got, _, _ = sweep_by_wire(widget, row["site"])
        assert np.isfinite(got.buffers["scores"]).all(), row["site"]
    if family == "gpt_neox-parallel":
        assert "parallel" in widget.sites[1]["reasons"]["exact"]  # resid_mid
    got, _ = wire(widget, "ablate", heads=[[0, 0]], kv_groups=[[1, 0]])
    assert np.isfinite(got.reply["value"])
    wire(widget, "logit_lens")
    try:  # DLA: an answer, or a refusal that becomes the view's reason
        wire(widget, "dla")
    except RuntimeError as err:
        assert str(err).startswith("RequestError: the dla view does not apply")
        assert widget.reasons["dla"]


def test_vision_lens_every_switch_says_why():
    vision = lensnb.load("demo-vision")
    widget = PatchingWorkbench(vision, "a b c", "a b d", answer="a", wrong="b")
    assert all(r["reasons"][m] for r in widget.sites for m in ("exact", "attribution"))
    assert "cross-attention" in widget.sites[0]["reasons"]["exact"]
    assert widget.reasons["dla"] and widget.reasons["logit_lens"]
    assert not widget.reasons["attention"] and widget.attention_layers == [0, 2]
    got, _ = wire(widget, "ablate", heads=[[0, 1]], kv_groups=[])
    assert np.isfinite(got.reply["value"])
    with pytest.raises(UnsupportedFeatureError, match="cross-attention"):
        PatchingWorkbench(vision, "a b c", "a b d", answer="a", wrong="b", site="head")


@pytest.mark.slow
@pytest.mark.real_model
def test_smollm2_kv_group_sweep_and_its_ablation():
    """SmolLM2-135M (9 query heads on 3 KV groups), the issue's indirect-object pair: the KV-group
    sweep through the wire == activation_patching, and switching off the group that carries the
    most == its hook_k / hook_v zeroed by hand."""
    lens = load_real("smollm2-135m")
    clean = "When Mary and John went to the store, John gave a drink to"
    corrupted = "When Mary and John went to the store, Mary gave a drink to"
    widget = PatchingWorkbench(lens, clean, corrupted, answer=" Mary", wrong=" John")
    got, _, _ = sweep_by_wire(widget, "kv_group")
    api = lensnb.activation_patching(lens, clean, corrupted, answer=" Mary", wrong=" John",
                                     site="kv_group", progress=False)
    # measured 0.0 apart (two steps of 45 rows vs one call's passes); 1e-4 leaves room for
    # rows batched differently through 30 float32 layers
    np.testing.assert_allclose(got.buffers["scores"], api.scores.numpy(), atol=1e-4, rtol=0)
    layer, group = np.unravel_index(np.abs(got.buffers["scores"]).argmax(),
                                    got.buffers["scores"].shape)
    got, _ = wire(widget, "ablate", heads=[], kv_groups=[[int(layer), int(group)]])
    by_hand = metric(lens.run_with_hooks(clean, fwd_hooks=zero_hooks(
        [], [(int(layer), int(group))])), lens, " Mary", " John")
    assert got.reply["value"] == pytest.approx(by_hand, abs=1e-4)  # measured 0.0 apart
    assert got.reply["clean_value"] - by_hand > 0.5  # that group matters to the answer
