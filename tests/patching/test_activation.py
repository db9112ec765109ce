"""Exact activation patching. Truths: TransformerLens's own ``transformer_lens.patching``
functions run on the lens's bridge with the same metric (resid_pre, attn_out, mlp_out, head,
head_by_pos), loops written here one cell at a time through ``lens.run_with_hooks`` and
``lensnb.patch`` (KV groups, resid_mid), and the same sweep one cell per pass (batching)."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import patching as tl_patching

import lensnb

# Measured noise floor: lensnb's passes run memory-efficient attention on batched rows, TL's
# run the bridge's eager attention one row at a time; normalised scores differ by <= 2e-6.
TOL = 1e-4

TL_FUNCTIONS = {
    "resid_pre": tl_patching.get_act_patch_resid_pre,
    "attn_out": tl_patching.get_act_patch_attn_out,
    "mlp_out": tl_patching.get_act_patch_mlp_out,
    "head": tl_patching.get_act_patch_attn_head_out_all_pos,
    "head_by_pos": tl_patching.get_act_patch_attn_head_out_by_pos,
}


@pytest.fixture(scope="module")
def clean_cache(pair):
    lens, clean, *_ = pair
    with torch.no_grad():
        _, cache = lens.bridge.run_with_cache(lens.to_tokens(clean))
    return cache


@pytest.mark.parametrize("site", list(TL_FUNCTIONS))
def test_exact_equals_transformer_lens(pair, clean_cache, tl_metric, site):
    lens, clean, corrupted, answer, wrong = pair
    res = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site=site, progress=False)
    metric = tl_metric(lens, clean, corrupted, answer, wrong)
    with torch.no_grad():
        truth = TL_FUNCTIONS[site](lens.bridge, lens.to_tokens(corrupted), clean_cache, metric)
    if site == "head_by_pos":  # TL: [layer, pos, head]
        assert res.dims == ("layer", "position", "head")
    assert res.scores.shape == truth.shape
    assert torch.allclose(res.scores, truth.float(), atol=TOL), (res.scores - truth).abs().max()
    assert res.scores.abs().max() > 0.1  # the pair separates: some cell restores it


def _loop(lens, clean, corrupted, answer, wrong, cells_patches):
    """Normalised logit difference of each cell, one plain forward pass per cell."""

    def diff(tokens, hooks=()):
        logits = lens.run_with_hooks(tokens, fwd_hooks=list(hooks))
        return float(logits[0, -1, answer] - logits[0, -1, wrong])

    c, r = diff(lens.to_tokens(clean)), diff(lens.to_tokens(corrupted))
    return [(diff(lens.to_tokens(corrupted), patches) - r) / (c - r)
            for patches in cells_patches]


def test_kv_group_equals_a_loop(pair):
    lens, clean, corrupted, answer, wrong = pair
    names = [f"blocks.{la}.attn.hook_{x}" for la in range(lens.n_layers) for x in "kv"]
    _, cache = lens.run_with_cache(clean, names=names)
    cells = [(la, g) for la in range(lens.n_layers) for g in range(lens.n_key_value_heads)]
    patches = [[lensnb.patch(la, f"attn.hook_{x}", kv_group=g, every_position=True,
                             value=cache[f"blocks.{la}.attn.hook_{x}"][:, :, g]) for x in "kv"]
               for la, g in cells]
    truth = torch.tensor(_loop(lens, clean, corrupted, answer, wrong, patches))
    res = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site="kv_group", progress=False)
    assert res.dims == ("layer", "kv_group")
    assert res.scores.shape == (lens.n_layers, lens.n_key_value_heads)
    assert torch.allclose(res.scores.flatten(), truth.float(), atol=TOL)


def test_resid_mid_patches_the_residual_stream(pair):
    """Truth: on a Llama block ``resid_mid = resid_pre + attn_out``, so setting the attention
    output to ``clean_mid - corrupted_pre`` at one position puts the clean ``resid_mid`` into
    the residual stream itself (the bridge's ``hook_resid_mid`` alone is only the MLP norm's
    input; TransformerLens's ``get_act_patch_resid_mid`` on a bridge patches that input)."""
    lens, clean, corrupted, answer, wrong = pair
    layers, n_pos = [0, 2], lens.to_tokens(clean).shape[1]
    names = [f"blocks.{la}.hook_{h}" for la in layers for h in ("resid_mid", "resid_pre")]
    _, c_cache = lens.run_with_cache(clean, names=names)
    _, r_cache = lens.run_with_cache(corrupted, names=names)
    patches = []
    for la in layers:
        for p in range(n_pos):
            value = (c_cache[f"blocks.{la}.hook_resid_mid"][0, p]
                     - r_cache[f"blocks.{la}.hook_resid_pre"][0, p])
            patches.append([lensnb.patch(la, "hook_attn_out", position=p, value=value)])
    truth = torch.tensor(_loop(lens, clean, corrupted, answer, wrong, patches))
    res = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site="resid_mid", layers=layers, progress=False)
    assert torch.allclose(res.scores.flatten(), truth.float(), atol=TOL)
    # and resid_post of a layer is resid_pre of the next (the same tensor)
    post = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                      site="resid_post", layers=[1], progress=False)
    pre = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site="resid_pre", layers=[2], progress=False)
    assert torch.allclose(post.scores, pre.scores, atol=TOL)


@pytest.mark.parametrize("site", ["resid_pre", "head_by_pos", "kv_group"])
def test_batched_equals_one_cell_at_a_time(pair, site):
    lens, clean, corrupted, answer, wrong = pair
    kw = dict(answer=answer, wrong=wrong, site=site, layers=[1, 3], progress=False)
    if site != "kv_group":
        kw["positions"] = [0, 6, -1]
    one = lensnb.activation_patching(lens, clean, corrupted, batch_size=1, **kw)
    many = lensnb.activation_patching(lens, clean, corrupted, batch_size=5, **kw)
    assert torch.allclose(one.scores, many.scores, atol=1e-5)
    # narrowing picks the same cells as the full sweep
    full = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                      site=site, progress=False)
    index = [1, 3]
    sub = full.scores[index]
    if site != "kv_group":
        sub = sub[:, [0, 6, -1]]
        assert many.positions == [0, 6, full.scores.shape[1] - 1]
    assert torch.allclose(many.scores, sub, atol=1e-5)


def test_result_labels_table_and_top(pair):
    lens, clean, corrupted, answer, wrong = pair
    res = lensnb.activation_patching(lens, clean, corrupted, answer=" y", wrong=" z",
                                     site="head", progress=False)
    assert (res.answer, res.wrong) == (answer, wrong)
    assert res.str_tokens == lens.to_str_tokens(clean)
    assert res.corrupted_str_tokens == lens.to_str_tokens(corrupted)
    with torch.no_grad():
        logits = lens(clean)[0, -1]
    assert res.clean_value == pytest.approx(float(logits[answer] - logits[wrong]), abs=1e-4)
    assert res.kv_groups == lens.kv_groups and res.layers == list(range(lens.n_layers))
    frame = res.to_frame()
    assert list(frame.columns) == ["layer", "head", "kv_group", "score"]
    assert len(frame) == res.scores.numel()
    assert (frame["kv_group"] == frame["head"] // lens.group_size).all()
    top = res.top(3)
    flat = res.scores.flatten().abs().sort(descending=True).values
    assert [abs(s) for _, s in top] == pytest.approx(flat[:3].tolist())
    for (layer, head), score in top:
        assert res.scores[layer, head] == pytest.approx(score)


def test_custom_metric(pair):
    lens, clean, corrupted, answer, wrong = pair
    res = lensnb.activation_patching(
        lens, clean, corrupted, metric=lambda logits: logits[:, answer] - logits[:, wrong],
        site="attn_out", layers=[2], progress=False)
    ref = lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                                     site="attn_out", layers=[2], progress=False)
    assert torch.allclose(res.scores, ref.scores)
    assert res.answer is None


def test_progress_callable_and_quiet(pair, capsys):
    lens, clean, corrupted, answer, wrong = pair
    seen = []
    lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                               site="resid_pre", batch_size=16,
                               progress=lambda done, total: seen.append((done, total)))
    assert seen == [(16, 48), (32, 48), (48, 48)]
    lensnb.activation_patching(lens, clean, corrupted, answer=answer, wrong=wrong,
                               site="resid_pre", batch_size=16, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------- bad inputs
def test_different_lengths_name_both(pair):
    lens, clean, _, answer, wrong = pair
    with pytest.raises(lensnb.InputError, match=r"clean has 12 tokens, corrupted has 13"):
        lensnb.activation_patching(lens, clean, "def add(x, zz):\n    return x +",
                                   answer=answer, wrong=wrong)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(answer=" yy", wrong=" z"), lensnb.InputError, r"answer=' yy' is 2 tokens"),
    (dict(answer=" y", wrong=" z", site="resid"), lensnb.InputError,
     r"unknown site 'resid'.*resid_pre"),
    (dict(answer=" y", wrong=" z", site="head", positions=[1]), lensnb.InputError,
     r"positions= narrows position sites only"),
    (dict(answer=" y", wrong=" z", layers=[9]), lensnb.IndexRangeError, r"valid layers are"),
    (dict(answer=" y", wrong=" z", method="exact", refine=3), lensnb.InputError, "refine="),
    (dict(answer=" y", wrong=" z", method="fast"), lensnb.InputError, "method must be"),
    (dict(answer=" y"), lensnb.InputError, "wrong="),
    (dict(answer=10**7, wrong=" z"), lensnb.IndexRangeError, "answer token id"),
    (dict(metric=lambda logits: logits), lensnb.InputError, r"one\s+value per row"),
    (dict(answer=" y", wrong=" y"), lensnb.InputError, "same metric"),
])
def test_bad_inputs_are_clear_errors(pair, kwargs, error, match):
    lens, clean, corrupted, *_ = pair
    with pytest.raises(error, match=match):
        lensnb.activation_patching(lens, clean, corrupted, progress=False, **kwargs)


# ---------------------------------------------------------------------------- interrupts
class _Interrupt:
    """Raises KeyboardInterrupt from inside the ``n``-th forward pass of a Hugging Face
    module (as a Ctrl-C mid-pass would)."""

    def __init__(self, module, n):
        self.left = n
        self.handle = module.register_forward_hook(self)

    def __call__(self, module, args, out):
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.mark.parametrize("method", ["exact", "attribution"])
@pytest.mark.parametrize("where", ["between passes", "inside a pass"])
def test_an_interrupt_leaves_no_hook(pair, no_hooks_left, method, where):
    lens, clean, corrupted, answer, wrong = pair
    with torch.no_grad():
        before = lens(clean)
    kw = dict(answer=answer, wrong=wrong, site="kv_group", method=method, batch_size=2)

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        if where == "between passes":
            lensnb.activation_patching(lens, clean, corrupted, progress=stop,
                                       **({"refine": 2} if method == "attribution" else {}),
                                       **kw)
        else:
            with _Interrupt(lens.hf_model.model.layers[2].mlp, n=3 if method == "exact" else 1):
                lensnb.activation_patching(lens, clean, corrupted, progress=False, **kw)
    no_hooks_left(lens)
    with torch.no_grad():
        assert torch.equal(lens(clean), before)
    again = lensnb.activation_patching(lens, clean, corrupted, progress=False, **kw)
    assert again.scores.shape == (lens.n_layers, lens.n_key_value_heads)
    no_hooks_left(lens)
