"""Browser tier: JupyterLab driven by Playwright in Debian's chromium.

Fixtures for every widget's browser tests (one JupyterLab server and one chromium per session):

    def test_x(jupyter_page, lab_kernel):
        page = jupyter_page(["import lensnb", "w = lensnb.SomeWidget(...)", "w"])
        root = widget_output(page, "lensnb-something")  # jupyterlab_harness helper
        root.click(...)
        assert lab_kernel(page).eval("print(w.value)") == "..."
        screenshot(root, "some_widget")                     # test-output/screenshots/

``jupyter_page(cells, name=None)`` writes a notebook (with a kernelspec) from code cells, opens
it with ``?reset``, runs all cells and returns the Playwright ``Page`` once the last one ran.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyterlab_harness import (
    JupyterLabServer,
    assert_clean,
    kernel_eval,
    launch_chromium,
    open_and_run,
    watch_page,
    write_notebook,
)


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
    # the docs site reuses the tutorials the notebook tests executed: build it after them
    items.sort(key=lambda item: item.get_closest_marker("docs_site") is not None)


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory) -> Iterator[JupyterLabServer]:
    """One JupyterLab server for the session (free 127.0.0.1 port, its own settings dirs)."""
    server = JupyterLabServer(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium(playwright) -> Iterator[Any]:
    """Debian's chromium through Playwright (one browser per session)."""
    try:
        browser = launch_chromium(playwright)
    except FileNotFoundError as err:
        pytest.skip(f"browser tests need Debian's chromium: {err}")
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def jupyter_page(jupyter_server, chromium, request) -> Iterator[Callable[..., Any]]:
    """``jupyter_page(cells, name=None) -> Page``: a notebook opened in JupyterLab, all run.

    Module-scoped: open a notebook once in a module-scoped fixture and share its page. Every
    page is watched from the start: a console error, failed request or request off this
    machine fails the run (right after the notebook ran, and again when the module ends)."""
    counter = itertools.count()
    contexts: list[Any] = []
    pages: list[Any] = []

    def open_notebook(cells: list[str], name: str | None = None) -> Any:
        stem = name or f"{request.node.name}-{next(counter)}".replace("[", "-").strip("]")
        nb = f"{stem}.ipynb"
        write_notebook(Path(jupyter_server.notebooks) / nb, cells)
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(context)
        page = context.new_page()
        page.lensnb_notebook = nb
        watch_page(page)
        pages.append(page)
        open_and_run(page, jupyter_server, nb)
        assert_clean(page)
        return page

    yield open_notebook
    problems = [p for page in pages for p in page.lensnb_problems]
    for context in contexts:
        context.close()
    jupyter_server.shutdown_kernels()  # free the kernels
    assert not problems, "; ".join(problems[:10])


class LabKernel:
    """The kernel behind an open notebook page: ``.eval(code) -> stdout``."""

    def __init__(self, server: JupyterLabServer, notebook: str):
        self.client = server.kernel_client(notebook)

    def eval(self, code: str, timeout: float = 30.0) -> str:
        return kernel_eval(self.client, code, timeout)

    def eval_when(self, code: str, want: str, timeout: float = 10.0) -> str:
        """``eval(code)`` once it prints ``want`` (a trait the browser set reaches the kernel
        asynchronously), or its last output after ``timeout`` seconds: assert on the result."""
        deadline = time.monotonic() + timeout
        got = self.eval(code)
        while got != want and time.monotonic() < deadline:
            time.sleep(0.1)
            got = self.eval(code)
        return got

    def close(self) -> None:
        self.client.stop_channels()


@pytest.fixture
def lab_kernel(jupyter_server) -> Iterator[Callable[[Any], LabKernel]]:
    """``lab_kernel(page).eval("print(x)")``: run code in the kernel of a ``jupyter_page``."""
    made: list[LabKernel] = []

    def connect(page: Any) -> LabKernel:
        k = LabKernel(jupyter_server, page.lensnb_notebook)
        made.append(k)
        return k

    yield connect
    for k in made:
        k.close()
