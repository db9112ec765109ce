// lensnb standalone export: runs a lensnb widget's own ES module with no kernel and no network.
// lensnb/export/html.py inlines this file into static/host.html, the container of one exported
// view: a standalone page (static/standalone.html) holds one; a notebook output's static
// fallback (text/html beside the live widget view) is one, and a converted notebook may hold
// many, so everything here is found from the host element, never by a page-wide id. The host
// holds a JSON blob (.lensnb-data) with the widget's ES module and CSS, its synced state at
// export time, and the replies Python gave to the requests listed by export_requests(); the
// inline module script that follows this file calls start(host).
//
// The model below implements the part of the anywidget model API lensnb widgets use (get, set,
// on, off, send, save_changes). A frontend request (the envelope {kind: "request", id, request:
// {name, params}}, see common.js and lensnb/widgets/base.py) is answered from the pre-computed
// replies, matched by deep equality of the request: common.js fills every field from the
// widget's schemas, as Python's Request.wire() does for export_requests(). The reply travels as
// Python sends it ({kind: "reply", id, reply} with the buffers its named layout points into); a
// request that was not pre-computed gets an error reply, shown in the host.

/** Show a message in the host's error line (as text: messages may quote token text). */
function showError(host, message) {
  const line = document.createElement("div");
  line.className = "lensnb-standalone-error";
  line.textContent = message;
  host.querySelector(".lensnb-standalone-errors").appendChild(line);
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
  constructor(host, state, replies) {
    this._host = host;
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
        showError(this._host, message);
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
        showError(this._host, `${err}`);
      }
    }
  }
}

/** Add a widget's CSS to the document once (a page may hold many views of one widget). */
function addStyle(css) {
  if (!css) return;
  const have = [...document.head.querySelectorAll("style[data-lensnb-css]")];
  if (have.some((node) => node.textContent === css)) return;
  const style = document.createElement("style");
  style.dataset.lensnbCss = "";
  style.textContent = css;
  document.head.appendChild(style);
}

async function run(host) {
  const data = JSON.parse(host.querySelector("script.lensnb-data").textContent);
  addStyle(data.css);
  const root = host.querySelector(".lensnb-static-root");
  const state = data.state;
  const stateBuffers = await Promise.all(data.state_buffers.map(decodeBuffer));
  data.buffer_paths.forEach((path, i) => setPath(state, path, stateBuffers[i]));
  const model = new StandaloneModel(host, state, data.replies);

  const url = URL.createObjectURL(new Blob([data.esm], { type: "text/javascript" }));
  const mod = await import(url);
  let widget = mod.default ?? mod;
  if (typeof widget === "function") widget = await widget();
  if (widget.initialize) await widget.initialize({ model });
  const render = widget.render ?? mod.render;
  await render({ model, el: root });
  // the picture shown where scripts do not run (GitHub) is not needed once the view is live
  for (const picture of host.querySelectorAll(".lensnb-static-picture")) picture.remove();
  root.dataset.lensnbReady = "true";
  host.dataset.lensnbReady = "true";
}

/** Run the view in ``host`` (once, however many times this file is included). */
function start(host) {
  if (!host || host.dataset.lensnbStarted) return;
  host.dataset.lensnbStarted = "true";
  run(host).catch((err) => showError(host, `lensnb standalone export failed: ${err?.stack || err}`));
}
