// AttentionExplorer head grid (after attention_head.js): one thumbnail per query head, grouped by
// the KV head they share; click a head to show it, a group label for the KV-group view.

/** The head grid: {element, build, mark, loadThumbs}. */
function headGrid(ctx) {
  const { model, root, state, N } = ctx;
  const element = el("div", "lensnb-attn-grid");
  const thumbs = new Map(); // "layer:head" -> canvas
  const thumbEls = new Map(); // head -> {cell, ctx}

  function build() {
    element.replaceChildren();
    thumbEls.clear();
    const g = ctx.groupSize();
    const nkv = model.get("n_kv");
    for (let kv = 0; kv < nkv; kv++) {
      const box = el("div", "lensnb-attn-kv");
      box.dataset.kv = String(kv);
      const head = el("div", "lensnb-attn-kv-label", nkv === model.get("n_heads") ? `head ${kv}` : `KV group ${kv}`);
      head.title = "show this KV group";
      head.addEventListener("click", () => setTraits(model, { kv_group: kv, view: "group" }));
      const row = el("div", "lensnb-attn-kv-heads");
      for (let h = kv * g; h < (kv + 1) * g; h++) {
        const cell = el("div", "lensnb-attn-thumb");
        cell.dataset.head = String(h);
        const [c, cctx] = hiDpiCanvas(48, 48, "");
        cell.append(c, el("div", "lensnb-attn-thumb-label", `H${h}`));
        cell.title = `head ${h} (KV head ${kv})`;
        cell.addEventListener("click", () => {
          state.switchT0 = performance.now();
          model.set("head", h);
          if (model.get("view") === "text") model.set("view", "head");
          model.save_changes();
        });
        row.appendChild(cell);
        thumbEls.set(h, { cell, ctx: cctx });
      }
      box.append(head, row);
      element.appendChild(box);
    }
    mark();
  }

  function mark() {
    const h = model.get("head");
    const g = Math.floor(h / ctx.groupSize());
    for (const [head, { cell }] of thumbEls) cell.classList.toggle("selected", head === h);
    for (const box of element.children) box.classList.toggle("selected", Number(box.dataset.kv) === g);
  }

  function paint(h, canvas) {
    const t = thumbEls.get(h);
    if (!t) return;
    t.ctx.imageSmoothingEnabled = false;
    t.ctx.clearRect(0, 0, 48, 48); // masked cells are transparent (the CSS background shows)
    t.ctx.drawImage(canvas, 0, 0, 48, 48);
    t.cell.dataset.loaded = "1";
  }

  async function loadThumbs() {
    const gen = ++state.thumbGeneration;
    const layer = model.get("layer");
    const current = model.get("head");
    const order = [...Array(model.get("n_heads")).keys()].sort((a, b) => Math.abs(a - current) - Math.abs(b - current));
    for (const h of order) {
      if (gen !== state.thumbGeneration || !state.alive) return;
      const key = `${layer}:${h}`;
      if (!thumbs.has(key)) {
        try {
          const { reply, buffers } = await ctx.ask("thumb", { layer, head: h });
          const t = decodeTile(buffers.thumb, reply);
          t.fq = N / t.shape[0]; t.fk = N / t.shape[1]; t.q0 = 0; t.k0 = 0;
          thumbs.set(key, tileCanvas(t, state.scale));
        } catch (err) { ctx.showError(err); return; }
      }
      if (gen !== state.thumbGeneration) return;
      paint(h, thumbs.get(key));
    }
    if (gen === state.thumbGeneration) root.dataset.thumbsMs = (performance.now() - ctx.t0).toFixed(1);
  }

  return { element, build, mark, loadThumbs, clear: () => thumbs.clear() };
}
