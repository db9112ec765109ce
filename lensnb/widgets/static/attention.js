// AttentionExplorer frontend (lensnb/widgets/attention.py), last of its files: the toolbar and
// the wiring of the views (attention_head.js, attention_grid.js, attention_group.js,
// attention_text.js) through one shared context. common.js and attention_draw.js are in scope.

/** The toolbar: layer, view buttons, colour scale, reset zoom, title. */
function explorerToolbar(model) {
  const layerSel = selectEl("lensnb-attn-layer", model.get("layers").map((l) => [l, `layer ${l}`]),
    (v) => setTraits(model, { layer: Number(v) }));
  const viewBtns = {};
  const viewBox = el("span", "lensnb-attn-views");
  for (const [v, label] of [["head", "Head"], ["group", "KV group"], ["text", "Text"]]) {
    const b = buttonEl("lensnb-attn-view", label, () => setTraits(model, { view: v }));
    b.dataset.view = v;
    viewBtns[v] = b;
    viewBox.appendChild(b);
  }
  const scaleSel = selectEl("lensnb-attn-scale", [["linear", "colour: linear"], ["sqrt", "colour: sqrt"]]);
  const resetBtn = el("button", "lensnb-attn-reset", "reset zoom");
  const title = el("span", "lensnb-attn-title");
  const element = el("div", "lensnb-attn-bar");
  element.append(layerSel, viewBox, scaleSel, resetBtn, title);
  return { element, layerSel, viewBtns, scaleSel, resetBtn, title };
}

/** The context every view shares: model, state, caches, the request helper, error/hover lines. */
function explorerContext(model, root) {
  const N = model.get("tokens").length;
  const ctx = {
    model, root, N, t0: performance.now(),
    tokens: () => model.get("tokens"),
    groupSize: () => model.get("n_heads") / model.get("n_kv"),
    state: {
      scale: "linear",
      win: { q0: 0, q1: N, k0: 0, k1: N }, // visible window, token coordinates
      overview: null, // {canvas, tile} of the shown head
      detail: null, // finer tile of the current window
      hover: null, // {i, j}
      switchT0: null,
      generation: 0, // bumps on layer/head change to drop stale replies
      thumbGeneration: 0,
      alive: true,
    },
    overviews: new Lru(64), // "layer:head" -> {canvas, tile}
    ask: (name, params) => request(model, name, params),
    hoverLine: el("div", "lensnb-attn-hover", "hover a cell: query, key and weight"),
    errorLine: el("div", "lensnb-error"),
    onHeadShown: () => {},
  };
  ctx.showError = (err) => { ctx.errorLine.textContent = errorText(err); };
  ctx.exactRow = exactRowCache((name, params) => ctx.ask(name, params));
  return ctx;
}

function render({ model, el: root }) {
  const ctx = explorerContext(model, root);
  const { state, N } = ctx;
  root.classList.add("lensnb", "lensnb-attn");
  root.replaceChildren();
  const bar = explorerToolbar(model);
  const head = headView(ctx), grid = headGrid(ctx), group = groupView(ctx), text = textPanel(ctx);
  const textView = el("div", "lensnb-attn-textview");
  textView.append(text.element);
  const main = el("div", "lensnb-attn-main");
  main.append(head.element, group.element, textView);
  const body = el("div", "lensnb-attn-body");
  body.append(grid.element, main);
  const notice = el("div", "lensnb-attn-note lensnb-attn-notice", model.get("notice") || "");
  notice.hidden = !model.get("notice"); // Llama 3.2 Vision: where the cross-attention layers are
  root.append(bar.element, notice, body, ctx.hoverLine, ctx.errorLine);

  ctx.onHeadShown = () => {
    const l = model.get("layer"), h = model.get("head");
    const o = state.overview && state.overview.tile;
    const pooled = o && (o.fq > 1 || o.fk > 1) ? `, overview max-pooled over ${o.fq}×${o.fk} cells` : "";
    bar.title.textContent = `L${l} H${h} · KV group ${Math.floor(h / ctx.groupSize())} · ${N} tokens${pooled}`;
    grid.mark();
  };
  function showView() {
    const v = model.get("view");
    head.element.hidden = v !== "head";
    group.element.hidden = v !== "group";
    textView.hidden = v !== "text";
    for (const [name, b] of Object.entries(bar.viewBtns)) b.classList.toggle("selected", name === v);
    root.dataset.view = v;
    if (v === "head") head.load();
    else if (v === "group") group.load();
    else text.load();
  }
  const onHead = () => {
    if (state.switchT0 === null) state.switchT0 = performance.now();
    state.win = { q0: 0, q1: N, k0: 0, k1: N };
    state.hover = null;
    grid.mark();
    showView();
  };
  const onLayer = () => {
    bar.layerSel.value = String(model.get("layer"));
    state.win = { q0: 0, q1: N, k0: 0, k1: N };
    grid.build();
    showView();
    grid.loadThumbs();
  };
  const onGroup = () => { grid.mark(); if (model.get("view") === "group") group.load(); };
  const onText = () => { if (model.get("view") === "text") text.load(); };
  bar.resetBtn.addEventListener("click", head.resetZoom);
  bar.scaleSel.addEventListener("change", () => {
    state.scale = bar.scaleSel.value;
    ctx.overviews.map.clear();
    grid.clear();
    showView();
    grid.loadThumbs();
  });
  const listeners = [
    ["change:head", onHead], ["change:layer", onLayer], ["change:kv_group", onGroup],
    ["change:view", showView], ["change:text_token", onText], ["change:text_role", onText],
  ];
  for (const [event, fn] of listeners) model.on(event, fn);

  bar.layerSel.value = String(model.get("layer"));
  grid.build();
  text.build();
  showView();
  grid.loadThumbs();
  const stopTheme = onThemeChange(() => { head.redraw(); text.redraw(); }); // canvases follow the theme
  return () => {
    state.alive = false;
    stopTheme();
    head.dispose();
    for (const [event, fn] of listeners) model.off(event, fn);
  };
}

export default { render };
