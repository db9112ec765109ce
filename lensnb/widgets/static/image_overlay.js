// The picture overlay shared by ImageAttention and the GenerationStepper on vision lenses
// (lensnb/widgets/image_overlay.py computes the grids). Concatenated after common.js (el,
// viridis in scope). Draws a cross-attention grid (rows x cols over the picture's patches, in
// original pixels; tile edges dotted) on a canvas over the picture, and builds the head picker.

const OVERLAY_VIEW = 384; // longest side of the drawn picture, CSS px
const OVERLAY_ALPHA = THEME.overlay_opacity; // the figures use the same (lensnb/core/theme.py)

/**
 * A picture with a heatmap canvas over it. `geo` is the overlay geometry from Python
 * (width, height, patch_w, patch_h, tile_w, tile_h, tiles_w, tiles_h), `picture` a data: URL.
 * Returns { stage, canvas, opacity (range input), paint(grid | null) }.
 */
function imageOverlay(geo, picture, classPrefix) {
  const scale = OVERLAY_VIEW / Math.max(geo.width, geo.height);
  const viewW = Math.round(geo.width * scale), viewH = Math.round(geo.height * scale);
  const stage = el("div", `lensnb-overlay-stage ${classPrefix}-stage`);
  stage.style.width = `${viewW}px`; stage.style.height = `${viewH}px`;
  const img = el("img", `${classPrefix}-picture`);
  img.src = picture; img.width = viewW; img.height = viewH; img.alt = "input picture";
  const canvas = el("canvas", `${classPrefix}-heat`);
  canvas.width = viewW; canvas.height = viewH;
  stage.append(img, canvas);
  const opacity = el("input");
  Object.assign(opacity, { type: "range", min: 0, max: 1, step: 0.05, value: OVERLAY_ALPHA });
  opacity.className = `${classPrefix}-opacity`;
  let last = null;

  function paint(grid) {
    if (grid !== undefined) last = grid;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, viewW, viewH);
    if (!last) return;
    const { data, shape } = last;
    const [rows, cols] = shape;
    let max = 0;
    for (const v of data) max = Math.max(max, v);
    const alpha = Number(opacity.value);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      const t = max > 0 ? data[r * cols + c] / max : 0;
      const [R, G, B] = viridis(t);
      ctx.fillStyle = `rgba(${R | 0},${G | 0},${B | 0},${alpha * (0.25 + 0.75 * t)})`;
      const x0 = c * geo.patch_w * scale, y0 = r * geo.patch_h * scale;
      ctx.fillRect(x0, y0, geo.patch_w * scale + 0.5, geo.patch_h * scale + 0.5);
    }
    ctx.strokeStyle = THEME.roles.picture_grid; ctx.setLineDash([3, 3]); ctx.lineWidth = 1;
    for (let k = 1; k < geo.tiles_w; k++) {
      const x = Math.min(k * geo.tile_w, geo.width) * scale;
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, viewH); ctx.stroke();
    }
    for (let k = 1; k < geo.tiles_h; k++) {
      const y = Math.min(k * geo.tile_h, geo.height) * scale;
      ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(viewW, y); ctx.stroke();
    }
  }

  opacity.addEventListener("input", () => paint());
  return { stage, canvas, opacity, paint };
}

/** The grid cell with the most attention: [row, col]. */
function overlayArgmax(grid) {
  let arg = 0;
  for (let i = 1; i < grid.data.length; i++) if (grid.data[i] > grid.data[arg]) arg = i;
  return [Math.floor(arg / grid.shape[1]), arg % grid.shape[1]];
}

/** A <select> of query heads, KV groups (when fewer KV heads) and the mean over heads; values
 * are "head:h", "kv_group:g", "mean:0" (see headChoice / headChoiceValue). */
function headPicker(nHeads, nKv, className) {
  const sel = el("select", className);
  const group = nHeads / nKv;
  for (let h = 0; h < nHeads; h++) {
    const o = el("option", "", `head ${h} (KV group ${Math.floor(h / group)})`); o.value = `head:${h}`; sel.appendChild(o);
  }
  if (nKv < nHeads) for (let g = 0; g < nKv; g++) {
    const o = el("option", "", `KV group ${g} (heads ${g * group}–${(g + 1) * group - 1}, mean)`);
    o.value = `kv_group:${g}`; sel.appendChild(o);
  }
  const meanOpt = el("option", "", "mean over heads"); meanOpt.value = "mean:0"; sel.appendChild(meanOpt);
  return sel;
}

/** {mode, head?, kv_group?} from a headPicker value. */
function headChoice(value) {
  const [mode, idx] = value.split(":");
  if (mode === "head") return { mode, head: Number(idx) };
  if (mode === "kv_group") return { mode, kv_group: Number(idx) };
  return { mode };
}

/** The headPicker value for a mode and head / KV group. */
function headChoiceValue(mode, head, kvGroup) {
  return mode === "head" ? `head:${head}` : mode === "kv_group" ? `kv_group:${kvGroup}` : "mean:0";
}

/**
 * The cross-attention layer <select> and the head picker, bound to the traits named in
 * `traits` ({layer, mode, head, kv_group}); classes `${prefix}-layer` and `${prefix}-head`.
 */
function crossControls(model, traits, prefix) {
  const layerSel = selectEl(`${prefix}-layer`, model.get("cross_layers").map((l) => [l, `cross-attention layer ${l}`]),
    (v) => setTraits(model, { [traits.layer]: Number(v) }));
  const headSel = headPicker(model.get("n_heads"), model.get("n_kv_heads"), `${prefix}-head`);
  headSel.addEventListener("change", () => {
    const choice = headChoice(headSel.value);
    const values = { [traits.mode]: choice.mode };
    if (choice.mode === "head") values[traits.head] = choice.head;
    if (choice.mode === "kv_group") values[traits.kv_group] = choice.kv_group;
    setTraits(model, values);
  });
  return [layerSel, headSel];
}
