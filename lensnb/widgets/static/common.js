// lensnb common frontend helpers. Concatenated in front of every widget's own module by
// lensnb/widgets/base.py (after LENSNB_REQUESTS, the widget's request schemas), so each widget
// is one self-contained ES module (no CDN, no imports). Here once: buffer decoding, the request
// helper (the JS side of lensnb/widgets/protocol.py), colour ramps, element / select / button /
// SVG / canvas builders, tooltips and token labels. Token text is untrusted: it reaches the DOM
// only through textContent (el, svgEl) and the canvas through fillText.

/** Escape text for HTML. Token text is untrusted: prefer textContent; use this when building markup. */
function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** Decode IEEE half floats (Uint16Array) to a Float32Array. */
function halfToFloat(u16) {
  const out = new Float32Array(u16.length);
  for (let i = 0; i < u16.length; i++) {
    const h = u16[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const f = h & 0x3ff;
    if (e === 0) out[i] = s * 5.960464477539063e-8 * f;
    else if (e === 31) out[i] = f ? NaN : s * Infinity;
    else out[i] = s * Math.pow(2, e - 15) * (1 + f / 1024);
  }
  return out;
}

/** A buffer from Python (`pack` in base.py) as {data, shape}; uint8 stays quantised (0..255). */
function unpack(meta, buffer) {
  const view = buffer instanceof DataView ? buffer : new DataView(buffer.buffer ?? buffer);
  const bytes = view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  let data;
  if (meta.dtype === "float32") data = new Float32Array(bytes);
  else if (meta.dtype === "float16") data = halfToFloat(new Uint16Array(bytes));
  else if (meta.dtype === "uint8") data = new Uint8Array(bytes);
  else if (meta.dtype === "int32") data = new Int32Array(bytes);
  else throw new Error(`unknown dtype ${meta.dtype}`);
  return { data, shape: meta.shape, dtype: meta.dtype };
}

let _lensnbRequestId = 0;

/**
 * A request in wire form, {name, params}, every field filled from the widget's schemas
 * (LENSNB_REQUESTS, written by base.py from protocol.py): what Python parses, and what a
 * standalone export matches its pre-computed replies on. Throws on an unknown name or field.
 */
function wireRequest(name, params = {}) {
  const schemas = typeof LENSNB_REQUESTS === "undefined" ? {} : LENSNB_REQUESTS;
  const schema = schemas[name];
  if (!schema) throw new Error(`unknown request kind ${JSON.stringify(name)}: this widget answers ${Object.keys(schemas).map((n) => `'${n}'`).join(", ")}`);
  const out = {};
  for (const [field, spec] of Object.entries(schema)) {
    if (params[field] !== undefined) out[field] = params[field];
    else if (!spec.required) out[field] = spec.default;
  }
  const unknown = Object.keys(params).filter((k) => !(k in schema) && params[k] !== undefined);
  if (unknown.length) throw new Error(`request '${name}' has no field '${unknown[0]}': its fields are ${Object.keys(schema).join(", ")}`);
  return { name, params: out };
}

/** A reply's named buffers ({name: {dtype, shape, index}} | [..] | {key: ..}) decoded. */
function namedBuffers(layout, raw) {
  const one = (meta) => (meta === null || meta === undefined ? null : unpack(meta, raw[meta.index]));
  const out = {};
  for (const [name, entry] of Object.entries(layout || {})) {
    if (Array.isArray(entry)) out[name] = entry.map(one);
    else if (entry && entry.index === undefined) out[name] = Object.fromEntries(Object.entries(entry).map(([k, m]) => [k, one(m)]));
    else out[name] = one(entry);
  }
  return out;
}

/**
 * Ask Python for data: `request(model, "tile", {layer, head})` resolves to {reply, buffers}:
 * the reply's JSON fields and its buffers decoded under their names ({data, shape, dtype}).
 * Python answers in the widget's @handles methods (lensnb/widgets/protocol.py).
 */
function request(model, name, params = {}) {
  let req;
  try { req = wireRequest(name, params); } catch (err) { return Promise.reject(err); }
  const id = `${Date.now()}-${++_lensnbRequestId}`;
  return new Promise((resolve, reject) => {
    const onMsg = (msg, raw) => {
      if (!msg || msg.kind !== "reply" || msg.id !== id) return;
      model.off("msg:custom", onMsg);
      if (msg.error) { reject(new Error(msg.error)); return; }
      const { buffers: layout, ...reply } = msg.reply;
      try { resolve({ reply, buffers: namedBuffers(layout, raw || []) }); } catch (err) { reject(err); }
    };
    model.on("msg:custom", onMsg);
    model.send({ kind: "request", id, request: req });
  });
}

/** Viridis (colour-blind safe; the figures' stops, from THEME), t in [0, 1] -> [r, g, b]. */
let _VIRIDIS = null; // decoded on first use (THEME and theme.js come with every widget module)
function viridis(t) {
  if (!_VIRIDIS) _VIRIDIS = THEME.colormaps.viridis.map(hexToRgb);
  const x = Math.max(0, Math.min(1, t)) * (_VIRIDIS.length - 1);
  const i = Math.min(_VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = _VIRIDIS[i], b = _VIRIDIS[i + 1];
  return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
}

/** Create an element with a class and (safe) text. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A <select> of [value, label] options; `onChange(value)` runs when the user picks one. */
function selectEl(className, options, onChange) {
  const sel = el("select", className);
  for (const [value, label] of options) {
    const o = el("option", "", label);
    o.value = String(value);
    sel.appendChild(o);
  }
  if (onChange) sel.addEventListener("change", () => onChange(sel.value));
  return sel;
}

/** A <button> with a label; `onClick` runs on click. */
function buttonEl(className, label, onClick) {
  const b = el("button", className, label);
  if (onClick) b.addEventListener("click", onClick);
  return b;
}

/** Set synced traits from the frontend ({name: value}) and send them to Python. */
function setTraits(model, values) {
  for (const [name, value] of Object.entries(values)) model.set(name, value);
  model.save_changes();
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes and (safe) text. */
function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A crisp canvas of CSS size w x h: [canvas, its 2d context scaled to CSS pixels]. */
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

/** [r, g, b] (0..255 floats) as a CSS colour. */
function rgb([r, g, b]) {
  return `rgb(${Math.round(r)}, ${Math.round(g)}, ${Math.round(b)})`;
}

/** A token as a short visible label: whitespace made visible, long tokens cut. */
function tokenLabel(tok, max = 12) {
  const shown = String(tok).replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/\r/g, "␍");
  return shown.length > max ? shown.slice(0, max - 1) + "…" : shown;
}

/** Show `text` in a positioned tooltip element near the pointer (relative to `box`). */
function showTooltip(tooltip, text, ev, box, maxLeft = Infinity) {
  tooltip.textContent = text;
  tooltip.hidden = false;
  tooltip.style.left = `${Math.min(ev.clientX - box.left + 14, maxLeft)}px`;
  tooltip.style.top = `${ev.clientY - box.top + 12}px`;
}

/** An error's message as text (for an error line). */
function errorText(err) {
  return String(err && err.message ? err.message : err);
}
