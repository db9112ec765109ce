// AttentionExplorer drawing helpers (first of attention.py's files: attention_draw.js,
// attention_head.js, attention_grid.js, attention_group.js, attention_text.js, attention.js;
// common.js in front). Token text is untrusted: it only ever reaches the DOM through
// textContent, and the canvas through fillText.

const PLOT = 480; // heatmap plot area, CSS px
const MARGIN = 84; // room for token labels left of and above the plot
// causally hidden cells are left transparent: the canvas or CSS background beneath (theme
// colour bg_alt) shows through, so cached tiles stay right when the notebook's theme changes
const MIN_WINDOW = 4; // tokens visible at the deepest zoom

/** 256 colours for a uint8 tile scaled to vmax: byte b is weight b / 255 * vmax. */
function colourLut(vmax, scale) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let b = 0; b < 256; b++) {
    const w = (b / 255) * vmax;
    const [r, g, bl] = viridis(scale === "sqrt" ? Math.sqrt(w) : w);
    lut[3 * b] = r; lut[3 * b + 1] = g; lut[3 * b + 2] = bl;
  }
  return lut;
}

/**
 * A tile (uint8 [rows, cols], block factors fq x fk, window origin q0/k0) painted on an
 * offscreen canvas, one pixel per cell; blocks entirely above the diagonal stay transparent.
 */
function tileCanvas(tile, scale) {
  const [rows, cols] = tile.shape;
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, cols);
  canvas.height = Math.max(1, rows);
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(canvas.width, canvas.height);
  const lut = colourLut(tile.vmax, scale);
  const { fq = 1, fk = 1, q0 = 0, k0 = 0 } = tile;
  for (let i = 0; i < rows; i++) {
    const lastQuery = q0 + (i + 1) * fq - 1;
    for (let j = 0; j < cols; j++) {
      const o = 4 * (i * cols + j);
      if (tile.causal && k0 + j * fk > lastQuery) continue; // masked: alpha stays 0
      const b = 3 * tile.data[i * cols + j];
      img.data[o] = lut[b]; img.data[o + 1] = lut[b + 1]; img.data[o + 2] = lut[b + 2];
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/** A uint8 tile buffer ({data, shape}) with its reply's scale and block factors. */
function decodeTile(array, reply, extra = {}) {
  return Object.assign(array, { vmax: reply.vmax, fq: reply.fq || 1, fk: reply.fk || 1, causal: true }, extra);
}

/** Small LRU map. */
class Lru {
  constructor(limit) { this.limit = limit; this.map = new Map(); }
  get(key) {
    const v = this.map.get(key);
    if (v !== undefined) { this.map.delete(key); this.map.set(key, v); }
    return v;
  }
  set(key, value) {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.limit) this.map.delete(this.map.keys().next().value);
  }
}

/**
 * The exact weights of one query row or key column of a head, one request each and cached:
 * `(kind "row" | "column", layer, head, pos) -> Float32Array`. `ask(name, params)` sends the
 * request; `check(layer, head)` throws when this copy cannot fetch that head (a static copy).
 */
function exactRowCache(ask, check = () => {}) {
  const rows = new Lru(512); // "row|column:layer:head:pos" -> Float32Array
  return async (kind, layer, head, pos) => {
    check(layer, head);
    const key = `${kind}:${layer}:${head}:${pos}`;
    let r = rows.get(key);
    if (!r) {
      const { buffers } = await ask(kind, { layer, head, pos });
      r = buffers.weights.data;
      rows.set(key, r);
    }
    return r;
  };
}

/** An exact weight as text. */
function weightText(w) { return w.toPrecision(6); }

/** The visible window [q0, q1) x [k0, k1) kept inside the text and at least MIN_WINDOW wide. */
function clampWindow(w, N) {
  const size = Math.max(MIN_WINDOW, Math.min(N, w.q1 - w.q0));
  const ksize = Math.max(MIN_WINDOW, Math.min(N, w.k1 - w.k0));
  let q0 = Math.max(0, Math.min(N - size, w.q0));
  let k0 = Math.max(0, Math.min(N - ksize, w.k0));
  if (N < MIN_WINDOW) { q0 = 0; k0 = 0; }
  return { q0, q1: q0 + Math.min(N, size), k0, k1: k0 + Math.min(N, ksize) };
}

/** Token labels along both axes of the heatmap: labels when cells are tall enough, else positions. */
function paintAxes(hctx, win, toks) {
  const { q0, q1, k0, k1 } = win;
  hctx.fillStyle = themeColour(hctx.canvas, "fg");
  hctx.font = `${THEME.font.tiny_px}px ${THEME.font.mono}`;
  const cell = PLOT / (q1 - q0);
  const every = cell >= 10 ? 1 : Math.ceil(40 / cell);
  hctx.textAlign = "right";
  hctx.textBaseline = "middle";
  for (let i = Math.ceil(q0 / every) * every; i < q1; i += every) {
    const y = MARGIN + (i + 0.5 - q0) * cell;
    if (y < MARGIN) continue;
    hctx.fillText(every === 1 ? tokenLabel(toks[i]) : String(i), MARGIN - 4, y);
  }
  const kcell = PLOT / (k1 - k0);
  const kevery = kcell >= 10 ? 1 : Math.ceil(40 / kcell);
  for (let j = Math.ceil(k0 / kevery) * kevery; j < k1; j += kevery) {
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
  hctx.fillStyle = themeColour(hctx.canvas, "fg_muted");
  hctx.fillText("query ↓  key →", 2, 10);
}

/** The heatmap of `view` ({win, overview, detail, hover}: tiles of the shown head) on hctx. */
function paintHeatmap(hctx, view, toks) {
  const W = MARGIN + PLOT + 4;
  const { q0, q1, k0, k1 } = view.win;
  const drawTile = (entry) => { // entry.tile covers [t.q0, t.q0 + rows*fq) x [t.k0, t.k0 + cols*fk)
    const t = entry.tile;
    hctx.drawImage(entry.canvas, (k0 - t.k0) / t.fk, (q0 - t.q0) / t.fq, (k1 - k0) / t.fk,
      (q1 - q0) / t.fq, MARGIN, MARGIN, PLOT, PLOT);
  };
  hctx.fillStyle = themeColour(hctx.canvas, "bg"); // the notebook's theme (canvas included)
  hctx.fillRect(0, 0, W, W);
  hctx.fillStyle = themeColour(hctx.canvas, "bg_alt"); // under masked (transparent) cells
  hctx.fillRect(MARGIN, MARGIN, PLOT, PLOT);
  hctx.imageSmoothingEnabled = false;
  if (view.overview) drawTile(view.overview);
  const d = view.detail;
  if (d && d.tile.q0 <= q0 && d.tile.k0 <= k0 && d.tile.q1 >= q1 && d.tile.k1 >= k1) drawTile(d);
  hctx.strokeStyle = themeColour(hctx.canvas, "border");
  hctx.strokeRect(MARGIN - 0.5, MARGIN - 0.5, PLOT + 1, PLOT + 1);
  paintAxes(hctx, view.win, toks);
  if (view.hover) {
    const { i, j } = view.hover;
    const cell = PLOT / (q1 - q0), kcell = PLOT / (k1 - k0);
    if (i >= q0 && i < q1 && j >= k0 && j < k1) {
      hctx.strokeStyle = THEME.roles.highlight;
      hctx.lineWidth = 1.5;
      hctx.strokeRect(MARGIN + (j - k0) * kcell, MARGIN + (i - q0) * cell, Math.max(2, kcell), Math.max(2, cell));
      hctx.lineWidth = 1;
    }
  }
}
