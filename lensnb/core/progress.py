"""lensnb's progress bars: one kind, for every bar lensnb shows and for the libraries' bars
inside lensnb's own calls (loading weights, writing shards, dequantising a GGUF file).

    from lensnb.core import progress
    with progress.bar(4, "demo: layers", leave=False) as bar:   # a tqdm, as usual
        bar.update()
    with progress.library_bars():       # transformers' bars in here become lensnb bars
        model = AutoModelForCausalLM.from_pretrained(path)

In a Jupyter kernel (JupyterLab, Notebook 7, VS Code, Colab) a bar is a plain-text output that
is updated in place (a display handle: ``update_display_data``), not an ipywidget. A notebook
saved from the browser or executed by nbclient / ``nbconvert --execute`` therefore holds the
bar as it ended (``leave=True``: "100%|██████████| 4/4 [00:40<00:00]") or an empty output
(``leave=False``), never the 0 % of its first frame and never a widget state that nbconvert
would hand to the Jupyter widgets manager on a CDN. A bar that ends within ``delay`` seconds
(half a second for one that disappears) is never drawn at all. Outside a kernel it is tqdm's
terminal bar on stderr.

Every lensnb bar is off when ``lensnb.options.progress`` is False, or when Hugging Face's or
tqdm's own switch is set (``HF_HUB_DISABLE_PROGRESS_BARS=1``,
``huggingface_hub.utils.disable_progress_bars()``, ``TQDM_DISABLE=1``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from typing import Any

from .settings import options

# switches users already know, read when a bar is made
ENV_SWITCHES = ("HF_HUB_DISABLE_PROGRESS_BARS", "TQDM_DISABLE")
_TRUE = ("1", "true", "yes", "on")
# the one bar transformers draws without its own tqdm switch (hook): dequantising a GGUF file
_GGUF_LOADER = "transformers.modeling_gguf_pytorch_utils"
# a bar that disappears when done is drawn only once it has run this long: a quick step (the
# demo's weights load in milliseconds) leaves no trace, not even an empty output
TRANSIENT_DELAY_S = 0.5
_NOTEBOOK_BAR: type | None = None


def enabled() -> bool:
    """Whether lensnb draws progress bars now (``lensnb.options.progress`` and the switches
    above)."""
    if not options.progress:
        return False
    if any(os.environ.get(var, "").strip().lower() in _TRUE for var in ENV_SWITCHES):
        return False
    hub = sys.modules.get("huggingface_hub.utils")  # its programmatic switch, if loaded
    return not (hub is not None and hub.are_progress_bars_disabled())


def in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (a front end shows its display outputs)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def bar(total: float | None = None, desc: str = "", *, unit: str = "it", leave: bool = True,
        delay: float | None = None, show: bool | None = None) -> Any:
    """A tqdm bar (``update``, ``set_postfix_str``, ``close``, a context manager): a text
    output updated in place in a notebook, tqdm's terminal bar elsewhere.

    ``leave``: keep the bar in its final state (True) or remove it when it closes (False).
    ``delay``: draw nothing until the bar has run this many seconds (default: 0, or
    ``TRANSIENT_DELAY_S`` for a bar that disappears). ``show``: False turns this bar off; None or
    True draw it unless every lensnb bar is off (``enabled()``)."""
    return _make((), dict(total=total, desc=desc, unit=unit, leave=leave, delay=delay),
                 show=show)


def _make(args: tuple, kwargs: dict, *, show: bool | None = None) -> Any:
    """The bar class for this process, called with tqdm's ``args``/``kwargs``."""
    cls = _notebook_bar() if in_kernel() else _std_tqdm()
    off = show is False or kwargs.get("disable") or not enabled()
    if kwargs.get("delay") is None:
        kwargs["delay"] = 0.0 if kwargs.get("leave", True) else TRANSIENT_DELAY_S
    return cls(*args, **{**kwargs, "disable": bool(off)})


@contextlib.contextmanager
def library_bars(*, gguf: bool = False) -> Iterator[None]:
    """Inside the block, transformers' progress bars ("Loading weights", "Writing model
    shards", through its public ``set_tqdm_hook``) are lensnb bars that disappear when done,
    and off when lensnb's are; ``gguf=True`` does the same for the bar transformers draws
    while it dequantises a GGUF file. Restores the previous hooks on exit."""
    from transformers.utils import logging as hf_logging

    def lensnb_bar(*args: Any, **kwargs: Any) -> Any:  # tqdm(iterable, desc=..., ...)
        return _make(args, {**kwargs, "leave": False})

    def hook(factory: Any, args: tuple, kwargs: dict) -> Any:
        # factory is tqdm.auto.tqdm, or transformers' empty bar when its bars are off
        return lensnb_bar(*args, **kwargs) if factory.__module__.startswith("tqdm") else (
            factory(*args, **kwargs))

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)  # transformers >= 5.20
    previous = set_hook(hook) if set_hook is not None else None
    loader = None
    if gguf and importlib.util.find_spec("gguf") is not None:
        loader = importlib.import_module(_GGUF_LOADER)
    old_tqdm = getattr(loader, "tqdm", None)
    if old_tqdm is not None:
        loader.tqdm = lensnb_bar
    try:
        yield
    finally:
        if old_tqdm is not None:
            loader.tqdm = old_tqdm
        if set_hook is not None:
            set_hook(previous)


def _std_tqdm() -> type:
    from tqdm.std import tqdm

    return tqdm


class _Discard:
    """Where a notebook bar's tqdm writes its terminal text (nowhere: the display shows it)."""

    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _notebook_bar() -> type:
    """tqdm's bar drawn into a display output updated in place (the class, built once: tqdm
    is imported only when a bar is made)."""
    global _NOTEBOOK_BAR
    if _NOTEBOOK_BAR is not None:
        return _NOTEBOOK_BAR
    tqdm = _std_tqdm()

    class NotebookBar(tqdm):
        """``tqdm.std.tqdm`` whose ``display`` writes ``text/plain`` into one display output:
        shown on the first draw, updated on every refresh, emptied on close when
        ``leave=False``."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._handle: Any = None
            # block characters: the text is shown by the front end, not by a terminal
            super().__init__(*args, **{"ascii": False, **kwargs, "file": _Discard()})

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            text = self.__str__() if msg is None else msg
            if self._handle is None:
                if not text:
                    return True  # never drawn: nothing to clear
                from IPython.display import display

                self._handle = display({"text/plain": text}, raw=True, display_id=True)
            else:
                self._handle.update({"text/plain": text}, raw=True)
            return True

    _NOTEBOOK_BAR = NotebookBar
    return NotebookBar
