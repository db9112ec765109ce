// RopeSpectrum charts (lensnb/widgets/rope_spectrum.py), first of its files: rope_chart.js,
// rope_views.js, rope_spectrum.js (common.js in front). SVG line charts with log axes, a legend,
// the tooltip; labels (model names) reach the DOM only through textContent.

const W = 640; // chart width, CSS px
const H = 380; // chart height
const PAD = { l: 64, r: 16, t: 14, b: 44 };

/** A number in a short, readable form (1e+5 -> 1e5). */
function fmt(v) {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2).replace("e+", "e");
  if (a >= 100) return Math.round(v).toLocaleString("en-US");
  return Number(v.toPrecision(3)).toString();
}

/** A scale mapping [lo, hi] (log or linear) onto [a, b] pixels, with ticks. */
function makeScale(lo, hi, a, b, log) {
  if (log) {
    lo = Math.max(lo, 1e-300);
    hi = Math.max(hi, lo * 1.0001);
  } else if (hi === lo) {
    hi = lo + 1;
  }
  const t = log ? (v) => (Math.log10(Math.max(v, 1e-300)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))
    : (v) => (v - lo) / (hi - lo);
  const map = (v) => a + t(v) * (b - a);
  const ticks = [];
  if (log) {
    const e0 = Math.ceil(Math.log10(lo) - 1e-9), e1 = Math.floor(Math.log10(hi) + 1e-9);
    const every = Math.max(1, Math.ceil((e1 - e0 + 1) / 8));
    for (let e = e0; e <= e1; e += every) ticks.push(Math.pow(10, e));
    if (ticks.length < 2) for (const m of [2, 5]) for (let e = e0 - 1; e <= e1; e++) {
      const v = m * Math.pow(10, e);
      if (v >= lo && v <= hi) ticks.push(v);
    }
  } else {
    const raw = (hi - lo) / 6;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || raw;
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  }
  return { map, ticks: ticks.sort((x, y) => x - y), lo, hi, log };
}

/** The x and y scales of a chart spec (finite points only; log axes skip values <= 0). */
function chartScales(spec) {
  const xs = [], ys = [];
  for (const line of spec.lines) {
    for (let i = 0; i < line.x.length; i++) {
      const xv = line.x[i], yv = line.y[i];
      if (!isFinite(xv) || !isFinite(yv) || (spec.yLog && yv <= 0) || (spec.xLog && xv <= 0)) continue;
      xs.push(xv); ys.push(yv);
    }
  }
  if (!xs.length) return null;
  let [ylo, yhi] = [Math.min(...ys), Math.max(...ys)];
  for (const h of spec.hlines || []) if (h.at > 0 || !spec.yLog) { ylo = Math.min(ylo, h.at); yhi = Math.max(yhi, h.at); }
  if (spec.yLog) { ylo /= 1.6; yhi *= 1.6; } else { const m = (yhi - ylo) * 0.05 || 0.05; ylo -= m; yhi += m; }
  return { x: makeScale(Math.min(...xs), Math.max(...xs), PAD.l, W - PAD.r, spec.xLog), y: makeScale(ylo, yhi, H - PAD.b, PAD.t, spec.yLog) };
}

/** Shaded bands (in y units, with their names) and the axes, grid and titles. */
function chartFrame(plot, spec, x, y) {
  for (const band of spec.hbands || []) {
    const y0 = Math.max(PAD.t, Math.min(y.map(band.y0), y.map(band.y1)));
    const y1 = Math.min(H - PAD.b, Math.max(y.map(band.y0), y.map(band.y1)));
    if (y1 <= y0) continue;
    plot.appendChild(svgEl("rect", { x: PAD.l, y: y0, width: W - PAD.l - PAD.r, height: y1 - y0, fill: band.fill, class: "lensnb-rope-band" }));
    plot.appendChild(svgEl("text", { x: W - PAD.r - 4, y: y0 + 12, "text-anchor": "end", class: "lensnb-rope-bandlabel" }, band.label));
  }
  const axes = svgEl("g", { class: "lensnb-rope-axes" });
  for (const v of x.ticks) {
    const px = x.map(v);
    axes.appendChild(svgEl("line", { x1: px, x2: px, y1: PAD.t, y2: H - PAD.b, class: "grid" }));
    axes.appendChild(svgEl("text", { x: px, y: H - PAD.b + 14, "text-anchor": "middle" }, fmt(v)));
  }
  for (const v of y.ticks) {
    const py = y.map(v);
    axes.appendChild(svgEl("line", { x1: PAD.l, x2: W - PAD.r, y1: py, y2: py, class: "grid" }));
    axes.appendChild(svgEl("text", { x: PAD.l - 5, y: py + 4, "text-anchor": "end" }, fmt(v)));
  }
  axes.appendChild(svgEl("rect", { x: PAD.l, y: PAD.t, width: W - PAD.l - PAD.r, height: H - PAD.t - PAD.b, class: "frame" }));
  axes.appendChild(svgEl("text", { x: (PAD.l + W - PAD.r) / 2, y: H - 8, "text-anchor": "middle", class: "title" }, spec.xLabel));
  axes.appendChild(svgEl("text", { x: 14, y: (PAD.t + H - PAD.b) / 2, "text-anchor": "middle", class: "title", transform: `rotate(-90 14 ${(PAD.t + H - PAD.b) / 2})` }, spec.yLabel));
  return axes;
}

/** Reference lines and the data lines (with markers) into the clipped plot group. */
function chartLines(plot, spec, x, y) {
  for (const h of spec.hlines || []) {
    const py = y.map(h.at);
    plot.appendChild(svgEl("line", { x1: PAD.l, x2: W - PAD.r, y1: py, y2: py, class: "lensnb-rope-ref" }));
    plot.appendChild(svgEl("text", { x: PAD.l + 4, y: py - 4, class: "lensnb-rope-reflabel" }, h.label));
  }
  for (const v of spec.vlines || []) {
    const px = x.map(v.at);
    plot.appendChild(svgEl("line", { x1: px, x2: px, y1: PAD.t, y2: H - PAD.b, class: "lensnb-rope-ref" }));
    plot.appendChild(svgEl("text", { x: px + 4, y: PAD.t + 12, class: "lensnb-rope-reflabel" }, v.label));
  }
  for (const line of spec.lines) {
    let d = "";
    let pen = false;
    for (let i = 0; i < line.x.length; i++) {
      const xv = line.x[i], yv = line.y[i];
      if (!isFinite(yv) || (spec.yLog && yv <= 0)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x.map(xv).toFixed(2)},${y.map(yv).toFixed(2)}`;
      pen = true;
    }
    const attrs = { d, fill: "none", stroke: line.colour, "stroke-width": line.width || 1.5, class: "lensnb-rope-line" };
    if (line.dash) attrs["stroke-dasharray"] = "5 4";
    plot.appendChild(svgEl("path", attrs));
    if (line.markers) for (let i = 0; i < line.x.length; i++) {
      if (!(line.y[i] > 0) && spec.yLog) continue;
      plot.appendChild(svgEl("circle", { cx: x.map(line.x[i]), cy: y.map(line.y[i]), r: 2.2, fill: line.colour }));
    }
  }
}

/** Hover: a guide line and a tooltip listing every line at the nearest x (spec.hover). */
function chartHover(svg, spec, x, tooltip) {
  const guide = svgEl("line", { y1: PAD.t, y2: H - PAD.b, class: "lensnb-rope-guide", visibility: "hidden" });
  svg.appendChild(guide);
  const inverse = (px) => {
    const t = (px - PAD.l) / (W - PAD.l - PAD.r);
    return x.log ? Math.pow(10, Math.log10(x.lo) + t * (Math.log10(x.hi) - Math.log10(x.lo))) : x.lo + t * (x.hi - x.lo);
  };
  svg.addEventListener("mousemove", (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    if (px < PAD.l || px > W - PAD.r || !spec.hover) { guide.setAttribute("visibility", "hidden"); tooltip.hidden = true; return; }
    const hit = spec.hover(inverse(px));
    if (!hit) return;
    guide.setAttribute("x1", x.map(hit.x)); guide.setAttribute("x2", x.map(hit.x));
    guide.setAttribute("visibility", "visible");
    for (const [k, v] of Object.entries(hit.data || {})) tooltip.dataset[k] = String(v);
    showTooltip(tooltip, hit.lines.join("\n"), ev, box, W - 220);
  });
  svg.addEventListener("mouseleave", () => { guide.setAttribute("visibility", "hidden"); tooltip.hidden = true; });
}

/**
 * Draw a line chart into `host` (cleared). spec: {xLog, yLog, xLabel, yLabel, lines:
 * [{x, y, colour, width, dash, markers}], hbands: [{y0, y1, fill, label}], hlines/vlines:
 * [{at, label}], hover(x) -> lines of text}. Returns the svg.
 */
function lineChart(host, spec, tooltip) {
  host.replaceChildren();
  tooltip.hidden = true; // a redraw invalidates what the tooltip said
  for (const k of Object.keys(tooltip.dataset)) delete tooltip.dataset[k];
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "lensnb-rope-svg" });
  host.appendChild(svg);
  const scales = chartScales(spec);
  if (!scales) { svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data")); return svg; }
  const { x, y } = scales;
  const clipId = `lensnb-rope-clip-${Math.random().toString(36).slice(2)}`;
  const defs = svgEl("defs");
  const clip = svgEl("clipPath", { id: clipId });
  clip.appendChild(svgEl("rect", { x: PAD.l, y: PAD.t, width: W - PAD.l - PAD.r, height: H - PAD.t - PAD.b }));
  defs.appendChild(clip);
  svg.appendChild(defs);
  const plot = svgEl("g", { "clip-path": `url(#${clipId})` });
  svg.appendChild(chartFrame(plot, spec, x, y));
  svg.appendChild(plot);
  chartLines(plot, spec, x, y);
  chartHover(svg, spec, x, tooltip);
  return svg;
}

/** The legend: one swatch per line (textContent only). */
function legend(host, lines) {
  host.replaceChildren();
  for (const line of lines) {
    const item = el("span", "lensnb-rope-legend-item");
    const sw = el("span", "lensnb-rope-swatch");
    sw.style.borderTopColor = line.colour;
    sw.style.borderTopStyle = line.dash ? "dashed" : "solid";
    item.append(sw, el("span", "", line.label));
    host.appendChild(item);
  }
}

/** Index of the value in a sorted array closest to v (log distance when `log`). */
function nearest(arr, v, log) {
  let best = 0, bestD = Infinity;
  for (let i = 0; i < arr.length; i++) {
    const d = log ? Math.abs(Math.log(arr[i]) - Math.log(v)) : Math.abs(arr[i] - v);
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}
