// GenerationStepper on a vision lens with a picture (after generation_stepper_panels.js): each
// new token's cross-attention drawn over the picture (the overlay ImageAttention uses,
// image_overlay.js), for the chosen cross-attention layer and head.

/** The picture panel: {element, draw}; "Follow newest" calls `ctx.showStep(null)`. */
function picturePanel(ctx) {
  const { model, state, root } = ctx;
  const element = el("div", "lensnb-gen-box lensnb-gen-cross");
  const [layerSel, headSel] = crossControls(model, { layer: "cross_layer", mode: "cross_mode", head: "cross_head",
    kv_group: "cross_kv_group" }, "lensnb-gen-cross");
  const follow = buttonEl("lensnb-gen-cross-follow", "Follow newest", () => ctx.showStep(null));
  const bar = el("div", "lensnb-gen-attn-bar");
  bar.append(layerSel, headSel, follow);
  const overlay = imageOverlay(model.get("geometry"), model.get("picture"), "lensnb-gen-cross");
  const caption = el("div", "lensnb-gen-note lensnb-gen-cross-caption");
  const opLabel = el("label", "lensnb-gen-note");
  opLabel.append(el("span", "", "overlay "), overlay.opacity);
  element.append(el("div", "lensnb-gen-title", "Where the model looks as it writes"), bar, overlay.stage,
    caption, opLabel);
  let seq = 0;

  async function draw() {
    const mine = ++seq;
    const req = { step: ctx.crossShown(), layer: model.get("cross_layer"), mode: model.get("cross_mode"),
      head: model.get("cross_head"), kv_group: model.get("cross_kv_group") };
    layerSel.value = String(req.layer);
    headSel.value = headChoiceValue(req.mode, req.head, req.kv_group);
    if (req.step < 0) {
      overlay.paint(null);
      caption.textContent = "Press Step: each new token's attention over the picture shows here.";
      delete root.dataset.crossReady;
      return;
    }
    try {
      const { reply, buffers } = await request(model, "cross", req);
      if (mine !== seq) return;
      overlay.paint(buffers.grid);
      const [row, col] = overlayArgmax(buffers.grid);
      element.dataset.argmaxRow = String(row);
      element.dataset.argmaxCol = String(col);
      caption.textContent = `writing step ${reply.step} “${tokenLabel(reply.token, 24)}”: `
        + `${(100 * reply.on_picture).toFixed(1)}% of layer ${req.layer}'s attention on the picture's patches, `
        + `${(100 * reply.on_class_tokens).toFixed(1)}% on tile class tokens`;
      root.dataset.crossReady = `${reply.step}:${req.layer}:${req.mode}:${req.head}:${req.kv_group}`;
    } catch (err) { ctx.showError(err); }
  }
  return { element, draw };
}
