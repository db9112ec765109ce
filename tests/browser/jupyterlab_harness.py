"""Drive a real JupyterLab in Debian's chromium: start a server, open a notebook, run it.

The same server also serves Jupyter Notebook 7 (the ``notebook`` package, a JupyterLab app on
the same Jupyter server): ``open_notebook(..., ui="notebook")`` opens a notebook there.

Used by ``tests/browser/conftest.py`` (fixtures) and by ``bench/`` (timings in the browser).
Everything is local: the server listens on 127.0.0.1 with its own config, settings, workspace
and runtime directories, the news/announcement pop-ups are off, and chromium is started with
networking features off.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = os.environ.get("LENSNB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
DONE_MARK = "lensnb-harness: all cells ran"
# first cell of a widget test notebook: the embedded demo model as `lens`, one torch thread
LOAD_DEMO = "import torch\ntorch.set_num_threads(1)\nimport lensnb\nlens = lensnb.load('demo')"
# JupyterLab settings: every cell rendered (no windowing), no news, no update checks
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}
DISABLED_EXTENSIONS = {"@jupyterlab/apputils-extension:announcements": True}
UIS = ("lab", "notebook")  # JupyterLab, Jupyter Notebook 7
# Errors of the front end itself, seen with no lensnb in the page, that the checks leave out
# (ui, text the page error starts with, why). Notebook 7.6.5 on JupyterLab 4.6.6 throws the
# first once while it loads its settings, also from a bare `jupyter notebook` in an empty HOME
# with nothing but `1+1` in the notebook (JupyterLab's shortcuts extension reads the schema of
# a plugin Notebook 7 does not load); the second when the server's workspace holds JupyterLab's
# recently opened files (Notebook 7's recents menu calls a file-browser command it lacks).
UPSTREAM_ERRORS = [
    ("notebook", "Cannot read properties of undefined (reading 'schema')",
     "Notebook 7.6.5's shortcuts settings, before any cell runs"),
    ("notebook", "Command 'filebrowser:open-path' not registered",
     "Notebook 7's recents menu replaying JupyterLab's, on a server both used"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells (a leading ``#md`` line makes a markdown cell) + a done marker."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for src in [*cells, f"print({DONE_MARK!r})"]:
        if src.startswith("#md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(src[4:]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(src))
    nbformat.write(nb, path)
    return path


class JupyterLabServer:
    """One JupyterLab server on a free local port, rooted at ``root`` (a scratch directory)."""

    def __init__(self, root: Path, *, startup_timeout: float = 60.0):
        self.root = Path(root)
        self.home = self.root / ".lab"
        self.notebooks = self.root / "notebooks"
        self.notebooks.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime_dir = self.home / "runtime"
        config_dir = self.home / "config"
        settings_dir = self.home / "settings"
        for d in (self.runtime_dir, config_dir / "labconfig", settings_dir,
                  self.home / "workspaces"):
            d.mkdir(parents=True, exist_ok=True)
        (config_dir / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": DISABLED_EXTENSIONS}))
        for rel, value in LAB_SETTINGS.items():
            p = settings_dir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(value))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config_dir),
                   JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
                   JUPYTERLAB_WORKSPACES_DIR=str(self.home / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(self.runtime_dir), HF_HUB_OFFLINE="1",
                   # kernels on one torch thread: chromium shares the 2 cores (see
                   # tests/notebooks/test_notebooks.py for what two threads cost there)
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
                   JUPYTER_PLATFORM_DIRS="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
        jupyter = Path(sys.executable).parent / "jupyter"
        self.log = open(self.home / "server.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [str(jupyter), "lab", "--no-browser", f"--ServerApp.port={self.port}",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.notebooks}",
             "--ServerApp.allow_root=True", "--LabApp.news_url=None",
             "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=self.notebooks, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                self.api("api/status")
                break
            except OSError as err:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("JupyterLab did not start; log:\n"
                                       + self.read_log()) from err
                time.sleep(0.3)

    def api(self, path: str) -> Any:
        req = urllib.request.Request(f"{self.url}/{path}",
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def read_log(self) -> str:
        return (self.home / "server.log").read_text(errors="replace")[-20000:]

    def notebook_url(self, name: str, ui: str = "lab") -> str:
        """Where ``name`` opens: JupyterLab (a fresh workspace) or Notebook 7."""
        if ui == "notebook":
            return f"{self.url}/notebooks/{name}?token={self.token}"
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"

    def shutdown_kernels(self, notebook: str | None = None) -> None:
        """End the kernel sessions of ``notebook`` (every session when None): frees memory."""
        for session in self.api("api/sessions"):
            if notebook is None or session["path"].endswith(notebook):
                req = urllib.request.Request(f"{self.url}/api/sessions/{session['id']}",
                                             method="DELETE",
                                             headers={"Authorization": f"token {self.token}"})
                urllib.request.urlopen(req, timeout=10).close()

    def kernel_client(self, notebook: str):
        """A ``jupyter_client`` client of the kernel running ``notebook`` (to read state)."""
        from jupyter_client import BlockingKernelClient

        sessions = [s for s in self.api("api/sessions") if s["path"].endswith(notebook)]
        if not sessions:
            raise RuntimeError(f"no kernel session for {notebook}")
        kid = sessions[0]["kernel"]["id"]
        client = BlockingKernelClient(connection_file=str(self.runtime_dir / f"kernel-{kid}.json"))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=30)
        return client

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def kernel_eval(client: Any, code: str, timeout: float = 30.0) -> str:
    """Run ``code`` in the kernel; its stdout (and the repr of a final expression)."""
    msg_id = client.execute(code, store_history=False)
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "execute_result":
            out.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            raise RuntimeError(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out).strip()


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium through Playwright (headless, no sandbox, networking features off)."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        raise FileNotFoundError(f"chromium not found at {CHROMIUM}: apt-get install chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                      headless=True)


def _is_local(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in ("127.0.0.1",
                                                                           "localhost")


def watch_page(page: Any, ui: str = "lab") -> list[str]:
    """Record every console error, uncaught page error, failed request, HTTP error response and
    request that leaves this machine, on ``page`` from now on (``page.lensnb_problems``), except
    the front end's own ``UPSTREAM_ERRORS`` for ``ui``.

    A notebook opened offline must show none of them: ``assert_clean(page)``."""
    problems: list[str] = []
    upstream = tuple(text for where, text, _ in UPSTREAM_ERRORS if where == ui)

    def page_error(err: Any) -> None:
        if not (upstream and str(err).startswith(upstream)):
            problems.append(f"page error: {err}")

    def console(msg: Any) -> None:
        if msg.type == "error":
            problems.append(f"console error: {msg.text}")

    def response(r: Any) -> None:
        if r.status >= 400:
            problems.append(f"HTTP {r.status}: {r.url}")

    def request(r: Any) -> None:
        if not _is_local(r.url):
            problems.append(f"request off this machine: {r.url}")

    page.route(lambda url: not _is_local(url), lambda route: route.abort())  # stay offline
    page.on("console", console)
    page.on("pageerror", page_error)
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", response)
    page.on("request", request)
    page.lensnb_problems = problems
    return problems


def assert_clean(page: Any) -> None:
    """No console error, page error, failed or off-machine request since ``watch_page``."""
    problems = getattr(page, "lensnb_problems", None)
    assert problems is not None, "watch_page(page) was not called"
    assert not problems, (f"{getattr(page, 'lensnb_notebook', 'page')}: "
                          + "; ".join(problems[:10]))


def open_notebook(page: Any, server: JupyterLabServer, name: str, *,
                  timeout_ms: float = 300_000, ui: str = "lab") -> Any:
    """Open notebook ``name`` in JupyterLab (``ui="notebook"``: Notebook 7) and wait until its
    kernel is idle (nothing run)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.set_default_timeout(timeout_ms)  # a busy 2-core machine makes every step slow
    page.goto(server.notebook_url(name, ui), wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=timeout_ms)
    # the kernel is ready when the toolbar's kernel status says idle
    page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator"
                 "[data-status='idle']").wait_for(timeout=timeout_ms)
    # JupyterLab 4.6 (and Notebook 7) may still ask which kernel to use, after the kernel is
    # idle: keep it
    select = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
    try:
        select.wait_for(timeout=4000)
        select.click()
        select.wait_for(state="detached")
    except PlaywrightTimeout:
        pass
    return page


def open_and_run(page: Any, server: JupyterLabServer, name: str, *,
                 timeout_ms: float = 300_000, ui: str = "lab") -> Any:
    """Open notebook ``name`` in JupyterLab (``ui="notebook"``: Notebook 7), run all cells
    (Run > Run All Cells, the same menu in both), wait for the last one (it prints
    ``DONE_MARK``)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    open_notebook(page, server, name, timeout_ms=timeout_ms, ui=ui)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    done = page.get_by_text(DONE_MARK, exact=True)
    failed = page.get_by_text("Traceback (most recent call last)")
    try:
        done.or_(failed).first.wait_for(timeout=timeout_ms)
        if not done.count():
            raise PlaywrightTimeout("a cell raised")
    except PlaywrightTimeout as err:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"failed-{Path(name).stem}.png"
        page.screenshot(path=str(shot))
        errors = page.locator(".jp-OutputArea-output", has_text="Traceback")
        text = "\n".join(errors.all_text_contents())[-3000:]
        raise RuntimeError(f"{name} did not finish running (screenshot {shot}); "
                           f"errors:\n{text}") from err
    return page


def widget_output(page: Any, css_class: str, index: int = 0) -> Any:
    """The root element of a rendered lensnb widget (e.g. ``"lensnb-attn"``), as a Locator."""
    loc = page.locator(f".jp-OutputArea-output .{css_class}").nth(index)
    loc.wait_for()
    return loc


def record_dialogs(page: Any) -> list[str]:
    """Dismiss and record every JS dialog (alert, confirm): an XSS payload would land here."""
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return dialogs


def open_widget(jupyter_page: Any, cells: list[str], name: str, css_class: str,
                ready: str) -> tuple[Any, Any]:
    """Open ``cells`` as notebook ``name``, record dialogs (``page.lensnb_dialogs``), and wait
    for the widget ``css_class`` to match the ``ready`` selector. Returns ``(page, root)``."""
    page = jupyter_page(cells, name=name)
    page.lensnb_dialogs = record_dialogs(page)
    root = widget_output(page, css_class)
    page.wait_for_selector(ready)
    return page, root


def screenshot(locator: Any, name: str) -> Path:
    """Save ``test-output/screenshots/<name>.png`` of one element (for the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    locator.screenshot(path=str(path))
    return path
