"""A pretend GPU on a CPU-only machine: catch device mixing without CUDA.

    import fake_cuda
    fake_cuda.install()                  # from now on, in this process:
    lens = lensnb.load("demo")           # lensnb.load "moves" every model to cuda:0
    lens.device                          # device(type='cuda', index=0)
    px.imshow(lens(text)[0])             # TypeError: can't convert cuda:0 device type tensor ...
    cpu_scores += lens(text)[0, 0]       # FakeCudaError: Expected all tensors to be on the same ...

A ``TorchFunctionMode`` keeps a mark on every tensor that would live on the GPU: the parameters
and buffers of every model ``lensnb.load`` returns, every tensor a torch function makes from a
marked one, every factory called with ``device="cuda"`` (or a marked tensor's ``.device``) and
every ``.to("cuda")`` / ``.cuda()``. The values are computed on the CPU as usual, so every
assertion in a notebook still runs on the real numbers, while the mode raises the errors CUDA
raises:

- a torch function that mixes a marked tensor with an unmarked one of one or more dimensions
  (0-d CPU tensors mix with CUDA ones, as in CUDA), e.g. ``logits.gather(-1, cpu_index)`` or
  ``cpu_tensor += cuda_tensor``;
- ``.numpy()`` / ``__array__`` of a marked tensor (what plotly, pandas and numpy call);
- indexing an unmarked tensor with a marked index.

``.device`` / ``.is_cuda`` report the pretend device, so code that follows ``tensor.device`` or
``lens.device`` keeps its tensors together. ``.cpu()``, ``.to("cpu")`` and ``.tolist()`` /
``.item()`` / ``float()`` leave the GPU as they do on a real one.

What it does not model: kernels (numerics are the CPU's, not a GPU's), memory, streams,
``torch.cuda.*`` (``is_available()`` stays False; inside the mode ``mem_get_info`` reports an
H200's 140 GiB),
and indexed assignment (``a[idx] = b`` is allowed between devices: permissive, so it never
reports what CUDA accepts). Code that asks ``torch.cuda.is_available()`` to choose a device
takes its CPU branch here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")
FREE_BYTES = 140 * 2**30  # what torch.cuda.mem_get_info reports: an H200's memory
_MARK = "_lensnb_fake_cuda"
# torch functions that accept tensors on different devices, as CUDA does (or that this mode
# lets through: indexed assignment, see the module docstring)
_CROSS_DEVICE = {"__setitem__", "copy_", "index_put_", "set_", "__getitem__",
                 "_has_compatible_shallow_copy_type"}
# results that are host values (Python numbers, sizes, text), never a marked tensor
_HOST = {"tolist", "item", "__bool__", "__int__", "__float__", "__index__", "__len__",
         "__repr__", "__format__", "__str__", "numel", "dim", "size", "__hash__"}
# attributes of a marked tensor that are marked tensors too
_TENSOR_ATTRIBUTES = {"data", "grad", "T", "mT", "H", "mH", "real", "imag"}


class FakeCudaError(RuntimeError):
    """What CUDA would have raised: tensors on two devices in one operation."""


def on_gpu(t: Any) -> bool:
    """Whether ``t`` is a tensor on the pretend GPU."""
    return isinstance(t, torch.Tensor) and t.__dict__.get(_MARK, False)


def _tensors(tree: Any) -> list[torch.Tensor]:
    """The tensors in ``tree`` (nested tuples, lists and dict values): torch functions' args."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [t for item in tree for t in _tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in _tensors(item)]
    return []


def mark(tree: Any, gpu: bool = True) -> Any:
    """Put every tensor in ``tree`` on (``gpu=True``) or off the pretend GPU, in place;
    returns ``tree``."""
    for t in _tensors(tree):
        if gpu:
            t.__dict__[_MARK] = True
        else:
            t.__dict__.pop(_MARK, None)
    return tree


def _is_cuda(device: Any) -> bool | None:
    """True for a CUDA device, False for any other device, None for "not a device"."""
    if isinstance(device, int) and not isinstance(device, bool):
        return True  # .to(0), .cuda(0)
    if isinstance(device, (str, torch.device)):
        try:
            return torch.device(device).type == "cuda"
        except RuntimeError:  # a string that is not a device (a dtype name, ...)
            return None
    return None


def _fresh(t: torch.Tensor, out: Any) -> Any:
    """A new tensor object for a device move that torch answered with ``t`` itself."""
    return out.view_as(out) if out is t else out


class FakeCuda(TorchFunctionMode):
    """The mode: marks what would be on the GPU, raises where CUDA would (module docstring)."""

    active = True

    def __enter__(self) -> FakeCuda:
        self._mem_get_info = torch.cuda.mem_get_info  # what lensnb asks of a GPU's memory
        torch.cuda.mem_get_info = lambda device=None: (FREE_BYTES, FREE_BYTES)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        torch.cuda.mem_get_info = self._mem_get_info
        super().__exit__(*exc)

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if not self.active:
            return func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in ("__get__", "__set__"):
            return self._attribute(func, name, args, kwargs)
        if name in ("to", "cuda", "cpu", "type_as"):
            return self._move(func, name, list(args), kwargs)
        tensors = _tensors(args) + (_tensors(kwargs) if kwargs else [])
        gpu = any(on_gpu(t) for t in tensors)
        if name in ("numpy", "__array__") and gpu:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use "
                            "Tensor.cpu() to copy the tensor to host memory first.")
        if _is_cuda(kwargs.get("device")):  # a factory (or an op) asked for the GPU
            kwargs["device"] = CPU
            return mark(func(*args, **kwargs))
        cpu = [tuple(t.shape) for t in tensors if not on_gpu(t) and t.dim() > 0]
        if gpu and cpu and name not in _CROSS_DEVICE:
            raise FakeCudaError(
                "Expected all tensors to be on the same device, but found at least two "
                f"devices, cuda:0 and cpu! ({name} with CPU tensors of shapes {cpu})")
        if name == "__getitem__" and gpu and not on_gpu(args[0]):
            raise FakeCudaError("indices should be either on cpu or on the same device as the "
                                "indexed tensor (cpu)")
        out = func(*args, **kwargs)
        in_place = name in ("__setitem__", "copy_", "set_") or (
            name.endswith("_") and not name.startswith("_"))
        if in_place or name in _HOST or (name == "__getitem__" and not on_gpu(args[0])):
            return out  # the destination keeps its device; host values are host values
        return mark(out) if gpu else out

    @staticmethod
    def _attribute(func: Callable, name: str, args: tuple, kwargs: dict) -> Any:
        attr = getattr(getattr(func, "__self__", None), "__name__", None)
        if name == "__set__":
            out = func(*args, **kwargs)
            if attr == "data":  # param.data = moved (what Module.to does)
                mark(args[0], on_gpu(args[1]))
            return out
        if attr == "device":
            return CUDA if on_gpu(args[0]) else func(*args, **kwargs)
        if attr == "is_cuda":
            return on_gpu(args[0])
        out = func(*args, **kwargs)
        if on_gpu(args[0]) and attr in _TENSOR_ATTRIBUTES and isinstance(out, torch.Tensor):
            out = mark(_fresh(args[0], out))
        return out

    @staticmethod
    def _move(func: Callable, name: str, args: list, kwargs: dict) -> Any:
        source = args[0]
        target = {"cuda": True, "cpu": False}.get(name)
        if name == "type_as":
            target = on_gpu(args[1])
        if name == "to":
            for i, a in enumerate(args[1:], 1):
                if isinstance(a, torch.Tensor):
                    target = on_gpu(a)
                elif _is_cuda(a) is not None:
                    target = _is_cuda(a)
                    if target:
                        args[i] = CPU
            if _is_cuda(kwargs.get("device")) is not None:
                target = _is_cuda(kwargs["device"])
                if target:
                    kwargs["device"] = CPU
            out = func(*args, **kwargs)
        elif name == "type_as":
            out = func(*args, **kwargs)
        else:  # .cuda() / .cpu(): the values stay where they are
            out = source
        if target is None or target == on_gpu(source):
            return mark(out, on_gpu(source)) if out is not source else out
        return mark(_fresh(source, out), target)


def to_fake_cuda(lens: Any) -> Any:
    """``lens`` "moved" to cuda:0: its parameters and buffers marked, its bridge's ``cfg.device``
    set as ``TransformerBridge`` sets it on a GPU. Returns ``lens``."""
    modules = [lens.bridge, getattr(lens, "hf_model", None)]
    for module in filter(None, modules):
        for t in [*module.parameters(), *module.buffers()]:
            mark(t)
    cfg = getattr(lens.bridge, "cfg", None)
    if cfg is not None and hasattr(cfg, "device"):
        cfg.device = "cuda:0"
    return lens


_MODE: FakeCuda | None = None


def install() -> FakeCuda:
    """Turn the pretend GPU on for the rest of this process (a notebook kernel's first cell):
    the mode entered, ``lensnb.load`` wrapped to return models on it. Idempotent."""
    global _MODE
    if _MODE is not None:
        return _MODE
    import lensnb
    import lensnb.loading

    real_load = lensnb.loading.load

    @functools.wraps(real_load)
    def load(*args: Any, **kwargs: Any) -> Any:
        device = kwargs.pop("device", None)
        if device not in (None, "cuda", "cuda:0", CUDA):
            return real_load(*args, device=device, **kwargs)
        _MODE.active = False  # loading builds the model on the CPU, unmarked, at full speed
        try:
            lens = real_load(*args, **kwargs)
        finally:
            _MODE.active = True
        return to_fake_cuda(lens)

    lensnb.load = load
    lensnb.loading.load = load
    _MODE = FakeCuda()
    _MODE.__enter__()
    return _MODE
