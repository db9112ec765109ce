// AttentionExplorer head view (after attention_draw.js): one head's heatmap with zoom, pan and
// hover. The overview tile comes first (max-pooled above OVERVIEW tokens); a finer tile of the
// zoomed window follows. `ctx` is the explorer's shared context (see attention.js).

/** The head view: {element, load, resetZoom, dispose, redraw}. */
function headView(ctx) {
  const { model, root, state, N } = ctx;
  const element = el("div", "lensnb-attn-headview");
  const [heat, hctx] = hiDpiCanvas(MARGIN + PLOT + 4, MARGIN + PLOT + 4, "lensnb-attn-heatmap");
  element.appendChild(heat);
  const redraw = () => paintHeatmap(hctx, state, ctx.tokens());

  async function load() {
    const gen = ++state.generation;
    const layer = model.get("layer"), head = model.get("head");
    const key = `${layer}:${head}`;
    state.detail = null;
    let entry = ctx.overviews.get(key);
    if (!entry) {
      try {
        const { reply, buffers } = await ctx.ask("tile", { layer, head });
        const tile = decodeTile(buffers.tile, reply, { q0: 0, k0: 0, q1: N, k1: N });
        entry = { tile, canvas: tileCanvas(tile, state.scale) };
        ctx.overviews.set(key, entry);
      } catch (err) { ctx.showError(err); return; }
    }
    if (gen !== state.generation || !state.alive) return;
    state.overview = entry;
    redraw();
    ctx.onHeadShown();
    element.dataset.layer = String(layer);
    element.dataset.head = String(head);
    root.dataset.shownHead = String(head);
    root.dataset.shownLayer = String(layer);
    if (state.switchT0 !== null) {
      root.dataset.switchMs = (performance.now() - state.switchT0).toFixed(1);
      state.switchT0 = null;
    }
    if (!root.dataset.firstViewMs) root.dataset.firstViewMs = (performance.now() - ctx.t0).toFixed(1);
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
        const { reply, buffers } = await ctx.ask("tile", { layer, head, ...w, size: PLOT });
        if (gen !== state.generation) return;
        const tile = decodeTile(buffers.tile, reply, w);
        state.detail = { tile, canvas: tileCanvas(tile, state.scale) };
        redraw();
      } catch (err) { ctx.showError(err); }
    }, 120);
  }

  function resetZoom() {
    state.win = { q0: 0, q1: N, k0: 0, k1: N };
    state.detail = null;
    redraw();
  }
  heat.addEventListener("dblclick", resetZoom);
  const dispose = headPointer(ctx, heat, () => { redraw(); scheduleDetail(); }, redraw);
  return { element, load, resetZoom, dispose, redraw };
}

/** Zoom (wheel), pan (drag) and hover (exact weight) on the heatmap canvas; returns cleanup. */
function headPointer(ctx, heat, moved, redraw) {
  const { model, state, N, hoverLine } = ctx;
  const cellAt = (x, y) => {
    const { q0, q1, k0, k1 } = state.win;
    if (x < MARGIN || y < MARGIN || x >= MARGIN + PLOT || y >= MARGIN + PLOT) return null;
    const i = Math.floor(q0 + ((y - MARGIN) / PLOT) * (q1 - q0));
    const j = Math.floor(k0 + ((x - MARGIN) / PLOT) * (k1 - k0));
    return { i: Math.min(N - 1, Math.max(0, i)), j: Math.min(N - 1, Math.max(0, j)) };
  };
  heat.addEventListener("wheel", (ev) => {
    if (!cellAt(ev.offsetX, ev.offsetY)) return;
    ev.preventDefault();
    const f = ev.deltaY < 0 ? 0.8 : 1.25;
    const { q0, q1, k0, k1 } = state.win;
    const fy = (ev.offsetY - MARGIN) / PLOT, fx = (ev.offsetX - MARGIN) / PLOT;
    const qy = q0 + fy * (q1 - q0), kx = k0 + fx * (k1 - k0);
    const qs = (q1 - q0) * f, ks = (k1 - k0) * f;
    state.win = clampWindow({ q0: qy - fy * qs, q1: qy - fy * qs + qs, k0: kx - fx * ks, k1: kx - fx * ks + ks }, N);
    moved();
  }, { passive: false });
  let drag = null;
  heat.addEventListener("mousedown", (ev) => {
    if (cellAt(ev.offsetX, ev.offsetY)) drag = { x: ev.clientX, y: ev.clientY, win: { ...state.win } };
  });
  const onMoveDrag = (ev) => {
    if (!drag) return false;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) < 3) return false;
    const w = drag.win;
    const sq = (w.q1 - w.q0) / PLOT, sk = (w.k1 - w.k0) / PLOT;
    state.win = clampWindow({ q0: w.q0 - dy * sq, q1: w.q1 - dy * sq, k0: w.k0 - dx * sk, k1: w.k1 - dx * sk }, N);
    moved();
    return true;
  };
  async function showHover(i, j) {
    const toks = ctx.tokens();
    const layer = model.get("layer"), head = model.get("head");
    const label = `query ${i} «${tokenLabel(toks[i], 24)}» → key ${j} «${tokenLabel(toks[j], 24)}»`;
    Object.assign(hoverLine.dataset, { q: String(i), k: String(j), layer: String(layer), head: String(head) });
    if (j > i) {
      hoverLine.dataset.weight = "0";
      hoverLine.textContent = `${label}: masked (causal)`;
      return;
    }
    delete hoverLine.dataset.weight;
    hoverLine.textContent = `${label}: …`;
    try {
      const row = await ctx.exactRow("row", layer, head, i);
      if (!state.hover || state.hover.i !== i || state.hover.j !== j || model.get("head") !== head) return;
      hoverLine.dataset.weight = String(row[j]);
      hoverLine.textContent = `${label}: weight ${weightText(row[j])}`;
    } catch (err) { ctx.showError(err); }
  }
  heat.addEventListener("mousemove", (ev) => {
    if (onMoveDrag(ev)) return;
    const c = cellAt(ev.offsetX, ev.offsetY);
    if (!c || (state.hover && state.hover.i === c.i && state.hover.j === c.j)) return;
    state.hover = c;
    redraw();
    showHover(c.i, c.j);
  });
  const onUp = () => { drag = null; };
  window.addEventListener("mouseup", onUp);
  return () => window.removeEventListener("mouseup", onUp);
}
