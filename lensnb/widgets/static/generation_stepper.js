// GenerationStepper frontend (lensnb/widgets/generation_stepper.py). common.js and
// image_overlay.js are concatenated in front: request, unpack, viridis, el, imageOverlay,
// headPicker, ... are in scope. Token text is untrusted: it reaches the DOM only through
// textContent. On a vision lens with a picture, each new token's cross-attention is drawn over
// it (the overlay ImageAttention uses), for the chosen cross-attention layer and head.

/** A token with whitespace made visible (for labels; the text view keeps real whitespace). */
function visibleToken(tok, max = 14) {
  const shown = String(tok).replace(/\n/g, "↵").replace(/\t/g, "⇥");
  return shown.length > max ? shown.slice(0, max - 1) + "…" : shown;
}

function rgb([r, g, b]) {
  return `rgb(${Math.round(r)}, ${Math.round(g)}, ${Math.round(b)})`;
}

/** Decode a step reply (JSON + its buffers) into plain arrays. */
function decodeStep(step, buffers) {
  const top = unpack(step.top, buffers[0]).data;
  const lens = step.lens ? unpack(step.lens, buffers[1]).data : null;
  return { ...step, topProbs: Array.from(top), lensProbs: lens ? Array.from(lens) : null };
}

function render({ model, el: root }) {
  root.classList.add("lensnb", "lensnb-gen");
  root.replaceChildren();
  const selfLayers = model.get("attention_layers");
  // crossStep: the step whose cross-attention is shown (null = always the newest)
  const state = { steps: [], running: false, attentionLayer: selfLayers[selfLayers.length - 1],
    crossStep: null };
  const vision = model.get("vision");

  // -- controls -----------------------------------------------------------------------------
  const bar = el("div", "lensnb-gen-bar");
  const stepBtn = el("button", "lensnb-gen-step", "Step");
  const runBtn = el("button", "lensnb-gen-run", "Run");
  const stopBtn = el("button", "lensnb-gen-stop", "Stop");
  const resetBtn = el("button", "lensnb-gen-reset", "Restart");
  const progress = el("progress", "lensnb-gen-progress");
  progress.max = model.get("max_new_tokens");
  progress.value = 0;
  const status = el("span", "lensnb-gen-status");
  bar.append(stepBtn, runBtn, stopBtn, resetBtn, progress, status);

  // -- text ---------------------------------------------------------------------------------
  const text = el("div", "lensnb-gen-text");
  const promptSpan = el("span", "lensnb-gen-prompt");
  const newSpan = el("span", "lensnb-gen-new");
  text.append(promptSpan, newSpan);

  // -- panels -------------------------------------------------------------------------------
  const panels = el("div", "lensnb-gen-panels");
  const topBox = el("div", "lensnb-gen-box");
  const topTitle = el("div", "lensnb-gen-title", "Top next tokens");
  const topChart = el("div", "lensnb-gen-topk");
  topBox.append(topTitle, topChart);

  const lensBox = el("div", "lensnb-gen-box");
  const lensTitle = el("div", "lensnb-gen-title", "Logit lens: P(chosen token) per layer × step");
  const lensWrap = el("div", "lensnb-gen-lens-wrap");
  const lensGrid = el("table", "lensnb-gen-lens");
  const lensHover = el("div", "lensnb-gen-hover");
  lensWrap.append(lensGrid);
  lensBox.append(lensTitle, lensWrap, lensHover);

  const attnBox = el("div", "lensnb-gen-box");
  const attnTitle = el("div", "lensnb-gen-title", "New token's attention per head");
  const attnBar = el("div", "lensnb-gen-attn-bar");
  const attnLayer = el("select", "lensnb-gen-attn-layer");
  for (const l of selfLayers) {
    const o = el("option", "", `layer ${l}`);
    o.value = String(l);
    attnLayer.append(o);
  }
  attnLayer.value = String(state.attentionLayer);
  const explorerBtn = el("button", "lensnb-gen-explorer", "Open AttentionExplorer");
  attnBar.append(attnLayer, explorerBtn);
  const attnCanvas = el("canvas", "lensnb-gen-attn");
  const attnNote = el("div", "lensnb-gen-note");
  attnBox.append(attnTitle, attnBar, attnCanvas, attnNote);
  panels.append(topBox, lensBox, attnBox);

  // -- the picture: where the new token looks (vision lenses with an image) -------------------
  let cross = null;
  if (vision) {
    const box = el("div", "lensnb-gen-box lensnb-gen-cross");
    const crossBar = el("div", "lensnb-gen-attn-bar");
    const layerSel = el("select", "lensnb-gen-cross-layer");
    for (const l of model.get("cross_layers")) {
      const o = el("option", "", `cross-attention layer ${l}`); o.value = String(l); layerSel.append(o);
    }
    const headSel = headPicker(model.get("n_heads"), model.get("n_kv_heads"), "lensnb-gen-cross-head");
    const follow = el("button", "lensnb-gen-cross-follow", "Follow newest");
    crossBar.append(layerSel, headSel, follow);
    const overlay = imageOverlay(model.get("geometry"), model.get("picture"), "lensnb-gen-cross");
    const caption = el("div", "lensnb-gen-note lensnb-gen-cross-caption");
    const opLabel = el("label", "lensnb-gen-note"); opLabel.append(el("span", "", "overlay "), overlay.opacity);
    box.append(el("div", "lensnb-gen-title", "Where the model looks as it writes"), crossBar, overlay.stage,
      caption, opLabel);
    panels.prepend(box);
    layerSel.addEventListener("change", () => { model.set("cross_layer", Number(layerSel.value)); model.save_changes(); });
    headSel.addEventListener("change", () => {
      const choice = headChoice(headSel.value);
      model.set("cross_mode", choice.mode);
      if (choice.mode === "head") model.set("cross_head", choice.head);
      if (choice.mode === "kv_group") model.set("cross_kv_group", choice.kv_group);
      model.save_changes();
    });
    follow.addEventListener("click", () => { state.crossStep = null; drawCross(); drawText(); });
    cross = { box, layerSel, headSel, overlay, caption, seq: 0 };
  }

  // -- patch panel --------------------------------------------------------------------------
  const patchBox = el("details", "lensnb-gen-patches");
  patchBox.append(el("summary", "", "Patches (rerun from the prompt)"));
  const form = el("div", "lensnb-gen-form");
  const field = (label, input) => {
    const wrap = el("label", "", label + " ");
    wrap.append(input);
    form.append(wrap);
    return input;
  };
  const pLayer = field("layer", el("input"));
  pLayer.type = "number"; pLayer.min = "0"; pLayer.max = String(model.get("n_layers") - 1); pLayer.value = "0";
  const pHook = field("hook", el("select"));
  for (const h of model.get("hook_choices")) { const o = el("option", "", h); o.value = h; pHook.append(o); }
  pHook.value = "hook_resid_post";
  const pPos = field("position", el("input"));
  pPos.type = "number"; pPos.value = "-1";
  const pValue = field("value", el("select"));
  for (const v of ["zero", "scale", "source"]) { const o = el("option", "", v); o.value = v; pValue.append(o); }
  const pScale = field("scale", el("input"));
  pScale.type = "number"; pScale.step = "0.1"; pScale.value = "0";
  const pSource = field("source prompt", el("input"));
  pSource.type = "text"; pSource.placeholder = "for value = source";
  const pSourcePos = field("source position", el("input"));
  pSourcePos.type = "number"; pSourcePos.value = "-1";
  const pEvery = field("every generated", el("input"));
  pEvery.type = "checkbox";
  const addBtn = el("button", "lensnb-gen-add", "Add patch & rerun");
  const clearBtn = el("button", "lensnb-gen-clear", "Clear patches");
  form.append(addBtn, clearBtn);
  const patchList = el("ul", "lensnb-gen-patch-list");
  patchBox.append(form, patchList);

  const errorLine = el("div", "lensnb-error");
  root.append(bar, text, panels, patchBox, errorLine);

  // -- drawing ------------------------------------------------------------------------------
  function drawText() {
    promptSpan.textContent = model.get("prompt");
    newSpan.replaceChildren();
    const shown = crossShown();
    state.steps.forEach((s, i) => {
      const t = el("span", "lensnb-gen-token", s.token);
      t.title = `#${s.position} id ${s.id}` + (vision ? " (click: where it looked)" : "");
      if (vision) {
        t.classList.toggle("selected", i === shown);
        t.addEventListener("click", () => { state.crossStep = i; drawCross(); drawText(); });
      }
      newSpan.append(t);
    });
    root.dataset.nSteps = String(state.steps.length);
  }

  /** Index of the step whose cross-attention is on the picture (-1: none yet). */
  function crossShown() {
    if (!state.steps.length) return -1;
    return state.crossStep === null ? state.steps.length - 1 : Math.min(state.crossStep, state.steps.length - 1);
  }

  async function drawCross() {
    if (!cross) return;
    const mine = ++cross.seq;
    const req = { kind: "cross", step: crossShown(), layer: model.get("cross_layer"),
      mode: model.get("cross_mode"), head: model.get("cross_head"), kv_group: model.get("cross_kv_group") };
    cross.layerSel.value = String(req.layer);
    cross.headSel.value = headChoiceValue(req.mode, req.head, req.kv_group);
    if (req.step < 0) {
      cross.overlay.paint(null);
      cross.caption.textContent = "Press Step: each new token's attention over the picture shows here.";
      delete root.dataset.crossReady;
      return;
    }
    try {
      const { reply, buffers } = await request(model, req);
      if (mine !== cross.seq) return;
      const grid = unpack(reply.grid, buffers[0]);
      cross.overlay.paint(grid);
      const [row, col] = overlayArgmax(grid);
      cross.box.dataset.argmaxRow = String(row);
      cross.box.dataset.argmaxCol = String(col);
      cross.caption.textContent = `writing step ${reply.step} “${visibleToken(reply.token, 24)}”: `
        + `${(100 * reply.on_picture).toFixed(1)}% of layer ${req.layer}'s attention on the picture's patches, `
        + `${(100 * reply.on_class_tokens).toFixed(1)}% on tile class tokens`;
      root.dataset.crossReady = `${reply.step}:${req.layer}:${req.mode}:${req.head}:${req.kv_group}`;
    } catch (err) { errorLine.textContent = String(err.message || err); }
  }

  function drawTopK() {
    topChart.replaceChildren();
    const last = state.steps[state.steps.length - 1];
    if (!last) { topChart.append(el("div", "lensnb-gen-note", "Press Step.")); return; }
    last.top_texts.forEach((tok, i) => {
      const row = el("div", "lensnb-gen-toprow");
      const label = el("span", "lensnb-gen-toplabel", visibleToken(tok));
      if (i === 0 && tok === last.token) label.classList.add("chosen");
      const track = el("span", "lensnb-gen-track");
      const fill = el("span", "lensnb-gen-fill");
      fill.style.width = `${(100 * last.topProbs[i]).toFixed(1)}%`;
      track.append(fill);
      row.append(label, track, el("span", "lensnb-gen-prob", last.topProbs[i].toFixed(3)));
      topChart.append(row);
    });
  }

  function drawLens() {
    lensGrid.replaceChildren();
    const nLayers = model.get("n_layers");
    const head = el("tr");
    head.append(el("th", "", "layer"));
    for (const s of state.steps) head.append(el("th", "lensnb-gen-lens-col", visibleToken(s.token, 6)));
    lensGrid.append(head);
    for (let l = nLayers - 1; l >= 0; l--) {
      const tr = el("tr");
      tr.append(el("th", "", String(l)));
      for (const s of state.steps) {
        const p = s.lensProbs ? s.lensProbs[l] : 0;
        const td = el("td", "lensnb-gen-cell");
        td.style.background = rgb(viridis(p));
        td.addEventListener("mouseenter", () => {
          lensHover.textContent = `step ${s.index}, layer ${l}: P(${visibleToken(s.token)}) = ${p.toFixed(3)}; `
            + `layer's top token ${visibleToken(s.lens_top ? s.lens_top[l] : "?")}`;
        });
        tr.append(td);
      }
      lensGrid.append(tr);
    }
    lensWrap.scrollLeft = lensWrap.scrollWidth;
  }

  async function drawAttention() {
    if (!state.steps.length) { attnNote.textContent = ""; attnCanvas.width = 0; return; }
    try {
      const { reply, buffers } = await request(model, { kind: "attention", layer: state.attentionLayer });
      const att = unpack(reply.meta, buffers[0]);
      const [nHeads, nPos] = att.shape;
      const cell = Math.max(3, Math.min(14, Math.floor(420 / nPos)));
      attnCanvas.width = nPos * cell;
      attnCanvas.height = nHeads * cell;
      const ctx = attnCanvas.getContext("2d");
      for (let h = 0; h < nHeads; h++) {
        let max = 0;
        for (let k = 0; k < nPos; k++) max = Math.max(max, att.data[h * nPos + k]);
        for (let k = 0; k < nPos; k++) {
          ctx.fillStyle = rgb(viridis(max > 0 ? att.data[h * nPos + k] / max : 0));
          ctx.fillRect(k * cell, h * cell, cell, cell);
        }
      }
      attnCanvas.onmousemove = (ev) => {
        const k = Math.floor(ev.offsetX / cell), h = Math.floor(ev.offsetY / cell);
        if (h < nHeads && k < nPos) {
          attnNote.textContent = `head ${h} → ${visibleToken(reply.tokens[k] ?? "?")} (#${k}): ${att.data[h * nPos + k].toFixed(3)}`;
        }
      };
      attnNote.textContent = `rows: ${nHeads} heads, columns: ${nPos} keys (each row scaled to its max)`
        + (reply.patched ? "; unpatched model" : "");
    } catch (err) { errorLine.textContent = String(err.message || err); }
  }

  function drawPatches() {
    patchList.replaceChildren();
    for (const p of model.get("patches")) {
      const where = p.position === null ? "" : ` @ ${p.position}`;
      patchList.append(el("li", "", `${p.name}${where} ← ${p.value}${p.every_generated ? " (+ every generated)" : ""}`));
    }
  }

  function drawStatus() {
    progress.value = state.steps.length;
    const done = model.get("done");
    status.textContent = done ? `done (${model.get("stop_reason")})` : state.running ? "running…" : "";
    stepBtn.disabled = done || state.running;
    runBtn.disabled = done || state.running;
    stopBtn.disabled = !state.running;
    progress.classList.toggle("active", state.running);
  }

  function drawAll() { drawText(); drawTopK(); drawLens(); drawPatches(); drawStatus(); drawAttention(); drawCross(); }

  function loadState(reply, buffers) {
    state.steps = reply.steps.map((s) => decodeStep(s, buffers.slice(s.buffers[0], s.buffers[1])));
    drawAll();
  }

  async function call(req) {
    errorLine.textContent = "";
    try {
      const { reply, buffers } = await request(model, req);
      return { reply, buffers };
    } catch (err) {
      errorLine.textContent = String(err.message || err);
      return null;
    }
  }

  async function stepOnce() {
    const got = await call({ kind: "step" });
    if (!got) return false;
    if (got.reply.step) state.steps.push(decodeStep(got.reply.step, got.buffers));
    drawText(); drawTopK(); drawLens(); drawStatus(); drawCross();
    return got.reply.step !== null && !got.reply.done;
  }

  // -- events -------------------------------------------------------------------------------
  stepBtn.addEventListener("click", async () => {
    state.running = true; drawStatus();
    await stepOnce();
    state.running = false; drawStatus(); drawAttention();
  });
  runBtn.addEventListener("click", async () => {
    state.running = true; drawStatus();
    while (state.running && (await stepOnce())) { /* one token per request: Stop is honoured between tokens */ }
    state.running = false; drawStatus(); drawAttention();
  });
  stopBtn.addEventListener("click", () => { state.running = false; drawStatus(); });
  resetBtn.addEventListener("click", async () => {
    state.running = false;
    const got = await call({ kind: "reset" });
    if (got) loadState(got.reply, got.buffers);
  });
  attnLayer.addEventListener("change", () => { state.attentionLayer = Number(attnLayer.value); drawAttention(); });
  explorerBtn.addEventListener("click", async () => {
    const got = await call({ kind: "explorer" });
    if (got) attnNote.textContent = "AttentionExplorer built on the current text: show it with `stepper.explorer` in a cell.";
  });
  addBtn.addEventListener("click", async () => {
    state.running = false;
    const got = await call({
      kind: "add_patch", layer: Number(pLayer.value), hook: pHook.value, position: Number(pPos.value),
      value: pValue.value, scale: Number(pScale.value), source_prompt: pSource.value,
      source_position: Number(pSourcePos.value), every_generated: pEvery.checked,
    });
    if (got) loadState(got.reply, got.buffers);
  });
  clearBtn.addEventListener("click", async () => {
    const got = await call({ kind: "clear_patches" });
    if (got) loadState(got.reply, got.buffers);
  });

  const onChange = () => { drawPatches(); drawStatus(); };
  model.on("change:patches", onChange);
  model.on("change:done", onChange);
  const onGenerated = () => {
    // steps taken from Python (stepper.step()/run()) show up here: refetch the whole state
    if (!state.running && model.get("generated").length !== state.steps.length) {
      call({ kind: "state" }).then((got) => got && loadState(got.reply, got.buffers));
    }
  };
  model.on("change:generated", onGenerated);
  const crossTraits = ["cross_layer", "cross_mode", "cross_head", "cross_kv_group"];
  if (vision) for (const n of crossTraits) model.on(`change:${n}`, drawCross);

  drawAll();
  call({ kind: "state" }).then((got) => got && loadState(got.reply, got.buffers));
  return () => {
    state.running = false;
    model.off("change:patches", onChange);
    model.off("change:done", onChange);
    model.off("change:generated", onGenerated);
    if (vision) for (const n of crossTraits) model.off(`change:${n}`, drawCross);
  };
}

export default { render };
