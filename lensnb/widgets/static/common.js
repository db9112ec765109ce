// lensnb common frontend helpers. Concatenated in front of every widget's own module by
// lensnb/widgets/base.py, so each widget is one self-contained ES module (no CDN, no imports).

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
/** Ask Python for data: resolves to {reply, buffers}. Python answers in LensWidget.answer(). */
function request(model, req) {
  const id = `${Date.now()}-${++_lensnbRequestId}`;
  return new Promise((resolve, reject) => {
    const onMsg = (msg, buffers) => {
      if (!msg || msg.kind !== "reply" || msg.id !== id) return;
      model.off("msg:custom", onMsg);
      if (msg.error) reject(new Error(msg.error));
      else resolve({ reply: msg.reply, buffers: buffers || [] });
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
