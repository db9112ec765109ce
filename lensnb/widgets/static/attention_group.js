// AttentionExplorer KV-group view (after attention_grid.js): a KV group's query heads side by
// side, then their mean, max and spread (max - min).

/** One panel of the group view: a pooled tile, hover text, click to open a head. */
function groupPanel(ctx, p, t, f) {
  const { model, state, N } = ctx;
  const note = f > 1 ? ` (max over ${f}×${f} cells)` : "";
  const side = 180;
  const [c, cctx] = hiDpiCanvas(side, side, "");
  cctx.drawImage(tileCanvas(t, state.scale), 0, 0, side, side);
  const panel = el("div", "lensnb-attn-panel");
  panel.dataset.name = p.name;
  panel.append(el("div", "lensnb-attn-panel-title", p.name.startsWith("H") ? p.name : `group ${p.name}`), c);
  c.addEventListener("mousemove", (ev) => {
    const i = Math.min(t.shape[0] - 1, Math.floor((ev.offsetY / side) * t.shape[0]));
    const j = Math.min(t.shape[1] - 1, Math.floor((ev.offsetX / side) * t.shape[1]));
    const w = (t.data[i * t.shape[1] + j] / 255) * t.vmax;
    const toks = ctx.tokens();
    const qa = i * f, ka = j * f;
    const where = f > 1 ? `queries ${qa}–${Math.min(N, qa + f) - 1}, keys ${ka}–${Math.min(N, ka + f) - 1}`
      : `query ${qa} «${tokenLabel(toks[qa], 24)}» → key ${ka} «${tokenLabel(toks[ka], 24)}»`;
    ctx.hoverLine.textContent = `${p.name}: ${where}: ${weightText(w)}${note}`;
  });
  if (p.name.startsWith("H")) {
    c.addEventListener("click", () => {
      state.switchT0 = performance.now();
      setTraits(model, { head: Number(p.name.slice(1)), view: "head" });
    });
  }
  return panel;
}

/** The KV-group view: {element, load}. */
function groupView(ctx) {
  const { model, state } = ctx;
  const element = el("div", "lensnb-attn-groupview");

  async function load() {
    const layer = model.get("layer"), kv = model.get("kv_group");
    const gen = ++state.generation;
    element.replaceChildren(el("div", "lensnb-attn-note", `loading KV group ${kv}…`));
    try {
      const { reply, buffers } = await ctx.ask("group", { layer, kv_group: kv });
      if (gen !== state.generation) return;
      const f = reply.f;
      const heads = el("div", "lensnb-attn-panels");
      const sums = el("div", "lensnb-attn-panels");
      for (const p of reply.panels) {
        // spread (max - min) of a masked cell is 0 anyway; keep the mask for all panels
        const t = decodeTile(buffers.tiles[p.name], { vmax: p.vmax, fq: f, fk: f }, { q0: 0, k0: 0 });
        (p.name.startsWith("H") ? heads : sums).appendChild(groupPanel(ctx, p, t, f));
      }
      const note = f > 1 ? ` (max over ${f}×${f} cells)` : "";
      element.replaceChildren(
        el("div", "lensnb-attn-note", `Layer ${layer}, KV group ${kv}: its query heads share one key/value head${note}. Click a head to open it.`),
        heads,
        el("div", "lensnb-attn-note", "Group summaries over its heads: mean, max and spread (max − min; large where heads sharing K/V still attend differently)."),
        sums);
    } catch (err) { ctx.showError(err); }
  }

  return { element, load };
}
