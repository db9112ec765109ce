// RopeSpectrum frontend (lensnb/widgets/rope_spectrum.py). common.js is concatenated in front:
// request, unpack, viridis, el are in scope. Python computes every number (lensnb.rope); this file
// only draws: SVG line charts with log axes, a canvas heatmap, sliders that ask for new data.
// Labels (model names) reach the DOM only through textContent.

const SVG_NS = "http://www.w3.org/2000/svg";
const W = 640; // chart width, CSS px
const H = 380; // chart height
const PAD = { l: 64, r: 16, t: 14, b: 44 };
// colours and widths from THEME (lensnb/core/theme.py), the same the figures use
const REGION_FILL = Object.fromEntries(Object.entries(THEME.regions).map(([k, r]) => [k, r.fill]));
const TAB_NAMES = [["spectrum", "Spectrum"], ["usage", "Head usage"], ["decay", "Distance decay"]];
// slider: [trait, label, min, max, step, toSlider, fromSlider, format]
const SLIDERS = [
  ["theta", "θ (base)", 3, 7, 0.01, Math.log10, (v) => Math.pow(10, v), (v) => fmt(v)],
  ["factor", "factor", 1, 64, 0.5, (v) => v, (v) => v, (v) => v.toFixed(1)],
  ["low_freq_factor", "low_freq_factor", 0.25, 16, 0.25, (v) => v, (v) => v, (v) => v.toFixed(2)],
  ["high_freq_factor", "high_freq_factor", 0.5, 32, 0.25, (v) => v, (v) => v, (v) => v.toFixed(2)],
  ["original_context", "original context", 8, 18, 0.25, Math.log2,
    (v) => Math.round(Math.pow(2, v)), (v) => Math.round(v).toLocaleString("en-US")],
];

/** A number in a short, readable form (1e+5 -> 1e5). */
function fmt(v) {
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2).replace("e+", "e");
  if (a >= 100) return Math.round(v).toLocaleString("en-US");
  return Number(v.toPrecision(3)).toString();
}

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
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
  let xs = [], ys = [];
  for (const line of spec.lines) {
    for (let i = 0; i < line.x.length; i++) {
      const xv = line.x[i], yv = line.y[i];
      if (!isFinite(xv) || !isFinite(yv) || (spec.yLog && yv <= 0) || (spec.xLog && xv <= 0)) continue;
      xs.push(xv); ys.push(yv);
    }
  }
  if (!xs.length) { svg.appendChild(svgEl("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data")); return svg; }
  let [ylo, yhi] = [Math.min(...ys), Math.max(...ys)];
  for (const h of spec.hlines || []) if (h.at > 0 || !spec.yLog) { ylo = Math.min(ylo, h.at); yhi = Math.max(yhi, h.at); }
  if (spec.yLog) { ylo /= 1.6; yhi *= 1.6; } else { const m = (yhi - ylo) * 0.05 || 0.05; ylo -= m; yhi += m; }
  const x = makeScale(Math.min(...xs), Math.max(...xs), PAD.l, W - PAD.r, spec.xLog);
  const y = makeScale(ylo, yhi, H - PAD.b, PAD.t, spec.yLog);
  const clipId = `lensnb-rope-clip-${Math.random().toString(36).slice(2)}`;
  const defs = svgEl("defs");
  const clip = svgEl("clipPath", { id: clipId });
  clip.appendChild(svgEl("rect", { x: PAD.l, y: PAD.t, width: W - PAD.l - PAD.r, height: H - PAD.t - PAD.b }));
  defs.appendChild(clip);
  svg.appendChild(defs);
  const plot = svgEl("g", { "clip-path": `url(#${clipId})` });
  // shaded bands (in y units), with their names
  for (const band of spec.hbands || []) {
    const y0 = Math.max(PAD.t, Math.min(y.map(band.y0), y.map(band.y1)));
    const y1 = Math.min(H - PAD.b, Math.max(y.map(band.y0), y.map(band.y1)));
    if (y1 <= y0) continue;
    plot.appendChild(svgEl("rect", { x: PAD.l, y: y0, width: W - PAD.l - PAD.r, height: y1 - y0, fill: band.fill, class: "lensnb-rope-band" }));
    plot.appendChild(svgEl("text", { x: W - PAD.r - 4, y: y0 + 12, "text-anchor": "end", class: "lensnb-rope-bandlabel" }, band.label));
  }
  // axes and grid
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
  svg.insertBefore(axes, null);
  svg.appendChild(plot);
  // reference lines
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
  // the lines
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
  // hover: a guide line and a tooltip listing every line at the nearest x
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
    tooltip.textContent = hit.lines.join("\n");
    for (const [k, v] of Object.entries(hit.data || {})) tooltip.dataset[k] = String(v);
    tooltip.hidden = false;
    tooltip.style.left = `${Math.min(ev.clientX - box.left + 14, W - 220)}px`;
    tooltip.style.top = `${ev.clientY - box.top + 12}px`;
  });
  svg.addEventListener("mouseleave", () => { guide.setAttribute("visibility", "hidden"); tooltip.hidden = true; });
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

function render({ model, el: root }) {
  let disposed = false;
  let seq = 0; // newest request wins
  let timer = null;
  const box = el("div", "lensnb lensnb-rope");
  root.appendChild(box);

  // -- toolbar: tabs and view options
  const bar = el("div", "lensnb-rope-bar");
  const tabButtons = {};
  for (const [key, name] of TAB_NAMES) {
    const b = el("button", "lensnb-rope-tab", name);
    b.dataset.tab = key;
    b.addEventListener("click", () => { model.set("tab", key); model.save_changes(); });
    tabButtons[key] = b;
    bar.appendChild(b);
  }
  const yAxis = el("select", "lensnb-rope-yaxis");
  for (const [v, t] of [["wavelength", "wavelength (tokens)"], ["inv_freq", "inverse frequency"]]) {
    const o = el("option", "", t); o.value = v; yAxis.appendChild(o);
  }
  yAxis.addEventListener("change", () => { model.set("y_axis", yAxis.value); model.save_changes(); });
  const logY = el("input"); logY.type = "checkbox"; logY.className = "lensnb-rope-logy";
  logY.addEventListener("change", () => { model.set("log_y", logY.checked); model.save_changes(); });
  const logLabel = el("label", "lensnb-rope-check"); logLabel.append(logY, el("span", "", " log y"));
  const showOrig = el("input"); showOrig.type = "checkbox";
  showOrig.addEventListener("change", () => { model.set("show_original", showOrig.checked); model.save_changes(); });
  const origLabel = el("label", "lensnb-rope-check"); origLabel.append(showOrig, el("span", "", " unscaled"));
  const which = el("select", "lensnb-rope-which");
  for (const [v, t] of [["q", "query heads"], ["k", "key/value heads"]]) {
    const o = el("option", "", t); o.value = v; which.appendChild(o);
  }
  which.addEventListener("change", () => { model.set("usage_which", which.value); model.save_changes(); });
  const spectrumOpts = el("span", "lensnb-rope-opts"); spectrumOpts.append(yAxis, logLabel, origLabel);
  bar.append(spectrumOpts, which);
  box.appendChild(bar);

  // -- sliders
  const sliders = el("div", "lensnb-rope-sliders");
  const inputs = {};
  for (const [key, name, lo, hi, step, to, from, show] of SLIDERS) {
    const row = el("label", "lensnb-rope-slider");
    const input = el("input");
    Object.assign(input, { type: "range", min: lo, max: hi, step });
    input.dataset.param = key;
    const value = el("span", "lensnb-rope-value");
    const sync = () => { input.value = String(to(model.get(key))); value.textContent = show(model.get(key)); };
    input.addEventListener("input", () => {
      let v = from(Number(input.value));
      model.set(key, v);
      // keep high_freq_factor > low_freq_factor
      const low = model.get("low_freq_factor"), high = model.get("high_freq_factor");
      if (high <= low) {
        if (key === "high_freq_factor") model.set("low_freq_factor", Math.max(0.25, high - 0.25));
        else model.set("high_freq_factor", low + 0.25);
      }
      model.save_changes();
      for (const k of Object.keys(inputs)) inputs[k].sync();
      schedule();
    });
    row.append(el("span", "lensnb-rope-name", name), input, value);
    inputs[key] = { input, sync };
    sliders.appendChild(row);
  }
  const reset = el("button", "lensnb-rope-reset", "reset");
  reset.addEventListener("click", () => {
    const init = model.get("initial") || {};
    for (const k of Object.keys(init)) model.set(k, init[k]);
    model.save_changes();
    for (const k of Object.keys(inputs)) inputs[k].sync();
    schedule();
  });
  sliders.appendChild(reset);
  box.appendChild(sliders);

  const chart = el("div", "lensnb-rope-chart");
  const tooltip = el("div", "lensnb-rope-tooltip"); tooltip.hidden = true;
  const plotHost = el("div", "lensnb-rope-plot");
  chart.append(plotHost, tooltip);
  const legendHost = el("div", "lensnb-rope-legend");
  const status = el("div", "lensnb-rope-status");
  box.append(chart, legendHost, status);

  const params = () => Object.fromEntries(SLIDERS.map(([k]) => [k, model.get(k)]));

  function syncControls() {
    const tab = model.get("tab");
    for (const [k, b] of Object.entries(tabButtons)) b.classList.toggle("active", k === tab);
    tabButtons.usage.disabled = !model.get("has_usage");
    tabButtons.usage.title = model.get("has_usage") ? "" : "needs a loaded model: RopeSpectrum(lens)";
    yAxis.value = model.get("y_axis");
    logY.checked = model.get("log_y");
    showOrig.checked = model.get("show_original");
    which.value = model.get("usage_which");
    spectrumOpts.hidden = tab !== "spectrum";
    which.hidden = tab !== "usage";
    sliders.hidden = tab === "usage";
    for (const k of Object.keys(inputs)) inputs[k].sync();
  }

  function fail(err) {
    status.replaceChildren(el("span", "lensnb-error", String(err && err.message ? err.message : err)));
  }

  async function refresh() {
    if (disposed) return;
    const mine = ++seq;
    const tab = model.get("tab");
    const req = tab === "usage" ? { what: "usage", which: model.get("usage_which") } : { what: tab, params: params() };
    status.textContent = "computing…";
    try {
      const { reply, buffers } = await request(model, req);
      if (disposed || mine !== seq) return;
      status.textContent = "";
      if (tab === "spectrum") drawSpectrum(reply, buffers);
      else if (tab === "decay") drawDecay(reply, buffers);
      else drawUsage(reply, buffers);
      box.dataset.ready = String(mine); // browser tests wait for this
    } catch (err) {
      if (!disposed && mine === seq) fail(err);
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 40);
  }

  function drawSpectrum(reply, buffers) {
    const wave = model.get("y_axis") === "wavelength";
    const conv = (w) => (wave ? w : (2 * Math.PI) / w);
    const series = reply.series.map((s, i) => {
      const m = unpack(s.data, buffers[i]);
      const n = m.shape[1];
      const row = (r) => m.data.subarray(r * n, (r + 1) * n);
      return { ...s, n, base: row(wave ? 2 : 0), scaled: row(wave ? 3 : 1), smooth: row(4), region: row(5) };
    });
    const lines = [];
    const edited = series[0];
    const idx = (n) => Float32Array.from({ length: n }, (_, i) => i);
    if (model.get("show_original")) {
      lines.push({ x: idx(edited.n), y: edited.base, colour: themeColour(box, "fg_muted"), dash: true, width: THEME.lines.normal, label: `${edited.label} (unscaled)` });
    }
    series.forEach((s, i) => lines.push({
      x: idx(s.n), y: s.scaled, colour: seriesColour(i), width: s.role === "edited" ? THEME.lines.emphasis : THEME.lines.normal,
      markers: s.n <= 64 && s.role === "edited", label: s.role === "edited" ? `${s.label} (scaled)` : s.label,
    }));
    const hbands = [];
    const b = reply.bands;
    if (b) {
      const edges = [1e-12, b.high_freq_wavelen, b.low_freq_wavelen, 1e15];
      reply.regions.slice(0, 3).forEach((name, i) => hbands.push({ y0: conv(edges[i]), y1: conv(edges[i + 1]), fill: REGION_FILL[name], label: name }));
    }
    const orig = reply.original_context;
    lineChart(plotHost, {
      xLog: false, yLog: model.get("log_y"), lines, hbands,
      xLabel: "rotary pair i (dims i, i + d/2)", yLabel: wave ? "wavelength (tokens)" : "inverse frequency (rad/token)",
      hlines: [{ at: conv(orig), label: `original context ${orig.toLocaleString("en-US")}` }],
      hover: (xv) => {
        const i = Math.max(0, Math.min(edited.n - 1, Math.round(xv)));
        const out = [`pair ${i} (dims ${i}, ${i + edited.n})`];
        series.forEach((s) => { if (i < s.n) out.push(`${s.label}: ${fmt(s.scaled[i])}`); });
        out.push(`unscaled: ${fmt(edited.base[i])}`);
        out.push(`${reply.regions[edited.region[i]]}, smoothing weight ${edited.smooth[i].toFixed(3)}`);
        return { x: i, lines: out, data: { pair: i, value: edited.scaled[i] } };
      },
    }, tooltip);
    legend(legendHost, lines);
  }

  function drawDecay(reply, buffers) {
    const dist = unpack(reply.distances, buffers[0]).data;
    let colour = 0;
    const lines = reply.series.map((s, i) => ({
      x: dist, y: unpack(s.data, buffers[i + 1]).data, label: s.role === "edited" ? `${s.label} (scaled)` : s.label,
      dash: s.role === "original", width: s.role === "edited" ? THEME.lines.normal : THEME.lines.thin,
      colour: s.role === "original" ? themeColour(box, "fg_muted") : seriesColour(colour++),
    }));
    const orig = reply.original_context;
    lineChart(plotHost, {
      xLog: true, yLog: false, lines, xLabel: "relative distance d (tokens)", yLabel: "mean cos(d·θᵢ), unit q = k",
      vlines: [{ at: orig, label: `original context ${orig.toLocaleString("en-US")}` }],
      hover: (xv) => {
        const i = nearest(dist, xv, true);
        return { x: dist[i], lines: [`d = ${Math.round(dist[i]).toLocaleString("en-US")}`, ...lines.map((l) => `${l.label}: ${l.y[i].toFixed(4)}`)] };
      },
    }, tooltip);
    legend(legendHost, lines);
  }

  function drawUsage(reply, buffers) {
    const m = unpack(reply.data, buffers[0]);
    const [rows, cols] = m.shape;
    const nHeads = reply.n_heads;
    let vmax = 0;
    for (const v of m.data) vmax = Math.max(vmax, v);
    vmax = vmax || 1;
    const cw = Math.max(3, Math.min(40, Math.floor(480 / cols)));
    const ch = Math.max(1, Math.min(14, Math.floor(520 / rows)));
    const left = 48, top = 8;
    const canvas = el("canvas", "lensnb-rope-heatmap");
    const dpr = window.devicePixelRatio || 1;
    const cssW = left + cols * cw + 90, cssH = top + rows * ch + 40;
    canvas.width = cssW * dpr; canvas.height = cssH * dpr;
    canvas.style.width = `${cssW}px`; canvas.style.height = `${cssH}px`;
    const ctx = canvas.getContext("2d");
    ctx.scale(dpr, dpr);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      const [R, G, B] = viridis(m.data[r * cols + c] / vmax);
      ctx.fillStyle = `rgb(${R | 0},${G | 0},${B | 0})`;
      ctx.fillRect(left + c * cw, top + r * ch, cw, ch);
    }
    ctx.fillStyle = themeColour(box, "fg");
    ctx.font = `${THEME.font.small_px}px ${THEME.font.ui}`;
    ctx.textAlign = "right";
    for (let l = 0; l < reply.n_layers; l++) {
      ctx.fillText(`L${l}`, left - 4, top + l * nHeads * ch + Math.min(nHeads * ch, 12) - 1);
      if (l) { ctx.fillRect(left, top + l * nHeads * ch, cols * cw, 1); }
    }
    ctx.textAlign = "center";
    const every = Math.max(1, Math.ceil(cols / 16));
    for (let c = 0; c < cols; c += every) ctx.fillText(String(c), left + c * cw + cw / 2, top + rows * ch + 13);
    ctx.fillText("rotary pair (high → low frequency)", left + (cols * cw) / 2, top + rows * ch + 30);
    // colour bar
    const bx = left + cols * cw + 16;
    for (let i = 0; i < 100; i++) {
      const [R, G, B] = viridis(1 - i / 99);
      ctx.fillStyle = `rgb(${R | 0},${G | 0},${B | 0})`;
      ctx.fillRect(bx, top + (i * rows * ch) / 100, 12, (rows * ch) / 100 + 1);
    }
    ctx.fillStyle = themeColour(box, "fg");
    ctx.textAlign = "left";
    ctx.fillText(vmax.toFixed(2), bx + 16, top + 10);
    ctx.fillText("0", bx + 16, top + rows * ch);
    plotHost.replaceChildren(canvas);
    const kind = reply.which === "q" ? "query" : "KV";
    legendHost.replaceChildren(el("span", "", `share of each ${kind} head's squared norm in each rotary pair (rows: layer, head)`));
    canvas.addEventListener("mousemove", (ev) => {
      const b = canvas.getBoundingClientRect();
      const c = Math.floor((ev.clientX - b.left - left) / cw), r = Math.floor((ev.clientY - b.top - top) / ch);
      if (c < 0 || c >= cols || r < 0 || r >= rows) { tooltip.hidden = true; return; }
      const l = Math.floor(r / nHeads), h = r % nHeads;
      tooltip.textContent = `layer ${l}, ${kind} head ${h}, pair ${c}\nwavelength ${fmt(reply.wavelength[c])} tokens\nshare ${m.data[r * cols + c].toFixed(4)}`;
      tooltip.hidden = false;
      tooltip.style.left = `${ev.clientX - b.left + 14}px`;
      tooltip.style.top = `${ev.clientY - b.top + 12}px`;
    });
    canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  }

  const onChange = () => { syncControls(); schedule(); };
  const watched = ["tab", "y_axis", "log_y", "show_original", "usage_which", ...SLIDERS.map(([k]) => k)];
  for (const k of watched) model.on(`change:${k}`, onChange);
  const stopTheme = onThemeChange(schedule); // canvas text and muted lines follow the theme
  syncControls();
  refresh();
  return () => {
    disposed = true;
    stopTheme();
    clearTimeout(timer);
    for (const k of watched) model.off(`change:${k}`, onChange);
  };
}

export default { render };
