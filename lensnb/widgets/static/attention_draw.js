// AttentionExplorer drawing helpers (first of attention.py's three files: attention_draw.js,
// attention_text.js, attention.js; common.js in front). Token text is untrusted: it only ever
// reaches the DOM through textContent, and the canvas through fillText.

const PLOT = 480; // heatmap plot area, CSS px
const MARGIN = 84; // room for token labels left of and above the plot
// causally hidden cells are left transparent: the canvas or CSS background beneath (theme
// colour bg_alt) shows through, so cached tiles stay right when the notebook's theme changes
const MIN_WINDOW = 4; // tokens visible at the deepest zoom

/** A token as a short visible label: whitespace made visible, long tokens cut. */
function tokenLabel(tok, max = 12) {
  const shown = String(tok).replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/\r/g, "␍");
  return shown.length > max ? shown.slice(0, max - 1) + "…" : shown;
}

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
 * offscreen canvas, one pixel per cell; blocks entirely above the diagonal are painted as masked.
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

/** A crisp canvas of CSS size w x h. */
function hiDpiCanvas(w, h, className) {
  const canvas = el("canvas", className);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.imageSmoothingEnabled = false;
  return [canvas, ctx];
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


/** An exact weight as text. */
function weightText(w) { return w.toPrecision(6); }
