// RopeSpectrum frontend (lensnb/widgets/rope_spectrum.py), last of its files (rope_chart.js and
// rope_views.js before it, common.js in front). Python computes every number (lensnb.rope); this
// file builds the toolbar and the sliders and asks for new data when they move.

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

/** A checkbox bound to a bool trait, with its label. */
function traitCheckbox(model, className, trait, text) {
  const input = el("input");
  input.type = "checkbox";
  if (className) input.className = className;
  input.addEventListener("change", () => setTraits(model, { [trait]: input.checked }));
  const label = el("label", "lensnb-rope-check");
  label.append(input, el("span", "", text));
  return [input, label];
}

/** The toolbar: tabs, y axis, log y, unscaled line, q/k choice. */
function ropeToolbar(model) {
  const element = el("div", "lensnb-rope-bar");
  const tabButtons = {};
  for (const [key, name] of TAB_NAMES) {
    const b = buttonEl("lensnb-rope-tab", name, () => setTraits(model, { tab: key }));
    b.dataset.tab = key;
    tabButtons[key] = b;
    element.appendChild(b);
  }
  const yAxis = selectEl("lensnb-rope-yaxis", [["wavelength", "wavelength (tokens)"], ["inv_freq", "inverse frequency"]],
    (v) => setTraits(model, { y_axis: v }));
  const [logY, logLabel] = traitCheckbox(model, "lensnb-rope-logy", "log_y", " log y");
  const [showOrig, origLabel] = traitCheckbox(model, "", "show_original", " unscaled");
  const which = selectEl("lensnb-rope-which", [["q", "query heads"], ["k", "key/value heads"]],
    (v) => setTraits(model, { usage_which: v }));
  const spectrumOpts = el("span", "lensnb-rope-opts");
  spectrumOpts.append(yAxis, logLabel, origLabel);
  element.append(spectrumOpts, which);
  function sync() {
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
  }
  return { element, sync };
}

/** The Llama 3.1 sliders and their reset button; `moved()` after every change. */
function ropeSliders(model, moved) {
  const element = el("div", "lensnb-rope-sliders");
  const inputs = {};
  const syncAll = () => { for (const k of Object.keys(inputs)) inputs[k].sync(); };
  for (const [key, name, lo, hi, step, to, from, show] of SLIDERS) {
    const row = el("label", "lensnb-rope-slider");
    const input = el("input");
    Object.assign(input, { type: "range", min: lo, max: hi, step });
    input.dataset.param = key;
    const value = el("span", "lensnb-rope-value");
    const sync = () => { input.value = String(to(model.get(key))); value.textContent = show(model.get(key)); };
    input.addEventListener("input", () => {
      model.set(key, from(Number(input.value)));
      // keep high_freq_factor > low_freq_factor
      const low = model.get("low_freq_factor"), high = model.get("high_freq_factor");
      if (high <= low) {
        if (key === "high_freq_factor") model.set("low_freq_factor", Math.max(0.25, high - 0.25));
        else model.set("high_freq_factor", low + 0.25);
      }
      model.save_changes();
      syncAll();
      moved();
    });
    row.append(el("span", "lensnb-rope-name", name), input, value);
    inputs[key] = { input, sync };
    element.appendChild(row);
  }
  element.appendChild(buttonEl("lensnb-rope-reset", "reset", () => {
    setTraits(model, model.get("initial") || {});
    syncAll();
    moved();
  }));
  return { element, sync: syncAll };
}

function render({ model, el: root }) {
  let disposed = false;
  let seq = 0; // newest request wins
  let timer = null;
  const box = el("div", "lensnb lensnb-rope");
  root.appendChild(box);
  const schedule = () => { clearTimeout(timer); timer = setTimeout(refresh, 40); };
  const bar = ropeToolbar(model), sliders = ropeSliders(model, schedule);
  const chart = el("div", "lensnb-rope-chart");
  const ctx = { model, box, plotHost: el("div", "lensnb-rope-plot"), legendHost: el("div", "lensnb-rope-legend"),
    tooltip: el("div", "lensnb-rope-tooltip") };
  ctx.tooltip.hidden = true;
  chart.append(ctx.plotHost, ctx.tooltip);
  const status = el("div", "lensnb-rope-status");
  box.append(bar.element, sliders.element, chart, ctx.legendHost, status);
  const params = () => Object.fromEntries(SLIDERS.map(([k]) => [k, model.get(k)]));
  const syncControls = () => { bar.sync(); sliders.element.hidden = model.get("tab") === "usage"; sliders.sync(); };

  async function refresh() {
    if (disposed) return;
    const mine = ++seq;
    const tab = model.get("tab");
    status.textContent = "computing…";
    try {
      const { reply, buffers } = tab === "usage" ? await request(model, "usage", { which: model.get("usage_which") })
        : await request(model, tab, { params: params() });
      if (disposed || mine !== seq) return;
      status.textContent = "";
      ({ spectrum: drawSpectrum, decay: drawDecay, usage: drawUsage })[tab](ctx, reply, buffers);
      box.dataset.ready = String(mine); // browser tests wait for this
    } catch (err) {
      if (!disposed && mine === seq) status.replaceChildren(el("span", "lensnb-error", errorText(err)));
    }
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
