// lensnb theme helpers (after common.js). `THEME` is generated from lensnb/core/theme.py and put
// in front of every widget's module by widgets/base.py; the `--lensnb-*` CSS variables on each
// widget root (.lensnb) come from the same source. Meaningful colours (THEME.series, roles,
// regions, colour maps) are fixed; surroundings follow JupyterLab's --jp-* variables.

/** "#rrggbb" -> [r, g, b]. */
function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** A colour of THEME (hex) with an opacity, as a CSS/canvas "rgba(...)" string. */
function withAlpha(hex, alpha) {
  const [r, g, b] = hexToRgb(hex);
  return `rgba(${r},${g},${b},${alpha})`;
}

/** The colour of data series i: the same cycle the figures use (theme.series_colour). */
function seriesColour(i) {
  return THEME.series[i % THEME.series.length];
}

/**
 * A surrounding colour (a key of THEME.ui: "bg", "fg", "fg_muted", "border", ...) as the browser
 * resolves it under `node` right now (for canvas drawing): the notebook's theme where there is
 * one, the light value elsewhere.
 */
function themeColour(node, name) {
  const spec = THEME.ui[name];
  if (!spec) throw new Error(`unknown theme colour ${name}`);
  const value = node && node.isConnected ? getComputedStyle(node).getPropertyValue(spec.var).trim() : "";
  return value || spec.light;
}

/**
 * Call `redraw()` whenever the notebook's theme changes (JupyterLab sets data-jp-theme-* on
 * <body> once the new theme's CSS is in, Colab sets theme on <html>; the OS colour scheme for
 * other hosts). Returns the
 * function that stops listening (for render's cleanup).
 */
function onThemeChange(redraw) {
  let pending = 0;
  const fire = () => { cancelAnimationFrame(pending); pending = requestAnimationFrame(() => redraw()); };
  const observer = new MutationObserver(fire);
  if (document.body) observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-name", "data-jp-theme-light"] });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ["theme"] }); // Colab
  const media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  if (media && media.addEventListener) media.addEventListener("change", fire);
  return () => {
    observer.disconnect();
    cancelAnimationFrame(pending);
    if (media && media.removeEventListener) media.removeEventListener("change", fire);
  };
}
