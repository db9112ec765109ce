// AttentionExplorer frontend (lensnb/widgets/attention.py), after attention_draw.js and
// attention_text.js: request, unpack, viridis, el, tileCanvas, textPanel, ... are in scope.

function render({ model, el: root }) {
  const t0 = performance.now();
  const N = model.get("tokens").length;
  const tokens = () => model.get("tokens");
  const groupSize = () => model.get("n_heads") / model.get("n_kv");
  const state = {
    scale: "linear",
    win: { q0: 0, q1: N, k0: 0, k1: N }, // visible window, token coordinates
    overview: null, // {canvas, tile} of the shown head
    detail: null, // finer tile of the current window
    hover: null, // {i, j}
    switchT0: null,
    generation: 0, // bumps on layer/head change to drop stale replies
    thumbGeneration: 0,
    alive: true,
  };
  const overviews = new Lru(64); // "layer:head" -> {canvas, tile}
  const thumbs = new Map(); // "layer:head" -> canvas
  const rows = new Lru(512); // "row|column:layer:head:pos" -> Float32Array

  root.classList.add("lensnb", "lensnb-attn");
  root.replaceChildren();

  // ---------------------------------------------------------------- toolbar
  const bar = el("div", "lensnb-attn-bar");
  const layerSel = el("select", "lensnb-attn-layer");
  for (const l of model.get("layers")) {
    const opt = el("option", "", `layer ${l}`);
    opt.value = String(l);
    layerSel.appendChild(opt);
  }
  const viewBtns = {};
  const viewBox = el("span", "lensnb-attn-views");
  for (const [v, label] of [["head", "Head"], ["group", "KV group"], ["text", "Text"]]) {
    const b = el("button", "lensnb-attn-view", label);
    b.dataset.view = v;
    b.addEventListener("click", () => { model.set("view", v); model.save_changes(); });
    viewBtns[v] = b;
    viewBox.appendChild(b);
  }
  const scaleSel = el("select", "lensnb-attn-scale");
  for (const s of ["linear", "sqrt"]) {
    const opt = el("option", "", `colour: ${s}`);
    opt.value = s;
    scaleSel.appendChild(opt);
  }
  const resetBtn = el("button", "lensnb-attn-reset", "reset zoom");
  const title = el("span", "lensnb-attn-title");
  bar.append(layerSel, viewBox, scaleSel, resetBtn, title);

  const body = el("div", "lensnb-attn-body");
  const grid = el("div", "lensnb-attn-grid");
  const main = el("div", "lensnb-attn-main");
  body.append(grid, main);
  const hoverLine = el("div", "lensnb-attn-hover", "hover a cell: query, key and weight");
  const errorLine = el("div", "lensnb-error");
  const notice = el("div", "lensnb-attn-note lensnb-attn-notice", model.get("notice") || "");
  notice.hidden = !model.get("notice"); // Llama 3.2 Vision: where the cross-attention layers are
  root.append(bar, notice, body, hoverLine, errorLine);

  const showError = (err) => { errorLine.textContent = String(err && err.message ? err.message : err); };
  const ask = (req) => request(model, req);

  // ---------------------------------------------------------------- head view
  const headView = el("div", "lensnb-attn-headview");
  const [heat, hctx] = hiDpiCanvas(MARGIN + PLOT + 4, MARGIN + PLOT + 4, "lensnb-attn-heatmap");
  headView.appendChild(heat);
  const groupView = el("div", "lensnb-attn-groupview");
  const textView = el("div", "lensnb-attn-textview");
  main.append(headView, groupView, textView);

  function decodeTile(reply, buffer, extra = {}) {
    const t = unpack(reply.meta, buffer);
    return Object.assign(t, { vmax: reply.vmax, fq: reply.fq || 1, fk: reply.fk || 1, causal: true }, extra);
  }

  function cellAt(x, y) {
    const { q0, q1, k0, k1 } = state.win;
    if (x < MARGIN || y < MARGIN || x >= MARGIN + PLOT || y >= MARGIN + PLOT) return null;
    const i = Math.floor(q0 + ((y - MARGIN) / PLOT) * (q1 - q0));
    const j = Math.floor(k0 + ((x - MARGIN) / PLOT) * (k1 - k0));
    return { i: Math.min(N - 1, Math.max(0, i)), j: Math.min(N - 1, Math.max(0, j)) };
  }

  function drawTile(entry) {
    // entry.tile covers window [tq0, tq0 + rows*fq) x [tk0, tk0 + cols*fk) in token coordinates
    const { q0, q1, k0, k1 } = state.win;
    const t = entry.tile;
    const sx = (k0 - t.k0) / t.fk, sy = (q0 - t.q0) / t.fq;
    const sw = (k1 - k0) / t.fk, sh = (q1 - q0) / t.fq;
    hctx.drawImage(entry.canvas, sx, sy, sw, sh, MARGIN, MARGIN, PLOT, PLOT);
  }

  function drawHeatmap() {
    const W = MARGIN + PLOT + 4;
    hctx.fillStyle = themeColour(root, "bg");
    hctx.fillRect(0, 0, W, W);
    hctx.fillStyle = themeColour(root, "bg_alt"); // under masked (transparent) cells
    hctx.fillRect(MARGIN, MARGIN, PLOT, PLOT);
    hctx.imageSmoothingEnabled = false;
    if (state.overview) drawTile(state.overview);
    const d = state.detail;
    const { q0, q1, k0, k1 } = state.win;
    if (d && d.tile.q0 <= q0 && d.tile.k0 <= k0 && d.tile.q1 >= q1 && d.tile.k1 >= k1) drawTile(d);
    hctx.strokeStyle = themeColour(root, "border");
    hctx.strokeRect(MARGIN - 0.5, MARGIN - 0.5, PLOT + 1, PLOT + 1);
    // axes: token labels when cells are tall enough, positions otherwise
    const toks = tokens();
    hctx.fillStyle = themeColour(root, "fg");
    hctx.font = `${THEME.font.tiny_px}px ${THEME.font.mono}`;
    const cell = PLOT / (q1 - q0);
    const every = cell >= 10 ? 1 : Math.ceil(40 / cell);
    const first = Math.ceil(q0 / every) * every;
    hctx.textAlign = "right";
    hctx.textBaseline = "middle";
    for (let i = first; i < q1; i += every) {
      const y = MARGIN + (i + 0.5 - q0) * cell;
      if (y < MARGIN) continue;
      hctx.fillText(every === 1 ? tokenLabel(toks[i]) : String(i), MARGIN - 4, y);
    }
    const kcell = PLOT / (k1 - k0);
    const kevery = kcell >= 10 ? 1 : Math.ceil(40 / kcell);
    const kfirst = Math.ceil(k0 / kevery) * kevery;
    for (let j = kfirst; j < k1; j += kevery) {
      const x = MARGIN + (j + 0.5 - k0) * kcell;
      if (x < MARGIN) continue;
      hctx.save();
      hctx.translate(x, MARGIN - 4);
      hctx.rotate(-Math.PI / 2);
      hctx.textAlign = "left";
      hctx.fillText(kevery === 1 ? tokenLabel(toks[j]) : String(j), 0, 0);
      hctx.restore();
    }
    hctx.textAlign = "left";
    hctx.fillStyle = themeColour(root, "fg_muted");
    hctx.fillText("query ↓  key →", 2, 10);
    if (state.hover) {
      const { i, j } = state.hover;
      if (i >= q0 && i < q1 && j >= k0 && j < k1) {
        hctx.strokeStyle = THEME.roles.highlight;
        hctx.lineWidth = 1.5;
        hctx.strokeRect(MARGIN + (j - k0) * kcell, MARGIN + (i - q0) * cell, Math.max(2, kcell), Math.max(2, cell));
        hctx.lineWidth = 1;
      }
    }
  }

  function updateTitle() {
    const l = model.get("layer"), h = model.get("head");
    const g = Math.floor(h / groupSize());
    const o = state.overview && state.overview.tile;
    const pooled = o && (o.fq > 1 || o.fk > 1) ? `, overview max-pooled over ${o.fq}×${o.fk} cells` : "";
    title.textContent = `L${l} H${h} · KV group ${g} · ${N} tokens${pooled}`;
  }

  async function loadHead() {
    const gen = ++state.generation;
    const layer = model.get("layer"), head = model.get("head");
    const key = `${layer}:${head}`;
    state.detail = null;
    let entry = overviews.get(key);
    if (!entry) {
      try {
        const { reply, buffers } = await ask({ kind: "tile", layer, head });
        const tile = decodeTile(reply, buffers[0], { q0: 0, k0: 0, q1: N, k1: N });
        entry = { tile, canvas: tileCanvas(tile, state.scale) };
        overviews.set(key, entry);
      } catch (err) { showError(err); return; }
    }
    if (gen !== state.generation || !state.alive) return;
    state.overview = entry;
    drawHeatmap();
    updateTitle();
    headView.dataset.layer = String(layer);
    headView.dataset.head = String(head);
    root.dataset.shownHead = String(head);
    root.dataset.shownLayer = String(layer);
    if (state.switchT0 !== null) {
      root.dataset.switchMs = (performance.now() - state.switchT0).toFixed(1);
      state.switchT0 = null;
    }
    if (!root.dataset.firstViewMs) root.dataset.firstViewMs = (performance.now() - t0).toFixed(1);
    markThumb();
    scheduleDetail();
  }

  // finer tile for a zoomed window (exact cells once the window fits the plot)
  let detailTimer = null;
  function scheduleDetail() {
    clearTimeout(detailTimer);
    const { q0, q1, k0, k1 } = state.win;
    const o = state.overview && state.overview.tile;
    if (!o || (o.fq === 1 && o.fk === 1) || (q1 - q0 >= N && k1 - k0 >= N)) return;
    detailTimer = setTimeout(async () => {
      const gen = state.generation;
      const w = { q0: Math.floor(q0), q1: Math.ceil(q1), k0: Math.floor(k0), k1: Math.ceil(k1) };
      const layer = model.get("layer"), head = model.get("head");
      try {
        const { reply, buffers } = await ask({ kind: "tile", layer, head, ...w, size: PLOT });
        if (gen !== state.generation) return;
        const tile = decodeTile(reply, buffers[0], w);
        state.detail = { tile, canvas: tileCanvas(tile, state.scale) };
        drawHeatmap();
      } catch (err) { showError(err); }
    }, 120);
  }

  // ---------------------------------------------------------------- zoom, pan, hover
  function clampWindow(w) {
    const size = Math.max(MIN_WINDOW, Math.min(N, w.q1 - w.q0));
    const ksize = Math.max(MIN_WINDOW, Math.min(N, w.k1 - w.k0));
    let q0 = Math.max(0, Math.min(N - size, w.q0));
    let k0 = Math.max(0, Math.min(N - ksize, w.k0));
    if (N < MIN_WINDOW) { q0 = 0; k0 = 0; }
    return { q0, q1: q0 + Math.min(N, size), k0, k1: k0 + Math.min(N, ksize) };
  }

  function onWheel(ev) {
    const c = cellAt(ev.offsetX, ev.offsetY);
    if (!c) return;
    ev.preventDefault();
    const f = ev.deltaY < 0 ? 0.8 : 1.25;
    const { q0, q1, k0, k1 } = state.win;
    const fy = (ev.offsetY - MARGIN) / PLOT, fx = (ev.offsetX - MARGIN) / PLOT;
    const qy = q0 + fy * (q1 - q0), kx = k0 + fx * (k1 - k0);
    const qs = (q1 - q0) * f, ks = (k1 - k0) * f;
    state.win = clampWindow({ q0: qy - fy * qs, q1: qy - fy * qs + qs, k0: kx - fx * ks, k1: kx - fx * ks + ks });
    drawHeatmap();
    scheduleDetail();
  }

  let drag = null;
  function onDown(ev) {
    if (!cellAt(ev.offsetX, ev.offsetY)) return;
    drag = { x: ev.clientX, y: ev.clientY, win: { ...state.win } };
  }
  function onMoveDrag(ev) {
    if (!drag) return false;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) < 3) return false;
    const w = drag.win;
    const sq = (w.q1 - w.q0) / PLOT, sk = (w.k1 - w.k0) / PLOT;
    state.win = clampWindow({ q0: w.q0 - dy * sq, q1: w.q1 - dy * sq, k0: w.k0 - dx * sk, k1: w.k1 - dx * sk });
    drawHeatmap();
    scheduleDetail();
    return true;
  }
  function onUp() { drag = null; }

  async function exactRow(kind, layer, head, pos) {
    const key = `${kind}:${layer}:${head}:${pos}`;
    let r = rows.get(key);
    if (!r) {
      const { reply, buffers } = await ask({ kind, layer, head, pos });
      r = unpack(reply.meta, buffers[0]).data;
      rows.set(key, r);
    }
    return r;
  }

  async function showHover(i, j) {
    const toks = tokens();
    const layer = model.get("layer"), head = model.get("head");
    const label = `query ${i} «${tokenLabel(toks[i], 24)}» → key ${j} «${tokenLabel(toks[j], 24)}»`;
    hoverLine.dataset.q = String(i);
    hoverLine.dataset.k = String(j);
    hoverLine.dataset.layer = String(layer);
    hoverLine.dataset.head = String(head);
    if (j > i) {
      hoverLine.dataset.weight = "0";
      hoverLine.textContent = `${label}: masked (causal)`;
      return;
    }
    delete hoverLine.dataset.weight;
    hoverLine.textContent = `${label}: …`;
    try {
      const row = await exactRow("row", layer, head, i);
      if (!state.hover || state.hover.i !== i || state.hover.j !== j || model.get("head") !== head) return;
      hoverLine.dataset.weight = String(row[j]);
      hoverLine.textContent = `${label}: weight ${weightText(row[j])}`;
    } catch (err) { showError(err); }
  }

  function onMove(ev) {
    if (onMoveDrag(ev)) return;
    const c = cellAt(ev.offsetX, ev.offsetY);
    if (!c) return;
    if (state.hover && state.hover.i === c.i && state.hover.j === c.j) return;
    state.hover = c;
    drawHeatmap();
    showHover(c.i, c.j);
  }

  heat.addEventListener("wheel", onWheel, { passive: false });
  heat.addEventListener("mousedown", onDown);
  heat.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);
  heat.addEventListener("dblclick", () => { state.win = { q0: 0, q1: N, k0: 0, k1: N }; state.detail = null; drawHeatmap(); });
  resetBtn.addEventListener("click", () => { state.win = { q0: 0, q1: N, k0: 0, k1: N }; state.detail = null; drawHeatmap(); });

  // ---------------------------------------------------------------- head grid
  const thumbEls = new Map(); // head -> {box, ctx}
  function buildGrid() {
    grid.replaceChildren();
    thumbEls.clear();
    const g = groupSize();
    const nkv = model.get("n_kv");
    for (let kv = 0; kv < nkv; kv++) {
      const box = el("div", "lensnb-attn-kv");
      box.dataset.kv = String(kv);
      const head = el("div", "lensnb-attn-kv-label", nkv === model.get("n_heads") ? `head ${kv}` : `KV group ${kv}`);
      head.title = "show this KV group";
      head.addEventListener("click", () => { model.set("kv_group", kv); model.set("view", "group"); model.save_changes(); });
      const row = el("div", "lensnb-attn-kv-heads");
      for (let h = kv * g; h < (kv + 1) * g; h++) {
        const cell = el("div", "lensnb-attn-thumb");
        cell.dataset.head = String(h);
        const [c, ctx] = hiDpiCanvas(48, 48, "");
        cell.append(c, el("div", "lensnb-attn-thumb-label", `H${h}`));
        cell.title = `head ${h} (KV head ${kv})`;
        cell.addEventListener("click", () => {
          state.switchT0 = performance.now();
          model.set("head", h);
          if (model.get("view") === "text") model.set("view", "head");
          model.save_changes();
        });
        row.appendChild(cell);
        thumbEls.set(h, { cell, ctx });
      }
      box.append(head, row);
      grid.appendChild(box);
    }
    markThumb();
  }

  function markThumb() {
    const h = model.get("head");
    const g = Math.floor(h / groupSize());
    for (const [head, { cell }] of thumbEls) cell.classList.toggle("selected", head === h);
    for (const box of grid.children) box.classList.toggle("selected", Number(box.dataset.kv) === g);
  }

  function paintThumb(h, canvas) {
    const t = thumbEls.get(h);
    if (!t) return;
    t.ctx.imageSmoothingEnabled = false;
    t.ctx.clearRect(0, 0, 48, 48); // masked cells are transparent
    t.ctx.drawImage(canvas, 0, 0, 48, 48);
    t.cell.dataset.loaded = "1";
  }

  async function loadThumbs() {
    const gen = ++state.thumbGeneration;
    const layer = model.get("layer");
    const n = model.get("n_heads");
    const current = model.get("head");
    const order = [...Array(n).keys()].sort((a, b) => Math.abs(a - current) - Math.abs(b - current));
    for (const h of order) {
      if (gen !== state.thumbGeneration || !state.alive) return;
      const key = `${layer}:${h}`;
      if (!thumbs.has(key)) {
        try {
          const { reply, buffers } = await ask({ kind: "thumb", layer, head: h });
          const t = decodeTile(reply, buffers[0]);
          t.fq = N / t.shape[0]; t.fk = N / t.shape[1]; t.q0 = 0; t.k0 = 0;
          thumbs.set(key, tileCanvas(t, state.scale));
        } catch (err) { showError(err); return; }
      }
      if (gen !== state.thumbGeneration) return;
      paintThumb(h, thumbs.get(key));
    }
    if (gen === state.thumbGeneration) root.dataset.thumbsMs = (performance.now() - t0).toFixed(1);
  }

  // ---------------------------------------------------------------- KV-group view
  async function loadGroup() {
    const layer = model.get("layer"), kv = model.get("kv_group");
    const gen = ++state.generation;
    groupView.replaceChildren(el("div", "lensnb-attn-note", `loading KV group ${kv}…`));
    try {
      const { reply, buffers } = await ask({ kind: "group", layer, kv_group: kv });
      if (gen !== state.generation) return;
      groupView.replaceChildren();
      const f = reply.f;
      const note = f > 1 ? ` (max over ${f}×${f} cells)` : "";
      const heads = el("div", "lensnb-attn-panels");
      const sums = el("div", "lensnb-attn-panels");
      reply.panels.forEach((p, idx) => {
        const t = decodeTile({ meta: p.meta, vmax: p.vmax, fq: f, fk: f }, buffers[idx], { q0: 0, k0: 0 });
        // spread (max - min) of a masked cell is 0 anyway; keep the mask for all panels
        const src = tileCanvas(t, state.scale);
        const side = 180;
        const [c, ctx] = hiDpiCanvas(side, side, "");
        ctx.drawImage(src, 0, 0, side, side);
        const panel = el("div", "lensnb-attn-panel");
        panel.dataset.name = p.name;
        panel.append(el("div", "lensnb-attn-panel-title", p.name.startsWith("H") ? p.name : `group ${p.name}`), c);
        c.addEventListener("mousemove", (ev) => {
          const i = Math.min(t.shape[0] - 1, Math.floor((ev.offsetY / side) * t.shape[0]));
          const j = Math.min(t.shape[1] - 1, Math.floor((ev.offsetX / side) * t.shape[1]));
          const w = (t.data[i * t.shape[1] + j] / 255) * t.vmax;
          const toks = tokens();
          const qa = i * f, ka = j * f;
          const where = f > 1 ? `queries ${qa}–${Math.min(N, qa + f) - 1}, keys ${ka}–${Math.min(N, ka + f) - 1}`
            : `query ${qa} «${tokenLabel(toks[qa], 24)}» → key ${ka} «${tokenLabel(toks[ka], 24)}»`;
          hoverLine.textContent = `${p.name}: ${where}: ${weightText(w)}${note}`;
        });
        if (p.name.startsWith("H")) {
          c.addEventListener("click", () => { state.switchT0 = performance.now(); model.set("head", Number(p.name.slice(1))); model.set("view", "head"); model.save_changes(); });
          heads.appendChild(panel);
        } else sums.appendChild(panel);
      });
      groupView.append(
        el("div", "lensnb-attn-note", `Layer ${layer}, KV group ${kv}: its query heads share one key/value head${note}. Click a head to open it.`),
        heads,
        el("div", "lensnb-attn-note", "Group summaries over its heads: mean, max and spread (max − min; large where heads sharing K/V still attend differently)."),
        sums);
    } catch (err) { showError(err); }
  }

  // ---------------------------------------------------------------- text view
  const text = textPanel({ model, N, tokens, exactRow, hoverLine, showError, state });
  textView.append(text.element);
  const buildText = text.build, loadText = text.load;

  // ---------------------------------------------------------------- wiring
  function showView() {
    const v = model.get("view");
    headView.hidden = v !== "head";
    groupView.hidden = v !== "group";
    textView.hidden = v !== "text";
    for (const [name, b] of Object.entries(viewBtns)) b.classList.toggle("selected", name === v);
    root.dataset.view = v;
    if (v === "head") loadHead();
    else if (v === "group") loadGroup();
    else loadText();
  }

  const onHead = () => {
    if (state.switchT0 === null) state.switchT0 = performance.now();
    state.win = { q0: 0, q1: N, k0: 0, k1: N };
    state.hover = null;
    markThumb();
    showView();
  };
  const onLayer = () => {
    layerSel.value = String(model.get("layer"));
    state.win = { q0: 0, q1: N, k0: 0, k1: N };
    buildGrid();
    showView();
    loadThumbs();
  };
  const onGroup = () => { markThumb(); if (model.get("view") === "group") loadGroup(); };
  const onText = () => { if (model.get("view") === "text") loadText(); };
  layerSel.addEventListener("change", () => { model.set("layer", Number(layerSel.value)); model.save_changes(); });
  scaleSel.addEventListener("change", () => {
    state.scale = scaleSel.value;
    overviews.map.clear();
    thumbs.clear();
    showView();
    loadThumbs();
  });

  const listeners = [
    ["change:head", onHead], ["change:layer", onLayer], ["change:kv_group", onGroup],
    ["change:view", showView], ["change:text_token", onText], ["change:text_role", onText],
  ];
  for (const [event, fn] of listeners) model.on(event, fn);

  layerSel.value = String(model.get("layer"));
  buildGrid();
  buildText();
  showView();
  loadThumbs();
  const stopTheme = onThemeChange(() => { drawHeatmap(); text.redraw(); });

  return () => {
    state.alive = false;
    stopTheme();
    window.removeEventListener("mouseup", onUp);
    for (const [event, fn] of listeners) model.off(event, fn);
  };
}

export default { render };
