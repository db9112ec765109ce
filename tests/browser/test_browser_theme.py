"""The widgets follow JupyterLab's theme, and the browser draws what the figures draw.

One JupyterLab session, one notebook with all four widgets, the light theme then "JupyterLab
Dark" (switched the way a user does, Settings > Theme, with no reload: the widgets redraw).
In each theme: a screenshot of every widget (under the test's tmp dir and test-output/), the
WCAG contrast of every text element against its effective background (tests/wcag.py, from the
spec), the explorer's canvas pixels beside and inside the heatmap (dark in the dark theme), and
RopeSpectrum's lines and bands against ``w.figure()`` of the same widget. A standalone HTML export
(no JupyterLab variables: the light fallbacks) must match the figure in every colour, and
turn dark, legibly, on a host that marks itself dark the way Colab does.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from jupyterlab_harness import LOAD_DEMO, SCREENSHOTS, widget_output
from wcag import AA_LARGE_TEXT, AA_TEXT, contrast, luminance, over, parse

import lensnb
import lensnb.loading as loading
from lensnb.core import theme

HAS_VISION = (loading.DEMOS["demo-vision"] / "config.json").is_file()
PLOT, MARGIN = 480, 84  # attention.js heatmap geometry (CSS px)
# heatmap canvas points (CSS px): the margin below the plot, a causally masked cell at its edge
EDGE = ((2, MARGIN + PLOT + 2), (MARGIN + PLOT - 3, MARGIN + 3))
LLAMA31 = ("dict(model_type='llama', hidden_size=512, num_attention_heads=4, head_dim=128, "
           "max_position_embeddings=131072, rope_theta=500000.0, rope_scaling=dict("
           "rope_type='llama3', factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, "
           "original_max_position_embeddings=8192))")
LLAMA3 = ("dict(model_type='llama', hidden_size=512, num_attention_heads=4, head_dim=128, "
          "max_position_embeddings=8192, rope_theta=500000.0)")
CELLS = [
    LOAD_DEMO + "\nfrom PIL import Image, ImageDraw",
    "explorer = lensnb.AttentionExplorer(lens, 'def add(a, b):\\n    return a + b', layer=1)\n"
    "explorer",
    "stepper = lensnb.GenerationStepper(lens, 'def f(x):\\n    return', max_new_tokens=3, "
    "top_k=5)\nstepper",
    f"llama3 = {LLAMA3}\n"  # four data series: the 4th colour is where the palettes differed
    f"rope = lensnb.RopeSpectrum({LLAMA31}, compare={{'Llama 3': llama3, "
    "'theta 1e4': {**llama3, 'rope_theta': 1e4}, 'theta 1e6': {**llama3, 'rope_theta': 1e6}})\n"
    "rope",
]
if HAS_VISION:
    CELLS.append(
        "img = Image.new('RGB', (56, 56), (235, 235, 235))\n"
        "ImageDraw.Draw(img).ellipse((4, 4, 17, 17), fill=(220, 30, 30))\n"
        "vision = lensnb.load('demo-vision')\n"
        "pic = lensnb.ImageAttention(vision, '<|image|>a red circle', img, token=3)\npic")
WIDGETS = {"attention_explorer": "lensnb-attn", "generation_stepper": "lensnb-gen",
           "rope_spectrum": "lensnb-rope", "image_attention": "lensnb-imgattn"}
if not HAS_VISION:
    del WIDGETS["image_attention"]

# Every visible text element of a widget: its colour (fill for SVG text), opacity, font and the
# background layers from it up to the first opaque one.
TEXTS_JS = """(sel) => {
  const out = [];
  const layers = (node) => {
    const res = [];
    for (let n = node; n; n = n.parentElement) {
      const bg = getComputedStyle(n).backgroundColor;
      if (bg !== "rgba(0, 0, 0, 0)" && bg !== "transparent") res.push(bg);
      if (/^rgb\\(/.test(bg)) break;
    }
    return res;
  };
  const opacity = (node) => {
    let o = 1;
    for (let n = node; n; n = n.parentElement) o *= Number(getComputedStyle(n).opacity);
    return o;
  };
  const own = (e) => [...e.childNodes].filter((c) => c.nodeType === 3).map((c) => c.textContent);
  for (const root of document.querySelectorAll(sel)) {
    for (const e of [root, ...root.querySelectorAll("*")]) {
      if (e.closest("option, canvas, script, style") || e.closest(":disabled")) continue;
      let text = own(e).join("").trim();
      if (/^■+$/.test(text)) continue; // a legend swatch: a graphic in the data colour
      if (e.tagName === "SELECT") text = (e.selectedOptions[0] || {}).textContent || "";
      if (!text || !e.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
      const r = e.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      const cs = getComputedStyle(e), svg = e instanceof SVGElement;
      out.push({ tag: e.tagName, cls: e.getAttribute("class") || "", text: text.slice(0, 30),
        colour: svg ? cs.fill : cs.color, alpha: opacity(e) * (svg ? Number(cs.fillOpacity) : 1),
        layers: layers(e), size: parseFloat(cs.fontSize), weight: Number(cs.fontWeight) });
    }
  }
  return out;
}"""
PIXEL_JS = """([x, y]) => {
  const c = document.querySelector(".jp-OutputArea-output canvas.lensnb-attn-heatmap");
  const dpr = c.width / parseFloat(c.style.width);
  const px = c.getContext("2d").getImageData(Math.round(x * dpr), Math.round(y * dpr), 1, 1);
  return Array.from(px.data);
}"""
ROPE_JS = """(root) => ({
  lines: [...root.querySelectorAll("path.lensnb-rope-line")].map(
    (p) => [p.getAttribute("stroke"), Number(p.getAttribute("stroke-width"))]),
  bands: [...root.querySelectorAll("rect.lensnb-rope-band")].map((r) => r.getAttribute("fill")),
  ref: getComputedStyle(root.querySelector("line.lensnb-rope-ref")).stroke,
  muted: getComputedStyle(root).getPropertyValue("--lensnb-fg-muted").trim(),
  fg: getComputedStyle(root).getPropertyValue("--lensnb-fg").trim(),
})"""
FIGURE_PY = ("import json\nf = rope.figure()\nprint(json.dumps({'lines': [[t.line.color, "
             "t.line.width] for t in f.data], 'bands': [s.fillcolor for s in f.layout.shapes "
             "if s.type == 'rect'], 'ref': [s.line.color for s in f.layout.shapes "
             "if s.type == 'line']}))")


def _ready(page) -> None:
    page.wait_for_selector(".lensnb-attn[data-shown-head='0']")
    page.wait_for_function("document.querySelectorAll('.lensnb-attn-thumb[data-loaded]').length"
                           " === document.querySelectorAll('.lensnb-attn-thumb').length")
    page.wait_for_selector(".jp-OutputArea-output .lensnb-rope[data-ready] svg.lensnb-rope-svg")
    if HAS_VISION:
        page.wait_for_selector(".jp-OutputArea-output .lensnb-imgattn[data-ready]")


@pytest.fixture(scope="module")
def themed_page(jupyter_page, tmp_path_factory):
    page = jupyter_page(CELLS, name="theme")
    page.wait_for_selector(".lensnb-gen[data-n-steps='0']")
    widget_output(page, "lensnb-gen").locator(".lensnb-gen-step").click()  # tokens to read
    page.wait_for_selector(".lensnb-gen[data-n-steps='1']")
    _ready(page)
    page.mouse.move(0, 0)
    page.shots = tmp_path_factory.mktemp("theme-screenshots")
    yield page
    if page.evaluate("document.body.dataset.jpThemeLight") == "false":
        _switch(page, "JupyterLab Light")  # the settings dir is shared with later tests


def _switch(page, name: str) -> None:
    """Settings > Theme > ``name``, as a user does; wait until JupyterLab says it is in."""
    def item(label: str):  # Lumino submenus are not "menuitem"s to Playwright: match the label
        exact = page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(label)}$"))
        return page.locator(".lm-Menu-item", has=exact).first

    page.get_by_role("menuitem", name="Settings", exact=True).click()
    item("Theme").hover()
    item(name).click()
    page.wait_for_selector(f"body[data-jp-theme-name='{name}']", state="attached")
    page.wait_for_timeout(300)  # the widgets redraw on the next animation frame


def _shoot(page, mode: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, css in WIDGETS.items():
        path = page.shots / f"{name}_{mode}.png"
        widget_output(page, css).screenshot(path=str(path))
        shutil.copy(path, SCREENSHOTS / f"theme_{name}_{mode}.png")


def _low_contrast(page, selectors: dict[str, str] | None = None) -> tuple[list[str], int]:
    """Text elements under WCAG AA (4.5, large text 3.0) against their effective background."""
    if selectors is None:
        selectors = {name: f".jp-OutputArea-output .{css}" for name, css in WIDGETS.items()}
    bad, n = [], 0
    for name, selector in selectors.items():
        for t in page.evaluate(TEXTS_JS, selector):
            n += 1
            bg = (255.0, 255.0, 255.0, 1.0)
            for layer in reversed(t["layers"]):
                bg = over(parse(layer), bg)
            r, g, b, a = parse(t["colour"])
            fg = over((r, g, b, a * t["alpha"]), bg)
            large = t["size"] >= 24 or (t["size"] >= 18.66 and t["weight"] >= 700)
            ratio = contrast(fg, bg)
            if ratio < (AA_LARGE_TEXT if large else AA_TEXT):
                bad.append(f"{name} <{t['tag']} class={t['cls']!r}> {t['text']!r}: "
                           f"{t['colour']} on {t['layers']} = {ratio:.2f}")
    return bad, n


def _rgb(colour: str) -> tuple[int, ...]:
    return tuple(round(v) for v in parse(colour)[:3])


def _rgba(colour: str) -> tuple[float, ...]:
    r, g, b, a = parse(colour)
    return (round(r), round(g), round(b), round(a, 3))


def _check_rope_matches_figure(shown: dict, fig: dict, *, fallbacks: bool,
                               bands: int = 3) -> None:
    """Same lines (colour, width), same bands (colour, opacity). The unscaled line and the
    reference line are surroundings: in JupyterLab they follow its theme, elsewhere (fallbacks)
    they are the figure's colours too."""
    assert len(shown["lines"]) == len(fig["lines"]) >= 4
    for (s_colour, s_width), (f_colour, f_width) in zip(shown["lines"], fig["lines"],
                                                        strict=True):
        assert s_width == pytest.approx(f_width)
        if f_colour == theme.ui("fg_muted") and not fallbacks:
            assert _rgba(s_colour) == _rgba(shown["muted"])  # the notebook's secondary text
        else:
            assert _rgb(s_colour) == _rgb(f_colour), (s_colour, f_colour)
    assert sorted(map(_rgba, shown["bands"])) == sorted(map(_rgba, fig["bands"]))
    assert len(shown["bands"]) == bands
    want_ref = fig["ref"][0] if fallbacks else shown["fg"]
    assert _rgba(shown["ref"]) == _rgba(want_ref)


def _rope(page, lab_kernel) -> tuple[dict, dict]:
    root = widget_output(page, "lensnb-rope")
    shown = root.evaluate(ROPE_JS)
    return shown, json.loads(lab_kernel(page).eval(FIGURE_PY))


def test_light_theme(themed_page, lab_kernel):
    page = themed_page
    assert page.evaluate("document.body.dataset.jpThemeLight") == "true"
    _shoot(page, "light")
    bad, n = _low_contrast(page)
    assert n > 60 and not bad, "\n".join(bad)
    for xy in EDGE:  # the margin below the plot; a masked cell at the plot's edge
        r, g, b, _ = page.evaluate(PIXEL_JS, list(xy))
        assert luminance((r, g, b, 1)) > 0.7, (xy, (r, g, b))
    shown, fig = _rope(page, lab_kernel)
    _check_rope_matches_figure(shown, fig, fallbacks=False)
    _rope_tab(page, lab_kernel, "decay")  # other widths and no bands
    shown, fig = _rope(page, lab_kernel)
    _check_rope_matches_figure(shown, fig, fallbacks=False, bands=0)
    _rope_tab(page, lab_kernel, "spectrum")


def _rope_tab(page, lab_kernel, tab: str) -> None:
    ready = widget_output(page, "lensnb-rope").get_attribute("data-ready")
    lab_kernel(page).eval(f"rope.tab = {tab!r}")
    page.wait_for_function(
        "([r]) => document.querySelector('.jp-OutputArea-output .lensnb-rope')"
        ".dataset.ready !== r", arg=[ready])


def test_dark_theme(themed_page, lab_kernel):
    page = themed_page
    ready = widget_output(page, "lensnb-rope").get_attribute("data-ready")
    _switch(page, "JupyterLab Dark")
    page.wait_for_function(  # RopeSpectrum redrew for the new theme
        "([r]) => document.querySelector('.jp-OutputArea-output .lensnb-rope')"
        ".dataset.ready !== r", arg=[ready])
    _shoot(page, "dark")
    bad, n = _low_contrast(page)
    assert n > 60 and not bad, "\n".join(bad)
    for xy in EDGE:  # no white block around the heatmap
        r, g, b, _ = page.evaluate(PIXEL_JS, list(xy))
        assert luminance((r, g, b, 1)) < 0.1, (xy, (r, g, b))
    shown, fig = _rope(page, lab_kernel)
    _check_rope_matches_figure(shown, fig, fallbacks=False)  # data colours: as in light


def test_standalone_export_matches_the_figure_in_every_colour(chromium, tmp_path):
    """No JupyterLab variables in a standalone file: every colour is the figure's."""
    llama31 = dict(model_type="llama", hidden_size=512, num_attention_heads=4, head_dim=128,
                   max_position_embeddings=131072, rope_theta=500000.0,
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=8192))
    llama3 = {**llama31, "rope_scaling": None, "max_position_embeddings": 8192}
    w = lensnb.RopeSpectrum(llama31, compare={"Llama 3": llama3,
                                              "theta 1e4": {**llama3, "rope_theta": 1e4},
                                              "theta 1e6": {**llama3, "rope_theta": 1e6}})
    path = lensnb.save(w, tmp_path / "rope.html")
    f = w.figure()
    fig = {"lines": [[t.line.color, t.line.width] for t in f.data],
           "bands": [s.fillcolor for s in f.layout.shapes if s.type == "rect"],
           "ref": [s.line.color for s in f.layout.shapes if s.type == "line"]}
    page = chromium.new_page()
    try:
        page.route(lambda url: not url.startswith(("file:", "data:", "blob:")),
                   lambda route: route.abort())
        page.goto(path.as_uri())
        root = page.locator(".lensnb-rope")
        root.locator("svg.lensnb-rope-svg").wait_for()
        _check_rope_matches_figure(root.evaluate(ROPE_JS), fig, fallbacks=True)
        bad, n = _low_contrast(page, {"standalone": ".lensnb-rope"})
        assert n > 20 and not bad, "\n".join(bad)

        # a dark host without JupyterLab's variables (Colab marks <html theme="dark">)
        ready = root.get_attribute("data-ready")
        page.evaluate("document.body.style.background = '#1e1e1e';"
                      "document.documentElement.setAttribute('theme', 'dark')")
        page.wait_for_function("([r]) => document.querySelector('.lensnb-rope').dataset.ready"
                               " !== r", arg=[ready])
        shown = root.evaluate(ROPE_JS)
        assert _rgb(shown["muted"]) == _rgb(theme.ui("fg_muted", dark=True))
        assert [_rgb(c) for c, _ in shown["lines"]][1:] == [_rgb(c) for c, _ in fig["lines"]][1:]
        bad, n = _low_contrast(page, {"standalone dark": ".lensnb-rope"})
        assert n > 20 and not bad, "\n".join(bad)
    finally:
        page.close()
