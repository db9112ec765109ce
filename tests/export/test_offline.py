"""No network during render or export.

In Python, the ``no_network`` fixture makes every inet socket connect raise. Chromium (a child
process kaleido drives over a pipe) is pointed at a recording proxy on loopback instead of
lensnb's usual dead proxy (``render.OFFLINE_PROXY``, a closed port), so every http(s) request
it makes is seen; a positive control (a figure with a remote image) proves the recorder sees the
page's requests when there are some.

Debian's chromium still runs a few of its own background services despite ``OFFLINE_FLAGS``
(component updates, network time, account and search-engine probes). Those are not made by the
exported page; with the dead proxy they never leave the machine. The test names them and allows
only them.
"""

from __future__ import annotations

import re
import socket
import threading
import xml.etree.ElementTree as ET

import plotly.graph_objects as go
import pytest

from lensnb.export import ChromiumNotFoundError, chromium_path, render, save

# hosts of Chromium's own services (not of anything a figure references)
CHROMIUM_SERVICE_HOSTS = re.compile(
    r"(^|\.)(google\.com|googleapis\.com|gstatic\.com|gvt1\.com|duckduckgo\.com)$")


class _RecordingProxy:
    """A loopback TCP listener that records (and immediately drops) every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))  # bind/listen/accept: not blocked by no_network
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.hosts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                head = conn.recv(1024).decode("latin-1")
            except OSError:
                head = ""
            conn.close()
            if not head:
                # Chromium preconnects to its proxy and may close (or stay silent) without asking
                # for anything: no host is requested, so nothing could have left the machine.
                continue
            # "CONNECT host:443 HTTP/1.1" or "GET http://host/path HTTP/1.1"
            match = re.match(r"[A-Z]+ (?:\w+://)?([^/:\s]+)", head)
            self.hosts.append(match.group(1) if match else f"<unparsed {head[:40]!r}>")

    def page_hosts(self) -> list[str]:
        """Hosts requested other than Chromium's own services."""
        return [h for h in self.hosts if not CHROMIUM_SERVICE_HOSTS.search(h)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def recording_proxy(monkeypatch):
    try:
        chromium_path()
    except ChromiumNotFoundError:
        pytest.skip("no chromium: `make test` installs Debian's chromium")
    proxy = _RecordingProxy()
    monkeypatch.setattr(render, "OFFLINE_PROXY", proxy.address)  # restarts the renderer
    yield proxy
    render.shutdown()
    proxy.close()


def test_render_and_export_touch_no_network(tmp_path, no_network, recording_proxy,
                                             heatmap_figure, tiny_widget):
    with pytest.raises(Exception, match="network access attempted"):
        socket.create_connection(("example.com", 80))  # the fixture is active
    for name in ("fig.pdf", "fig.svg", "fig.png", "fig.html"):
        save(heatmap_figure, tmp_path / name)
    for name in ("tiny.svg", "tiny.html"):
        save(tiny_widget, tmp_path / name)
    ET.parse(tmp_path / "fig.svg")  # the exports really happened
    assert recording_proxy.page_hosts() == []

    # positive control: a figure that does reference the network is caught by the recorder
    remote = go.Figure(go.Scatter(y=[1, 2]))
    remote.add_layout_image(source="http://example.invalid/logo.png", x=0, y=1, sizex=1,
                            sizey=1, xref="paper", yref="paper")
    try:
        save(remote, tmp_path / "remote.png")
    except Exception:  # noqa: BLE001 - a refused image may fail the render; the request counts
        pass
    assert "example.invalid" in recording_proxy.page_hosts()
