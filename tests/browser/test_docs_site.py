"""The documentation site (``make docs``, docs/README.md): it builds with warnings as errors,
its API reference documents every name of ``lensnb.__all__``, every tutorial page holds its
executed notebook's outputs, and every page opens from disk in chromium with every request off
the machine refused: none is made, no console error is logged, each lensnb widget's static
copy and each plotly figure is drawn, and search finds pages.

Run after the notebook tests (``conftest.py`` moves these tests to the end of the session), so
the build reuses the tutorials they executed instead of executing them again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyterlab_harness import REPO
from offline_page import DRAWN, OfflinePage, shown_errors

import lensnb
from lensnb.export.notebook import VIEW_MIMETYPE

pytest.importorskip("sphinx", reason="the docs extra (Sphinx, myst-nb, furo) builds the site")
nbformat = pytest.importorskip("nbformat", reason="nbformat (test extra) reads the notebooks")
bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 (a dependency of furo) reads the pages")
pytestmark = [pytest.mark.slow, pytest.mark.docs_site]

OUT = REPO / "test-output" / "docs"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"


@pytest.fixture(scope="module")
def site() -> Path:
    """The site as ``make docs`` builds it (``-W``), into test-output/docs/html."""
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
               "-d", str(OUT / "doctrees"), str(REPO / "docs"), str(OUT / "html")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, f"sphinx-build -W failed:\n{(done.stdout + done.stderr)[-6000:]}"
    tutorials = json.loads((OUT / "html" / "tutorials.json").read_text())
    (OUT / "build.json").write_text(json.dumps({"seconds": round(seconds, 1),
                                                "tutorials": tutorials}, indent=2) + "\n")
    return OUT / "html"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def _soup(path: Path):
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def test_api_reference_documents_every_public_name(site):
    """Each name of ``lensnb.__all__`` has its own entry (its anchor, and a description that
    starts with its docstring's first words) on an API page, and is listed on the index."""
    documented: dict[str, str] = {}  # anchor id -> the text of its description
    for page in (site / "api").glob("*.html"):
        soup = _soup(page)
        for dt in soup.select("dt[id^='lensnb.']"):
            dd = dt.find_next_sibling("dd")
            documented[dt["id"]] = " ".join(t.get_text(" ", strip=True) for t in (dt, dd) if t)
        for section in soup.select("section[id^='module-lensnb.']"):
            documented[section["id"].removeprefix("module-")] = section.get_text(" ", strip=True)
    index = _soup(site / "api" / "index.html").get_text(" ")
    missing, undescribed = [], []
    for name in lensnb.__all__:
        key = f"lensnb.{name}"
        if key not in documented:
            missing.append(name)
            continue
        # its docstring's first words, as words (markup, quotes and spacing differ in HTML);
        # a constant: its value, as written there
        obj = getattr(lensnb, name)
        text = repr(obj) if isinstance(obj, str) else (obj.__doc__ or "").strip().split("\n\n")[0]
        words = _words(text)[:5]
        if f" {' '.join(words)} " not in f" {' '.join(_words(documented[key]))} ":
            undescribed.append(name)
        assert name in index, f"{name} is not listed on the API index"
    assert missing == [], f"public names without an API entry: {missing}"
    assert undescribed == [], f"API entries without their docstring: {undescribed}"


def _expected_outputs(stem: str) -> dict[str, int]:
    """What the tutorial's executed copy displays: lensnb widgets with a static copy, plotly
    figures, pictures."""
    nb = nbformat.read(REPO / "test-output" / "notebooks" / f"{stem}.ipynb", as_version=4)
    counts = {"lensnb": 0, "plotly": 0, "png": 0}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data") or {}
            html = data.get("text/html", "")
            html = "".join(html) if isinstance(html, list) else html
            if VIEW_MIMETYPE in data and 'class="lensnb-static"' in html:
                counts["lensnb"] += 1
            elif PLOTLY_MIMETYPE in data:
                counts["plotly"] += 1
            elif "image/png" in data and "text/html" not in data:
                counts["png"] += 1
    return counts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_tutorial_is_a_page_with_its_outputs(site, path):
    page = site / "tutorials" / f"{path.stem}.html"
    assert page.is_file(), f"{path.name} has no page"
    soup = _soup(page)
    expected = _expected_outputs(path.stem)
    shown = {"lensnb": len(soup.select("div.lensnb-static")),
             "plotly": len(soup.select("div.plotly-graph-div")),
             "png": len(soup.select(".cell_output img[src$='.png']"))}
    assert shown == expected
    first_heading = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0]
    title = soup.h1.get_text(strip=True).removesuffix("¶")  # the heading's link mark
    assert title == first_heading.removeprefix("# ").replace("`", "")
    # no widget manager, no CDN: nothing the page loads comes from off the machine
    remote = [tag.get("src") or tag.get("href") for tag in soup.select("script[src], link[href]")
              if re.match(r"(https?:)?//", tag.get("src") or tag.get("href"))]
    assert remote == []
    assert not soup.select("script[type='application/vnd.jupyter.widget-state+json']")


def test_every_page_opens_offline_with_no_console_error(site, chromium):
    """Every HTML page of the site, opened from disk with the network refused."""
    pages = sorted(site.rglob("*.html"))
    summary = {"pages": 0, "requests_refused": [], "console_errors": [], "lensnb_views": 0,
               "plotly_figures": 0}
    offline = OfflinePage(chromium)  # one page, navigated: what each visit adds is its own
    page = offline.page
    try:
        for path in pages:
            refused, errors = len(offline.refused), len(offline.errors)
            page.goto(path.as_uri(), wait_until="load")
            hosts = page.locator(".lensnb-static")
            for i in range(hosts.count()):
                host = hosts.nth(i)
                host.locator(".lensnb-static-root[data-lensnb-ready=true]").wait_for(
                    timeout=60_000)
                assert shown_errors(host) == [], (path.name, i)
                drawn = host.evaluate(DRAWN)
                assert drawn["shapes"] or any(c["opaque"] for c in drawn["canvases"]) or (
                    host.locator("[class*=token]").count()), (path.name, i, drawn)
            figures = page.locator("div.plotly-graph-div")
            for i in range(figures.count()):
                figures.nth(i).locator(".main-svg").first.wait_for(timeout=30_000)
            page.wait_for_timeout(200)  # late errors of scripts that ran on load
            summary["pages"] += 1
            summary["lensnb_views"] += hosts.count()
            summary["plotly_figures"] += figures.count()
            summary["requests_refused"] += [(path.name, u) for u in offline.refused[refused:]]
            summary["console_errors"] += [(path.name, e) for e in offline.errors[errors:]]
    finally:
        offline.context.close()
    (OUT / "pages.json").write_text(json.dumps(summary, indent=2) + "\n")
    assert summary["requests_refused"] == [], summary["requests_refused"]
    assert summary["console_errors"] == [], summary["console_errors"]
    assert summary["pages"] >= 2 + len(NOTEBOOKS)


def test_search_finds_pages_offline(site, chromium):
    offline = OfflinePage(chromium)
    try:
        offline.page.goto((site / "search.html").as_uri() + "?q=patchscope")
        results = offline.page.locator("#search-results ul li")
        results.first.wait_for(timeout=30_000)
        links = results.locator("a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
        assert any("api/" in link for link in links), links
    finally:
        offline.context.close()
    offline.check_clean()
