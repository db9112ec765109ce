// RopeSpectrum tab views (after rope_chart.js): each draws one reply into the chart area of
// `ctx` ({model, box, plotHost, legendHost, tooltip}). The reply's arrays arrive as named
// buffers (lensnb/widgets/rope_spectrum.py's SpectrumReply, DecayReply, UsageReply).

/** Spectrum tab: scaled (and unscaled) wavelength or inverse frequency per rotary pair. */
function drawSpectrum(ctx, reply, buffers) {
  const { model, box } = ctx;
  const wave = model.get("y_axis") === "wavelength";
  const conv = (w) => (wave ? w : (2 * Math.PI) / w);
  const series = reply.series.map((s, i) => ({
    ...s, n: buffers.inv_freq[i].data.length, smooth: buffers.smooth[i].data, region: buffers.region[i].data,
    base: (wave ? buffers.base_wavelength : buffers.base_inv_freq)[i].data,
    scaled: (wave ? buffers.wavelength : buffers.inv_freq)[i].data,
  }));
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
  lineChart(ctx.plotHost, {
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
  }, ctx.tooltip);
  legend(ctx.legendHost, lines);
}

/** Decay tab: mean cos(d·θᵢ) against relative distance, per series. */
function drawDecay(ctx, reply, buffers) {
  const dist = buffers.distances.data;
  let colour = 0;
  const lines = reply.series.map((s, i) => ({
    x: dist, y: buffers.score[i].data, label: s.role === "edited" ? `${s.label} (scaled)` : s.label,
    dash: s.role === "original", width: s.role === "edited" ? THEME.lines.normal : THEME.lines.thin,
    colour: s.role === "original" ? themeColour(ctx.box, "fg_muted") : seriesColour(colour++),
  }));
  const orig = reply.original_context;
  lineChart(ctx.plotHost, {
    xLog: true, yLog: false, lines, xLabel: "relative distance d (tokens)", yLabel: "mean cos(d·θᵢ), unit q = k",
    vlines: [{ at: orig, label: `original context ${orig.toLocaleString("en-US")}` }],
    hover: (xv) => {
      const i = nearest(dist, xv, true);
      return { x: dist[i], lines: [`d = ${Math.round(dist[i]).toLocaleString("en-US")}`, ...lines.map((l) => `${l.label}: ${l.y[i].toFixed(4)}`)] };
    },
  }, ctx.tooltip);
  legend(ctx.legendHost, lines);
}

/** Usage tab: a canvas heatmap, rows (layer, head) x rotary pairs, with a colour bar. */
function drawUsage(ctx, reply, buffers) {
  const { box, tooltip } = ctx;
  const m = buffers.usage;
  const [rows, cols] = m.shape;
  const nHeads = reply.n_heads;
  const vmax = m.data.reduce((a, v) => Math.max(a, v), 0) || 1;
  const cw = Math.max(3, Math.min(40, Math.floor(480 / cols)));
  const ch = Math.max(1, Math.min(14, Math.floor(520 / rows)));
  const left = 48, top = 8;
  const [canvas, c2d] = hiDpiCanvas(left + cols * cw + 90, top + rows * ch + 40, "lensnb-rope-heatmap");
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    c2d.fillStyle = rgb(viridis(m.data[r * cols + c] / vmax));
    c2d.fillRect(left + c * cw, top + r * ch, cw, ch);
  }
  c2d.fillStyle = themeColour(box, "fg");
  c2d.font = `${THEME.font.small_px}px ${THEME.font.ui}`;
  c2d.textAlign = "right";
  for (let l = 0; l < reply.n_layers; l++) {
    c2d.fillText(`L${l}`, left - 4, top + l * nHeads * ch + Math.min(nHeads * ch, 12) - 1);
    if (l) { c2d.fillRect(left, top + l * nHeads * ch, cols * cw, 1); }
  }
  c2d.textAlign = "center";
  const every = Math.max(1, Math.ceil(cols / 16));
  for (let c = 0; c < cols; c += every) c2d.fillText(String(c), left + c * cw + cw / 2, top + rows * ch + 13);
  c2d.fillText("rotary pair (high → low frequency)", left + (cols * cw) / 2, top + rows * ch + 30);
  const bx = left + cols * cw + 16; // colour bar
  for (let i = 0; i < 100; i++) {
    c2d.fillStyle = rgb(viridis(1 - i / 99));
    c2d.fillRect(bx, top + (i * rows * ch) / 100, 12, (rows * ch) / 100 + 1);
  }
  c2d.fillStyle = themeColour(box, "fg");
  c2d.textAlign = "left";
  c2d.fillText(vmax.toFixed(2), bx + 16, top + 10);
  c2d.fillText("0", bx + 16, top + rows * ch);
  ctx.plotHost.replaceChildren(canvas);
  const kind = reply.which === "q" ? "query" : "KV";
  ctx.legendHost.replaceChildren(el("span", "", `share of each ${kind} head's squared norm in each rotary pair (rows: layer, head)`));
  const wavelength = buffers.wavelength.data;
  canvas.addEventListener("mousemove", (ev) => {
    const b = canvas.getBoundingClientRect();
    const c = Math.floor((ev.clientX - b.left - left) / cw), r = Math.floor((ev.clientY - b.top - top) / ch);
    if (c < 0 || c >= cols || r < 0 || r >= rows) { tooltip.hidden = true; return; }
    const l = Math.floor(r / nHeads), h = r % nHeads;
    showTooltip(tooltip, `layer ${l}, ${kind} head ${h}, pair ${c}\nwavelength ${fmt(wavelength[c])} tokens\nshare ${m.data[r * cols + c].toFixed(4)}`, ev, b);
  });
  canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
}
