// PatchingWorkbench frontend (lensnb/widgets/patching_workbench.py), last of its files: the
// tabs, the patching tab (site and method switches, the sweep heatmap computed a few layers
// per request with progress and Stop, hover and click) and the wiring of the panels
// (patching_panels.js) through one shared context `wb`.

// which axis a site's columns are before anything is computed (the reply's dims say it after)
const PW_COLUMNS = { head: "head", kv_group: "kv_group" };
const PW_TABS = [["patching", "Patching"], ["ablation", "Ablation"], ["logit_lens", "Logit lens"]];

/** The two prompts token by token (literal text), differing positions marked. */
function pwTokenStrip(model) {
  const element = el("div", "lensnb-pw-tokens");
  const clean = model.get("clean_tokens"), corrupted = model.get("corrupted_tokens");
  for (const [label, toks, other] of [["clean", clean, corrupted], ["corrupted", corrupted, clean]]) {
    const line = el("div", `lensnb-pw-prompt lensnb-pw-prompt-${label}`);
    line.append(el("span", "lensnb-pw-muted lensnb-pw-prompt-label", label));
    toks.forEach((t, p) => {
      const span = el("span", "lensnb-pw-token", tokenLabel(t, 1000)); // whitespace made visible
      span.classList.toggle("differs", t !== other[p]);
      span.title = `position ${p}`;
      line.append(span);
    });
    element.append(line);
  }
  return element;
}

/** The patching tab: switches, compute / stop, progress, heatmap, hover and selection lines. */
function pwPatchingTab(wb) {
  const { model } = wb;
  const element = el("div", "lensnb-pw-patching");
  const siteBox = el("div", "lensnb-pw-sites");
  const methodBox = el("span", "lensnb-pw-methods");
  const headSel = selectEl("lensnb-pw-head", Array.from({ length: model.get("n_heads") }, (_, h) => [h, `head ${h}`]),
    (v) => setTraits(model, { head_by_pos_head: Number(v) }));
  const computeBtn = buttonEl("lensnb-pw-compute", "Compute", () => start());
  const stopBtn = buttonEl("lensnb-pw-stop", "Stop", () => {
    if (state.run) state.run.stop = true; // honoured between steps: the rows done so far stay
    drawControls();
    status.textContent = "stopping when this step ends…";
  });
  const progress = el("progress", "lensnb-pw-progress");
  progress.max = 1;
  progress.value = 0;
  const status = el("span", "lensnb-pw-status");
  const controls = el("div", "lensnb-pw-bar");
  controls.append(methodBox, headSel, computeBtn, stopBtn, progress, status);
  const gridBox = el("div", "lensnb-pw-gridbox");
  const tooltip = el("div", "lensnb-pw-tooltip");
  tooltip.hidden = true;
  const legend = el("div", "lensnb-pw-legend");
  const cellLine = el("div", "lensnb-pw-cell", "click a cell: its exact score (a head or KV group: its attention and direct logit attribution)");
  const detail = pwDetailPanel(wb);
  const left = el("div", "lensnb-pw-left");
  left.append(gridBox, legend, cellLine, detail.element);
  const body = el("div", "lensnb-pw-body");
  body.append(left, detail.attention);
  element.append(siteBox, controls, pwTokenStrip(model), body);
  const state = { sweeps: new Map(), run: null, running: Promise.resolve(), pinned: null };
  wb.detail = detail;

  const key = () => `${model.get("site")}/${model.get("method")}`;
  const siteRow = (site) => model.get("sites").find((s) => s.site === site);
  const inCopy = (k) => { const s = model.get("sweeps")[k]; return Boolean(s && s.done > 0); };

  function reasonFor(site, method) {
    const r = siteRow(site).reasons[method];
    if (r) return r;
    if (!wb.live && !inCopy(`${site}/${method}`)) return "not computed in this static copy (open the notebook with its kernel to compute it)";
    return "";
  }

  function drawSwitches() {
    siteBox.replaceChildren(el("span", "lensnb-pw-muted", "site"));
    for (const s of model.get("sites")) {
      const reason = reasonFor(s.site, "exact") && reasonFor(s.site, "attribution");
      const b = buttonEl("lensnb-pw-site", s.site, () => {
        const method = reasonFor(s.site, model.get("method")) ? (reasonFor(s.site, "exact") ? "attribution" : "exact") : model.get("method");
        setTraits(model, { site: s.site, method });
      });
      b.dataset.site = s.site;
      b.title = reason ? `${s.label}: ${reason}` : s.label;
      b.disabled = Boolean(reason);
      b.classList.toggle("selected", s.site === model.get("site"));
      siteBox.append(b);
    }
    methodBox.replaceChildren(el("span", "lensnb-pw-muted", "method"));
    for (const m of ["exact", "attribution"]) {
      const reason = reasonFor(model.get("site"), m);
      const b = buttonEl("lensnb-pw-method", m, () => setTraits(model, { method: m }));
      b.dataset.method = m;
      b.disabled = Boolean(reason);
      b.title = reason || (m === "exact" ? "one patched run per cell (batched)" : "attribution patching: a first-order estimate of every cell from two forward passes and one backward");
      b.classList.toggle("selected", m === model.get("method"));
      methodBox.append(b);
    }
    headSel.hidden = model.get("site") !== "head_by_pos";
    headSel.value = String(model.get("head_by_pos_head"));
  }

  function drawControls() {
    const entry = state.sweeps.get(key());
    const running = Boolean(state.run && state.run.key === key() && !state.run.stop);
    const complete = Boolean(entry && entry.reply.complete);
    const reason = siteRow(model.get("site")).reasons[model.get("method")];
    computeBtn.hidden = !wb.live;
    stopBtn.hidden = !wb.live;
    computeBtn.disabled = running || complete || Boolean(reason);
    stopBtn.disabled = !running;
    computeBtn.textContent = complete ? "Computed" : entry && entry.reply.done.length ? "Continue" : "Compute";
    progress.classList.toggle("active", running);
    const L = model.get("n_layers");
    const done = entry ? entry.reply.done.length : 0;
    if (!running) progress.value = done / L;
    element.dataset.complete = String(complete);
    status.textContent = reason ? `${model.get("site")} does not apply: ${reason}` : complete ? `computed (${entry.reply.seconds.toFixed(2)} s in the kernel)`
      : running ? `computing ${key()}: ${done} of ${L} layers…`
        : done ? `${done} of ${L} layers computed` : wb.live ? "not computed yet" : "not in this copy";
  }

  function columns(entry) {
    const site = model.get("site");
    const axis = entry ? entry.reply.dims[1] : PW_COLUMNS[site] || "position";
    if (axis === "head") return Array.from({ length: model.get("n_heads") }, (_, h) => `H${h}`);
    if (axis === "kv_group") return Array.from({ length: model.get("n_kv") }, (_, g) => `G${g}`);
    return model.get("clean_tokens");
  }

  /** The shown value of cell (i, j) of the current sweep (NaN: not computed). */
  function value(entry, i, j) {
    if (!entry) return NaN;
    const s = entry.scores, shape = s.shape;
    if (shape.length === 3) return s.data[(i * shape[1] + j) * shape[2] + model.get("head_by_pos_head")];
    return s.data[i * shape[1] + j];
  }

  function describe(entry, c) {
    const site = model.get("site"), axis = entry ? entry.reply.dims[1] : PW_COLUMNS[site] || "position";
    const where = axis === "head" ? `L${c.i} H${c.j} (KV group ${wb.kvOf(c.j)})`
      : axis === "kv_group" ? `L${c.i} KV group ${c.j} (heads ${wb.headsOf(c.j).join(", ")})`
        : pwPosition(model, c.i, c.j) + (site === "head_by_pos" ? ` H${model.get("head_by_pos_head")}` : "");
    const v = value(entry, c.i, c.j);
    return { where, v, text: `${where} · score ${Number.isFinite(v) ? pwNumber(v) : "not computed yet"} (${model.get("method")})` };
  }

  function drawGrid() {
    const entry = state.sweeps.get(key());
    const L = model.get("n_layers");
    const cols = columns(entry);
    let vmax = 1;
    if (entry) for (let i = 0; i < L; i++) for (let j = 0; j < cols.length; j++) vmax = Math.max(vmax, Math.abs(value(entry, i, j)) || 0);
    const axis = entry ? entry.reply.dims[1] : PW_COLUMNS[model.get("site")] || "position";
    const grid = pwGrid({
      rows: Array.from({ length: L }, (_, l) => `L${l}`), cols,
      colour: (i, j) => { const v = value(entry, i, j); return Number.isFinite(v) ? pwSigned(v, vmax) : null; },
      groupEvery: axis === "head" ? model.get("n_heads") / model.get("n_kv") : 0,
    });
    const pinned = state.pinned && state.pinned.key === key() ? state.pinned : null;
    gridBox.replaceChildren(grid.element, tooltip); // in the page first: theme colours resolve there
    grid.draw(pinned);
    pwPointer(grid, (c, ev) => {
      if (!c) { tooltip.hidden = true; return; }
      const d = describe(entry, c);
      showTooltip(tooltip, d.text, ev, gridBox.getBoundingClientRect(), grid.size.W - 120);
      Object.assign(tooltip.dataset, { layer: String(c.i), col: String(c.j), score: String(d.v) });
    }, (c) => {
      state.pinned = { key: key(), i: c.i, j: c.j };
      grid.draw(state.pinned);
      const d = describe(entry, c);
      cellLine.textContent = d.text;
      Object.assign(cellLine.dataset, { layer: String(c.i), col: String(c.j), score: String(d.v), site: model.get("site"), method: model.get("method") });
      if (axis === "head") wb.select({ kind: "head", layer: c.i, head: c.j });
      else if (axis === "kv_group") wb.select({ kind: "kv_group", layer: c.i, kv_group: c.j });
      else if (model.get("site") === "head_by_pos") wb.select({ kind: "head", layer: c.i, head: model.get("head_by_pos_head") });
    });
    legend.replaceChildren(pwColourBar(THEME.diverging, `−${vmax.toPrecision(2)}`, `+${vmax.toPrecision(2)}`,
      `score: 0 = corrupted run, 1 = clean run (logit diff ${JSON.stringify(model.get("answer_text"))} − ${JSON.stringify(model.get("wrong_text"))})`));
    element.dataset.shown = key();
  }

  function store(k, got) {
    state.sweeps.set(k, { reply: got.reply, scores: got.buffers.scores });
  }

  async function loop(run) {
    const [site, method] = run.key.split("/");
    try {
      while (!run.stop) {
        const got = await wb.ask("sweep_step", { site, method });
        store(run.key, got);
        if (key() === run.key) { drawGrid(); drawControls(); }
        if (got.reply.complete) break;
      }
    } catch (err) { wb.showError(err); }
    if (state.run === run) state.run = null;
    drawControls();
  }

  /** Compute the shown sweep (after any run in flight has stopped at its step's end). */
  async function start() {
    if (!wb.live || reasonFor(model.get("site"), model.get("method"))) return;
    const k = key();
    const entry = state.sweeps.get(k);
    if (entry && entry.reply.complete) return;
    if (state.run && state.run.key === k && !state.run.stop) return;
    if (state.run) state.run.stop = true;
    await state.running;
    if (key() !== k || (state.run && state.run.key === k)) return;
    const run = { key: k, stop: false };
    state.run = run;
    drawControls();
    state.running = loop(run);
  }

  /** Show the current site/method: cached, or what the kernel has, or (auto) compute it. */
  async function show(auto) {
    drawSwitches();
    const k = key();
    if (!state.sweeps.has(k) && inCopy(k) && !reasonFor(...k.split("/"))) {
      try { store(k, await wb.ask("sweep", { site: model.get("site"), method: model.get("method") })); } catch (err) { wb.showError(err); }
    }
    if (key() !== k) return;
    drawGrid();
    drawControls();
    if (auto) start();
  }

  const onProgress = (msg) => { // sent by the kernel while a step runs
    if (!msg || msg.kind !== "progress" || `${msg.site}/${msg.method}` !== key()) return;
    progress.value = msg.fraction;
    const stopping = state.run && state.run.stop ? "stopping when this step ends: " : "";
    status.textContent = `${stopping}computing ${key()}: ${Math.round(100 * msg.fraction)}% (${msg.done} of ${msg.total} patched runs in this step)`;
  };
  model.on("msg:custom", onProgress);
  /** Sweeps computed from Python (wb.sweep()) show up here. */
  function refreshFromKernel() {
    const k = key(), info = model.get("sweeps")[k], entry = state.sweeps.get(k);
    if (info && (!entry || entry.reply.done.length < info.done) && !(state.run && state.run.key === k)) {
      state.sweeps.delete(k);
      show(false);
    }
  }
  const dispose = () => { if (state.run) state.run.stop = true; model.off("msg:custom", onProgress); };
  return { element, show, drawGrid, refreshFromKernel, dispose };
}

/** "L3 · position 5 «tok»" (and the corrupted token where it differs). */
function pwPosition(model, layer, p) {
  const c = model.get("clean_tokens")[p], r = model.get("corrupted_tokens")[p];
  return `L${layer} · position ${p} «${tokenLabel(c, 24)}»` + (c !== r ? ` (corrupted «${tokenLabel(r, 24)}»)` : "");
}

function render({ model, el: root }) {
  root.classList.add("lensnb", "lensnb-pw");
  root.replaceChildren();
  const errorLine = el("div", "lensnb-error");
  const groupSize = model.get("n_heads") / model.get("n_kv");
  const wb = {
    model, root,
    live: Boolean(model.widget_manager), // a standalone copy's model has no widget manager
    ask: (name, params) => request(model, name, params),
    showError: (err) => { errorLine.textContent = errorText(err); },
    select: (sel) => setTraits(model, { selected: sel }),
    kvOf: (h) => Math.floor(h / groupSize),
    headsOf: (g) => Array.from({ length: groupSize }, (_, i) => g * groupSize + i),
  };
  root.dataset.live = String(wb.live);
  const tabs = el("div", "lensnb-pw-tabs");
  const tabBtns = {};
  for (const [t, label] of PW_TABS) {
    const b = buttonEl("lensnb-pw-tab", label, () => setTraits(model, { tab: t }));
    b.dataset.tab = t;
    const reason = model.get("reasons")[t];
    b.disabled = Boolean(reason);
    if (reason) b.title = reason;
    tabBtns[t] = b;
    tabs.append(b);
  }
  const summary = el("span", "lensnb-pw-summary",
    `logit diff ${JSON.stringify(model.get("answer_text"))} − ${JSON.stringify(model.get("wrong_text"))}: clean ${pwNumber(model.get("clean_value"), 4)}, corrupted ${pwNumber(model.get("corrupted_value"), 4)}`);
  tabs.append(summary);
  const patching = pwPatchingTab(wb), ablation = pwAblationBoard(wb), lens = pwLogitLens(wb);
  root.append(tabs, patching.element, ablation.element, lens.element, errorLine);
  const loaded = new Set();
  function showTab() {
    const t = model.get("tab");
    patching.element.hidden = t !== "patching";
    ablation.element.hidden = t !== "ablation";
    lens.element.hidden = t !== "logit_lens";
    for (const [name, b] of Object.entries(tabBtns)) b.classList.toggle("selected", name === t);
    root.dataset.tab = t;
    if (loaded.has(t)) return;
    loaded.add(t);
    if (t === "ablation") { ablation.draw(); ablation.load(); }
    if (t === "logit_lens") lens.load();
  }
  const onSwitch = () => { errorLine.textContent = ""; patching.show(true); };
  const onAblated = () => { if (loaded.has("ablation")) ablation.load(); };
  const listeners = [
    ["change:site", onSwitch], ["change:method", onSwitch], ["change:head_by_pos_head", () => patching.show(false)],
    ["change:tab", showTab], ["change:selected", () => wb.detail.show()], ["change:reasons", () => wb.detail.show()], ["change:sweeps", () => patching.refreshFromKernel()],
    ["change:ablated_heads", onAblated], ["change:ablated_kv_groups", onAblated], ["change:ablate_how", onAblated],
  ];
  for (const [event, fn] of listeners) model.on(event, fn);
  showTab();
  patching.show(false);
  wb.detail.show();
  requestAnimationFrame(() => patching.drawGrid()); // once in the page: its theme's colours
  const stopTheme = onThemeChange(() => { patching.drawGrid(); wb.detail.show(); lens.redraw(); }); // canvases follow the theme
  return () => {
    patching.dispose();
    stopTheme();
    wb.detail.dispose();
    for (const [event, fn] of listeners) model.off(event, fn);
  };
}

export default { render };
