"""A page opened from disk in chromium with the network refused: every request that is not
file:/data:/blob:/about: is refused and recorded, with console errors, page errors and dialogs
(``OfflinePage``); and what a lensnb static copy on such a page has drawn (``DRAWN``,
``wait_for_hosts``, ``shown_errors``). Used by the nbconvert fallback tests and the docs site
test."""

from __future__ import annotations

LOCAL = ("file:", "data:", "blob:", "about:")

# In one host: how much of each canvas is drawn (pixels not transparent, distinct colours) and
# how many SVG shapes carry geometry.
DRAWN = """host => ({
  canvases: [...host.querySelectorAll('canvas')].filter(c => c.width && c.height).map(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let opaque = 0; const colours = new Set();
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3]) { opaque++; colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); }
    }
    return {cls: c.className, opaque, colours: colours.size};
  }),
  shapes: [...host.querySelectorAll('svg path, svg polyline, svg rect, svg circle, svg line')]
    .filter(s => (s.getAttribute('d') || s.getAttribute('points') || s.getAttribute('width')
                  || s.getAttribute('r') || s.getAttribute('x2'))).length,
})"""


class OfflinePage:
    """A page in its own context where every request that is not file:/data:/blob: is refused
    and recorded, with console errors, page errors and dialogs recorded too."""

    def __init__(self, chromium, template_urls: tuple[str, ...] = ()) -> None:
        # template_urls: what nbconvert's own template loads from a CDN with no option to turn
        # it off (refused like the rest, but neither it nor its console error is lensnb's)
        self.template_urls = template_urls
        self.context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        self.requests: list[str] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("request", lambda req: None if req.url in template_urls
                     else self.requests.append(req.url))
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"),
                                          d.dismiss()))

    def _console(self, message) -> None:
        if message.type == "error" and message.location.get("url") not in self.template_urls:
            self.errors.append(message.text)

    def _route(self, r) -> None:
        if r.request.url.startswith(LOCAL):
            r.continue_()
        else:
            if r.request.url not in self.template_urls:
                self.refused.append(r.request.url)
            r.abort()

    def check_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.refused == [], f"the page tried to reach the network: {self.refused}"
        assert all(url.startswith(LOCAL) for url in self.requests), self.requests


def wait_for_hosts(page, expected: dict[str, int]) -> None:
    """Every lensnb host of ``expected`` ({widget: count}) is in the page and rendered."""
    for name, count in expected.items():
        hosts = page.locator(f".lensnb-static[data-lensnb-widget='{name}']")
        assert hosts.count() == count, name
        for i in range(count):
            hosts.nth(i).locator(".lensnb-static-root[data-lensnb-ready=true]").wait_for(
                timeout=60_000)
    page.wait_for_timeout(1500)  # let the first requests of every view settle
    assert page.locator(".lensnb-static").count() == sum(expected.values())


def shown_errors(host) -> list[str]:
    texts = host.locator(".lensnb-standalone-error, .lensnb-error").all_text_contents()
    return [t for t in texts if t.strip()]
