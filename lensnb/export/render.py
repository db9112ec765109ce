"""Static images (PNG, SVG, PDF) through kaleido 1.x and a local Chromium, with no network.

Offline by construction:

- the page kaleido renders in loads plotly.js from the installed ``plotly`` package (a
  ``file://`` URL; kaleido's ``PageGenerator`` default), never the CDN;
- MathJax is off (``mathjax=False``; kaleido's default would fetch it from a CDN);
- fonts are the system's (no web fonts are referenced);
- Chromium talks to kaleido over a pipe (``--remote-debugging-pipe``), runs with extensions
  and its background services off (``OFFLINE_FLAGS``), and with ``--proxy-server`` pointing at
  a closed local port (``OFFLINE_PROXY``), so even a stray ``http(s)`` request inside a figure
  fails at once instead of reaching the network.

One Chromium is kept running in a background thread after the first export (starting one costs
~2 s; later exports take a fraction of that) and closed at interpreter exit or by ``shutdown()``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from ..core.errors import ChromiumNotFoundError, ExportTimeoutError, InputError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome",
                  "chrome")
OFFLINE_PROXY = "127.0.0.1:9"  # the discard port: nothing listens, so requests fail fast
# Chromium's own background services (time sync, component and safe-browsing updates, account
# and search-engine probes) otherwise try to reach Google et al. even from a headless page.
OFFLINE_FLAGS = (  # after Playwright's own launch defaults
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-component-extensions-with-background-pages",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-field-trial-config",
    "--disable-search-engine-choice-screen",
    "--disable-sync",
    "--disable-updater-scheduler",
    "--no-pings",
    "--no-service-autorun",
    "--disable-features=OptimizationHints,OptimizationGuideModelDownloading,MediaRouter,"
    "Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,"
    "NetworkTimeServiceQuerying,PreconnectToSearch,LensOverlay,AimEnabled",
    "--enable-features=SkipListAccountsWithoutGaiaCookies",
)
RENDER_TIMEOUT_S = 300.0  # generous: Chromium on 2 busy cores can be very slow

INSTALL_HINT = (
    "Static export (.png/.svg/.pdf) renders through kaleido with a local Chromium or Chrome, and "
    "none was found. Install one:\n"
    "  Debian/Ubuntu:  sudo apt-get install -y chromium\n"
    "  any system:     plotly_get_chrome -y   (downloads Chrome for Testing; also works in Colab)\n"
    "or point BROWSER_PATH at an existing chrome/chromium binary. "
    "Exporting to .html needs no browser."
)


def chromium_path() -> str:
    """The browser kaleido should drive: ``$BROWSER_PATH``, then chromium/chrome on ``PATH``,
    then a copy downloaded by ``plotly_get_chrome``/``kaleido_get_chrome``."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        if Path(env).is_file() and os.access(env, os.X_OK):
            return env
        raise ChromiumNotFoundError(f"BROWSER_PATH={env!r} is not an executable file.\n"
                                    + INSTALL_HINT)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    try:  # choreographer's own search includes its local download directory
        from choreographer.browsers.chromium import Chromium

        found = Chromium.find_browser()
        if found and Path(found).is_file():
            return str(found)
    except Exception:  # noqa: BLE001 - best-effort search; the error below explains what to do
        pass
    raise ChromiumNotFoundError(INSTALL_HINT)


def _offline_chromium_class() -> type:
    """choreographer's Chromium launcher with ``OFFLINE_FLAGS`` added (its ``browser_cls``)."""
    from choreographer.browsers.chromium import Chromium

    class OfflineChromium(Chromium):
        def get_cli(self):
            return [*super().get_cli(), *OFFLINE_FLAGS]

    return OfflineChromium


class _Renderer:
    """A kaleido instance living in its own event loop thread (safe to call from Jupyter,
    whose own loop is already running)."""

    def __init__(self, browser: str, proxy: str | None) -> None:
        import kaleido

        self.options = (browser, proxy)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="lensnb-kaleido")
        self.thread.start()
        kwargs: dict[str, Any] = dict(path=browser, mathjax=False, timeout=RENDER_TIMEOUT_S,
                                      browser_cls=_offline_chromium_class(),
                                      enable_extensions=False)
        if proxy:
            kwargs["proxy_server"] = proxy

        async def start() -> Any:
            return await kaleido.Kaleido(**kwargs).__aenter__()

        try:
            self.kaleido = self._call(start())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coroutine: Any, timeout: float = RENDER_TIMEOUT_S + 30) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout=timeout)
        except (TimeoutError, concurrent.futures.TimeoutError) as err:
            future.cancel()
            raise ExportTimeoutError(f"Chromium did not finish rendering within {timeout:.0f} s "
                                     "(is the machine overloaded?)") from err

    def render(self, fig: dict, opts: dict) -> bytes:
        return self._call(self.kaleido.calc_fig(fig, opts=opts))

    def close(self) -> None:
        try:
            self._call(self.kaleido.__aexit__(None, None, None), timeout=30)
        except Exception:  # noqa: BLE001 - closing a broken browser must not raise
            pass
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


_lock = threading.Lock()
_renderer: _Renderer | None = None


def shutdown() -> None:
    """Close the background Chromium (a later export starts a new one)."""
    global _renderer
    with _lock:
        if _renderer is not None:
            _renderer.close()
            _renderer = None


atexit.register(shutdown)


def render_image(fig: dict, *, fmt: str, width_px: float, height_px: float,
                 scale: float = 1.0) -> bytes:
    """Render a plotly figure dict to ``fmt`` (``"png"``, ``"svg"``, ``"pdf"``) bytes.

    ``width_px``/``height_px`` are CSS pixels; PNGs come out ``round(width_px * scale)`` pixels
    wide; PDF pages are ``width_px * 0.75`` points wide (vector); SVG is vector.
    """
    global _renderer
    if fmt not in ("png", "svg", "pdf"):
        raise InputError(f"unsupported static format {fmt!r}; allowed: 'png', 'svg', 'pdf'")
    opts = dict(format=fmt, width=width_px, height=height_px, scale=scale)
    with _lock:
        wanted = (chromium_path(), OFFLINE_PROXY)
        if _renderer is not None and _renderer.options != wanted:
            _renderer.close()
            _renderer = None
        if _renderer is None:
            _renderer = _Renderer(*wanted)
        try:
            data = _renderer.render(fig, opts)
        except Exception:
            _renderer.close()  # a failed render may leave the browser unusable: start afresh
            _renderer = None
            raise
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data
