"""The pretend GPU of tests/fake_cuda.py raises where CUDA raises and lets through what CUDA
lets through. Each case is a line of user code (the device mixings of the tutorials among
them) with what CUDA does with it; on a machine with a GPU the same table runs on the real
device too (scripts/gpu_check.sh), which is the check that the table itself is right."""

from __future__ import annotations

import contextlib

import fake_cuda
import numpy as np
import pytest
import torch

# (case, code, what CUDA does: None = runs, else the exception type); `g*` live on the GPU,
# `c*` on the CPU; `c0` is a 0-d CPU tensor (a scalar, which CUDA lets mix)
CASES = [
    ("add a CPU vector", "g + c", RuntimeError),
    ("add a 0-d CPU tensor", "g + c0", None),
    ("add a Python number", "g * 2.0", None),
    ("gather with a CPU index (01 cell 18)", "g2.gather(-1, ci[:, None])", RuntimeError),
    ("numpy of a GPU tensor (06 cell 13)", "g.numpy()", TypeError),
    ("np.asarray, as plotly/pandas do (01 cell 12)", "np.asarray(g)", TypeError),
    ("numpy after .cpu()", "g.cpu().numpy()", None),
    ("index a GPU tensor with CPU indices", "g[ci]", None),
    ("index a CPU tensor with GPU indices", "c[gi]", RuntimeError),
    ("add a GPU tensor into a CPU one (04 cell 25)", "c.add_(g)", RuntimeError),
    ("subtract CPU from GPU (02 cell 17)", "g - c", RuntimeError),
    ("mask a GPU pattern with a CPU mask (03 cell 28)", "g2 * (c2 > 0)", RuntimeError),
    ("copy a GPU slice into a CPU tensor", "c.clone().copy_(g)", None),
    ("assign a GPU slice into a CPU tensor", "c.clone().__setitem__(slice(0, 2), g[:2])", None),
    ("concatenate GPU and CPU", "torch.cat([g, c])", RuntimeError),
    ("compare GPU and CPU with torch.equal", "torch.equal(g, c)", RuntimeError),
    ("a factory on the tensor's device", "torch.zeros(4, device=g.device) + g", None),
    ("a factory on the CPU", "torch.zeros(4) + g", RuntimeError),
    ("host values", "(g.tolist(), float(g[0]), f'{g[0]:.2f}', int(g.argmax()))", None),
    ("a GPU module on a CPU input", "lin(c)", RuntimeError),
    ("a GPU module on a GPU input", "lin(g)", None),
    ("torch.where across devices", "torch.where(g > 0, g, c)", RuntimeError),
    ("the device is CUDA", "assert g.device.type == 'cuda' and g.is_cuda", None),
    ("results stay on the GPU", "assert (g + g).device.type == 'cuda'", None),
    (".cpu() leaves it", "assert g.cpu().device.type == 'cpu'", None),
]


@contextlib.contextmanager
def fake_device():
    mode = fake_cuda.FakeCuda()
    with mode:
        yield torch.device("cuda", 0)


@contextlib.contextmanager
def real_device():
    yield torch.device("cuda", 0)


DEVICES = {"fake": fake_device}
if torch.cuda.is_available():  # scripts/gpu_check.sh: the same table on the real device
    DEVICES["cuda"] = real_device


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize(("case", "code", "raises"), CASES, ids=[c[0] for c in CASES])
def test_raises_where_cuda_raises(device, case, code, raises):
    with DEVICES[device]() as gpu:
        c = torch.arange(4.0)
        c2 = torch.arange(16.0).reshape(4, 4)
        ci = torch.tensor([3, 0, 1, 2])
        scope = dict(torch=torch, np=np, c=c, c2=c2, ci=ci, c0=torch.tensor(2.0),
                     g=c.to(gpu), g2=c2.to(gpu), gi=ci.to(gpu),
                     lin=torch.nn.Linear(4, 4).to(gpu))
        if raises is None:
            exec(code, scope)
        else:
            with pytest.raises(raises):
                exec(code, scope)


def test_a_lens_moved_to_the_pretend_gpu_runs_there(demo_lens):
    """A whole forward pass with the demo's weights on the pretend GPU (a copy of the demo, so
    the shared one stays on the CPU): the logits are the CPU run's, on cuda; a CPU tensor
    meeting them raises."""
    import lensnb

    want = demo_lens("def f(x):")
    lens = fake_cuda.to_fake_cuda(lensnb.load("demo"))
    with fake_cuda.FakeCuda():
        assert lens.device.type == "cuda"
        logits = lens("def f(x):")
        assert logits.device.type == "cuda" and torch.equal(logits.cpu(), want)
        with pytest.raises(RuntimeError, match="same device"):
            logits[0, :, :4] + torch.ones(4, 4)


def test_results_for_plots_come_back_on_the_cpu_from_a_gpu_model():
    """What lensnb hands back for plots and tables is on the CPU (their docstrings say so),
    whatever the model's device: on the pretend GPU, each is checked and handed to numpy, as
    plotly and pandas do."""
    import lensnb

    lens = fake_cuda.to_fake_cuda(lensnb.load("demo"))
    text = "def add(a, b):\n    return a + b\n"
    with fake_cuda.FakeCuda():
        view = lens.kv_group_view(text, layer=1)
        dla = lens.logit_attribution(text, " return")
        usage = lensnb.rope.frequency_usage(lens, text)
        profile = lensnb.long_context_profile(lens, n_tokens=256, progress=False)
        results = {"KVGroupView": [view.patterns, view.mean, view.max, view.spread,
                                   view.spread_score],
                   "LogitAttribution": [dla.heads, dla.mlp, dla.attn_bias],
                   "frequency_usage": [usage],
                   "LongContextProfile": [profile.distance, profile.sink,
                                          *profile.reach.values()]}
        for name, tensors in results.items():
            assert all(not fake_cuda.on_gpu(t) for t in tensors), name
            [np.asarray(t) for t in tensors]
        profile.table()
        profile.figure()
        lensnb.AttentionExplorer(lens, text, layers=[1], layer=1).figure()
