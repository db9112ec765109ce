// GenerationStepper panels (lensnb/widgets/generation_stepper.py), first of its files:
// generation_stepper_panels.js, generation_stepper_patches.js, generation_stepper.js. common.js
// and image_overlay.js are in front. Each panel is {element, draw()} over the stepper's shared
// context `ctx` ({model, state, root, call, showError, ...}; see generation_stepper.js).
// Token text is untrusted: it reaches the DOM only through textContent.

/** A step reply (JSON + its top/lens buffers) as plain arrays. */
function decodeStep(step, top, lens) {
  return { ...step, topProbs: Array.from(top.data), lensProbs: lens ? Array.from(lens.data) : null };
}

/** The latest step's top-k next tokens as bars. */
function topKPanel(ctx) {
  const element = el("div", "lensnb-gen-box");
  const chart = el("div", "lensnb-gen-topk");
  element.append(el("div", "lensnb-gen-title", "Top next tokens"), chart);
  function draw() {
    chart.replaceChildren();
    const last = ctx.state.steps[ctx.state.steps.length - 1];
    if (!last) { chart.append(el("div", "lensnb-gen-note", "Press Step.")); return; }
    last.top_texts.forEach((tok, i) => {
      const row = el("div", "lensnb-gen-toprow");
      const label = el("span", "lensnb-gen-toplabel", tokenLabel(tok, 14));
      if (i === 0 && tok === last.token) label.classList.add("chosen");
      const track = el("span", "lensnb-gen-track");
      const fill = el("span", "lensnb-gen-fill");
      fill.style.width = `${(100 * last.topProbs[i]).toFixed(1)}%`;
      track.append(fill);
      row.append(label, track, el("span", "lensnb-gen-prob", last.topProbs[i].toFixed(3)));
      chart.append(row);
    });
  }
  return { element, draw };
}

/** The logit lens: P(chosen token) per layer (rows, top = last layer) x step (columns). */
function logitLensPanel(ctx) {
  const element = el("div", "lensnb-gen-box");
  const wrap = el("div", "lensnb-gen-lens-wrap");
  const grid = el("table", "lensnb-gen-lens");
  const hover = el("div", "lensnb-gen-hover");
  wrap.append(grid);
  element.append(el("div", "lensnb-gen-title", "Logit lens: P(chosen token) per layer × step"), wrap, hover);
  function draw() {
    grid.replaceChildren();
    const steps = ctx.state.steps;
    const head = el("tr");
    head.append(el("th", "", "layer"));
    for (const s of steps) head.append(el("th", "lensnb-gen-lens-col", tokenLabel(s.token, 6)));
    grid.append(head);
    for (let l = ctx.model.get("n_layers") - 1; l >= 0; l--) {
      const tr = el("tr");
      tr.append(el("th", "", String(l)));
      for (const s of steps) {
        const p = s.lensProbs ? s.lensProbs[l] : 0;
        const td = el("td", "lensnb-gen-cell");
        td.style.background = rgb(viridis(p));
        td.addEventListener("mouseenter", () => {
          hover.textContent = `step ${s.index}, layer ${l}: P(${tokenLabel(s.token, 14)}) = ${p.toFixed(3)}; `
            + `layer's top token ${tokenLabel(s.lens_top ? s.lens_top[l] : "?", 14)}`;
        });
        tr.append(td);
      }
      grid.append(tr);
    }
    wrap.scrollLeft = wrap.scrollWidth;
  }
  return { element, draw };
}

/** The new token's attention per head (a self-attention layer), and the explorer button. */
function attentionPanel(ctx) {
  const { model, state } = ctx;
  const element = el("div", "lensnb-gen-box");
  const layers = model.get("attention_layers");
  state.attentionLayer = layers[layers.length - 1];
  const layerSel = selectEl("lensnb-gen-attn-layer", layers.map((l) => [l, `layer ${l}`]),
    (v) => { state.attentionLayer = Number(v); draw(); });
  layerSel.value = String(state.attentionLayer);
  const note = el("div", "lensnb-gen-note");
  const explorerBtn = buttonEl("lensnb-gen-explorer", "Open AttentionExplorer", async () => {
    const got = await ctx.call("explorer");
    if (got) note.textContent = "AttentionExplorer built on the current text: show it with `stepper.explorer` in a cell.";
  });
  const bar = el("div", "lensnb-gen-attn-bar");
  bar.append(layerSel, explorerBtn);
  const canvas = el("canvas", "lensnb-gen-attn");
  element.append(el("div", "lensnb-gen-title", "New token's attention per head"), bar, canvas, note);

  async function draw() {
    if (!state.steps.length) { note.textContent = ""; canvas.width = 0; return; }
    try {
      const { reply, buffers } = await request(model, "attention", { layer: state.attentionLayer });
      const att = buffers.weights;
      const [nHeads, nPos] = att.shape;
      const cell = Math.max(3, Math.min(14, Math.floor(420 / nPos)));
      canvas.width = nPos * cell;
      canvas.height = nHeads * cell;
      const c2d = canvas.getContext("2d");
      for (let h = 0; h < nHeads; h++) {
        let max = 0;
        for (let k = 0; k < nPos; k++) max = Math.max(max, att.data[h * nPos + k]);
        for (let k = 0; k < nPos; k++) {
          c2d.fillStyle = rgb(viridis(max > 0 ? att.data[h * nPos + k] / max : 0));
          c2d.fillRect(k * cell, h * cell, cell, cell);
        }
      }
      canvas.onmousemove = (ev) => {
        const k = Math.floor(ev.offsetX / cell), h = Math.floor(ev.offsetY / cell);
        if (h < nHeads && k < nPos) {
          note.textContent = `head ${h} → ${tokenLabel(reply.tokens[k] ?? "?", 14)} (#${k}): ${att.data[h * nPos + k].toFixed(3)}`;
        }
      };
      note.textContent = `rows: ${nHeads} heads, columns: ${nPos} keys (each row scaled to its max)`
        + (reply.patched ? "; unpatched model" : "");
    } catch (err) { ctx.showError(err); }
  }
  return { element, draw };
}
