// GenerationStepper frontend (lensnb/widgets/generation_stepper.py), last of its files: the
// controls, the growing text and the wiring of the panels (generation_stepper_panels.js,
// generation_stepper_picture.js, generation_stepper_patches.js) through one shared context.

/** Step / Run / Stop / Restart, the progress bar and the status line. */
function stepperControls(model) {
  const element = el("div", "lensnb-gen-bar");
  const stepBtn = el("button", "lensnb-gen-step", "Step");
  const runBtn = el("button", "lensnb-gen-run", "Run");
  const stopBtn = el("button", "lensnb-gen-stop", "Stop");
  const resetBtn = el("button", "lensnb-gen-reset", "Restart");
  const progress = el("progress", "lensnb-gen-progress");
  progress.max = model.get("max_new_tokens");
  progress.value = 0;
  const status = el("span", "lensnb-gen-status");
  element.append(stepBtn, runBtn, stopBtn, resetBtn, progress, status);
  function draw(state) {
    progress.value = state.steps.length;
    const done = model.get("done");
    status.textContent = done ? `done (${model.get("stop_reason")})` : state.running ? "running…" : "";
    stepBtn.disabled = done || state.running;
    runBtn.disabled = done || state.running;
    stopBtn.disabled = !state.running;
    progress.classList.toggle("active", state.running);
  }
  return { element, stepBtn, runBtn, stopBtn, resetBtn, draw };
}

/** The prompt and the generated tokens (on a vision lens: click one to see where it looked). */
function stepperText(ctx) {
  const element = el("div", "lensnb-gen-text");
  const promptSpan = el("span", "lensnb-gen-prompt");
  const newSpan = el("span", "lensnb-gen-new");
  element.append(promptSpan, newSpan);
  function draw() {
    promptSpan.textContent = ctx.model.get("prompt");
    newSpan.replaceChildren();
    const shown = ctx.crossShown();
    ctx.state.steps.forEach((s, i) => {
      const t = el("span", "lensnb-gen-token", s.token);
      t.title = `#${s.position} id ${s.id}` + (ctx.vision ? " (click: where it looked)" : "");
      if (ctx.vision) {
        t.classList.toggle("selected", i === shown);
        t.addEventListener("click", () => ctx.showStep(i));
      }
      newSpan.append(t);
    });
    ctx.root.dataset.nSteps = String(ctx.state.steps.length);
  }
  return { element, draw };
}

function render({ model, el: root }) {
  root.classList.add("lensnb", "lensnb-gen");
  root.replaceChildren();
  const errorLine = el("div", "lensnb-error");
  // crossStep: the step whose cross-attention is shown (null = always the newest)
  const state = { steps: [], running: false, crossStep: null };
  const ctx = { model, root, state, vision: model.get("vision") };
  ctx.showError = (err) => { errorLine.textContent = errorText(err); };
  ctx.call = async (name, params) => {
    errorLine.textContent = "";
    try { return await request(model, name, params); } catch (err) { ctx.showError(err); return null; }
  };
  /** Index of the step whose cross-attention is on the picture (-1: none yet). */
  ctx.crossShown = () => (!state.steps.length ? -1 : state.crossStep === null ? state.steps.length - 1
    : Math.min(state.crossStep, state.steps.length - 1));
  const bar = stepperControls(model), text = stepperText(ctx);
  const topK = topKPanel(ctx), lens = logitLensPanel(ctx), attention = attentionPanel(ctx);
  const picture = ctx.vision ? picturePanel(ctx) : null;
  const patches = patchPanel(ctx);
  const drawCross = () => { if (picture) picture.draw(); };
  ctx.showStep = (i) => { state.crossStep = i; drawCross(); text.draw(); };
  const panels = el("div", "lensnb-gen-panels");
  panels.append(...(picture ? [picture.element] : []), topK.element, lens.element, attention.element);
  root.append(bar.element, text.element, panels, patches.element, errorLine);

  const drawStatus = () => bar.draw(state);
  const drawAll = () => { text.draw(); topK.draw(); lens.draw(); patches.draw(); drawStatus(); attention.draw(); drawCross(); };
  ctx.replaceState = (got) => {
    if (!got) return;
    state.steps = got.reply.steps.map((s, i) => decodeStep(s, got.buffers.top[i], got.buffers.lens[i]));
    drawAll();
  };
  async function stepOnce() {
    const got = await ctx.call("step");
    if (!got) return false;
    if (got.reply.step) state.steps.push(decodeStep(got.reply.step, got.buffers.top, got.buffers.lens));
    text.draw(); topK.draw(); lens.draw(); drawStatus(); drawCross();
    return got.reply.step !== null && !got.reply.done;
  }
  const running = async (loop) => {
    state.running = true; drawStatus();
    await loop();
    state.running = false; drawStatus(); attention.draw();
  };
  bar.stepBtn.addEventListener("click", () => running(stepOnce));
  // one token per request: Stop is honoured between tokens
  bar.runBtn.addEventListener("click", () => running(async () => { while (state.running && (await stepOnce())) { /* next */ } }));
  bar.stopBtn.addEventListener("click", () => { state.running = false; drawStatus(); });
  bar.resetBtn.addEventListener("click", async () => { state.running = false; ctx.replaceState(await ctx.call("reset")); });

  const onChange = () => { patches.draw(); drawStatus(); };
  // steps taken from Python (stepper.step()/run()) show up here: refetch the whole state
  const onGenerated = async () => {
    if (!state.running && model.get("generated").length !== state.steps.length) ctx.replaceState(await ctx.call("state"));
  };
  const crossTraits = ctx.vision ? ["cross_layer", "cross_mode", "cross_head", "cross_kv_group"] : [];
  const listeners = [["change:patches", onChange], ["change:done", onChange], ["change:generated", onGenerated],
    ...crossTraits.map((n) => [`change:${n}`, drawCross])];
  for (const [event, fn] of listeners) model.on(event, fn);
  drawAll();
  ctx.call("state").then(ctx.replaceState);
  return () => {
    state.running = false;
    for (const [event, fn] of listeners) model.off(event, fn);
  };
}

export default { render };
