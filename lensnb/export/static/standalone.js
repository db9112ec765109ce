// lensnb standalone export: runs a lensnb widget's own ES module with no kernel and no network.
// lensnb/export/html.py inlines this file into static/standalone.html together with a JSON blob
// (#lensnb-data) holding the widget's ES module and CSS, its synced state at export time, and the
// replies Python gave to the requests listed by the widget's export_requests().
//
// The model below implements the part of the anywidget model API lensnb widgets use (get, set,
// on, off, send, save_changes). A frontend request ({kind: "request", id, request}, see
// common.js) is answered from the pre-computed replies, matched by deep equality of the request;
// a request that was not pre-computed gets an error reply, shown in the page.

const DATA = JSON.parse(document.getElementById("lensnb-data").textContent);
const ROOT = document.getElementById("lensnb-root");
const ERRORS = document.getElementById("lensnb-errors");

function showError(message) {
  const line = document.createElement("div");
  line.className = "lensnb-standalone-error";
  line.textContent = message; // never markup: messages may quote token text
  ERRORS.appendChild(line);
}

function base64ToBytes(b64) {
  const text = atob(b64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** A buffer spec {b64, gzip} from html.py as the DataView anywidget would deliver. */
async function decodeBuffer(spec) {
  let bytes = base64ToBytes(spec.b64);
  if (spec.gzip) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Structural equality of JSON values (numbers by value, objects by keys in any order). */
function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  const ka = Object.keys(a).filter((k) => a[k] !== undefined);
  const kb = Object.keys(b).filter((k) => b[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
}

function setPath(obj, path, value) {
  let node = obj;
  for (let i = 0; i < path.length - 1; i++) node = node[path[i]];
  node[path[path.length - 1]] = value;
}

class StandaloneModel {
  constructor(state, replies) {
    this._state = state;
    this._replies = replies;
    this._listeners = new Map();
  }

  get(name) {
    return this._state[name];
  }

  set(name, value) {
    const old = this._state[name];
    this._state[name] = value;
    if (old !== value) {
      this._emit(`change:${name}`, this, value);
      this._emit("change", this);
    }
  }

  save_changes() {} // no kernel to sync with: state lives in this page

  on(event, callback) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(callback);
  }

  off(event, callback) {
    if (event === undefined || event === null) this._listeners.clear();
    else if (callback === undefined) this._listeners.delete(event);
    else this._listeners.get(event)?.delete(callback);
  }

  send(content, _callbacks, _buffers) {
    if (!content || content.kind !== "request") return;
    const found = this._replies.find((r) => deepEqual(r.request, content.request));
    const answer = async () => {
      if (!found) {
        const message = "This standalone export has no answer for request "
          + `${JSON.stringify(content.request)}; open the notebook to compute it.`;
        showError(message);
        return [{ kind: "reply", id: content.id, error: message }, []];
      }
      const buffers = await Promise.all(found.buffers.map(decodeBuffer));
      return [{ kind: "reply", id: content.id, reply: found.reply }, buffers];
    };
    answer().then(([msg, buffers]) => this._emit("msg:custom", msg, buffers));
  }

  _emit(event, ...args) {
    for (const callback of [...(this._listeners.get(event) || [])]) {
      try {
        callback(...args);
      } catch (err) {
        showError(`${err}`);
      }
    }
  }
}

async function main() {
  const style = document.createElement("style");
  style.textContent = DATA.css || "";
  document.head.appendChild(style);

  const state = DATA.state;
  const stateBuffers = await Promise.all(DATA.state_buffers.map(decodeBuffer));
  DATA.buffer_paths.forEach((path, i) => setPath(state, path, stateBuffers[i]));
  const model = new StandaloneModel(state, DATA.replies);

  const url = URL.createObjectURL(new Blob([DATA.esm], { type: "text/javascript" }));
  const mod = await import(url);
  let widget = mod.default ?? mod;
  if (typeof widget === "function") widget = await widget();
  if (widget.initialize) await widget.initialize({ model });
  const render = widget.render ?? mod.render;
  await render({ model, el: ROOT });
  ROOT.dataset.lensnbReady = "true";
}

main().catch((err) => showError(`lensnb standalone export failed: ${err?.stack || err}`));
