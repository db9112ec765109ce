// ImageAttention frontend (lensnb/widgets/image_attention.py). common.js and image_overlay.js
// are concatenated in front: request, el, svgEl, selectEl, imageOverlay, headPicker, ... are in scope.
// Python computes every number; this file draws the picture with the chosen token's
// cross-attention over it (the shared overlay) and an SVG bar chart of the gates. Token text
// only via textContent.

/** Bar chart of tanh(gate) per cross-attention layer: attention and MLP side by side. */
function drawGates(host, layers, gates, current) {
  host.replaceChildren();
  const W = 240, H = 150, P = { l: 34, r: 8, t: 10, b: 30 };
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: "lensnb-imgattn-gates" });
  const y = (v) => P.t + (1 - (v + 1) / 2) * (H - P.t - P.b);
  for (const v of [-1, 0, 1]) {
    svg.appendChild(svgEl("line", { x1: P.l, x2: W - P.r, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "grid" }));
    svg.appendChild(svgEl("text", { x: P.l - 4, y: y(v) + 3, "text-anchor": "end" }, String(v)));
  }
  const slot = (W - P.l - P.r) / Math.max(1, layers.length);
  layers.forEach((layer, i) => {
    const x0 = P.l + i * slot;
    gates[i].forEach((g, j) => {
      const bar = svgEl("rect", {
        x: x0 + slot * (0.15 + 0.35 * j), width: slot * 0.33,
        y: Math.min(y(g), y(0)), height: Math.abs(y(g) - y(0)),
        class: j === 0 ? "attn" : "mlp",
      });
      bar.dataset.layer = String(layer);
      bar.dataset.gate = j === 0 ? "attn" : "mlp";
      bar.dataset.value = String(g);
      const tip = svgEl("title", {}, `layer ${layer} ${j === 0 ? "attention" : "MLP"} gate tanh(g) = ${g.toFixed(4)}`);
      bar.appendChild(tip);
      svg.appendChild(bar);
    });
    const label = svgEl("text", { x: x0 + slot / 2, y: H - P.b + 14, "text-anchor": "middle",
      class: layer === current ? "current" : "" }, `L${layer}`);
    svg.appendChild(label);
  });
  // legend: coloured swatches, labels in the text colour (legible in any theme)
  const legend = svgEl("text", { x: P.l, y: H - 4 });
  legend.append(svgEl("tspan", { class: "legend-attn" }, "■"), " attention  ",
    svgEl("tspan", { class: "legend-mlp" }, "■"), " MLP");
  svg.append(legend);
  host.appendChild(svg);
}

function render({ model, el: root }) {
  let disposed = false;
  let seq = 0;
  const box = el("div", "lensnb lensnb-imgattn");
  root.appendChild(box);
  const geo = model.get("geometry");

  // -- controls
  const bar = el("div", "lensnb-imgattn-bar");
  const [layerSel, headSel] = crossControls(model, { layer: "layer", mode: "mode", head: "head", kv_group: "kv_group" },
    "lensnb-imgattn");
  bar.append(layerSel, headSel);
  box.appendChild(bar);

  // -- tokens
  const strip = el("div", "lensnb-imgattn-tokens");
  const seen = model.get("sees_image");
  const tokenEls = model.get("tokens").map((t, i) => {
    const span = el("span", "lensnb-imgattn-token", t.replace(/\n/g, "↵"));
    span.dataset.pos = String(i);
    if (!seen[i]) span.classList.add("blind");
    span.title = seen[i] ? `token ${i}` : `token ${i}: comes before the image, sees no tile`;
    span.addEventListener("click", () => setTraits(model, { token: i }));
    strip.appendChild(span);
    return span;
  });
  box.appendChild(strip);

  // -- picture + heatmap, gates
  const main = el("div", "lensnb-imgattn-main");
  const overlay = imageOverlay(geo, model.get("picture"), "lensnb-imgattn");
  const stage = overlay.stage, opacity = overlay.opacity;
  const side = el("div", "lensnb-imgattn-side");
  const gatesHost = el("div", "lensnb-imgattn-gatebox");
  const summary = el("div", "lensnb-imgattn-summary");
  const opLabel = el("label", "lensnb-imgattn-oplabel"); opLabel.append(el("span", "", "overlay "), opacity);
  side.append(el("div", "lensnb-imgattn-title", "gates per cross-attention layer"), gatesHost, summary, opLabel);
  main.append(stage, side);
  box.appendChild(main);
  const status = el("div", "lensnb-imgattn-status");
  box.appendChild(status);

  async function update() {
    const mine = ++seq;
    const req = { layer: model.get("layer"), token: model.get("token"),
      mode: model.get("mode"), head: model.get("head"), kv_group: model.get("kv_group") };
    layerSel.value = String(req.layer);
    headSel.value = headChoiceValue(req.mode, req.head, req.kv_group);
    tokenEls.forEach((s, i) => s.classList.toggle("selected", i === req.token));
    drawGates(gatesHost, model.get("cross_layers"), model.get("gates"), req.layer);
    try {
      const { reply, buffers } = await request(model, "grid", req);
      if (disposed || mine !== seq) return;
      const grid = buffers.grid;
      overlay.paint(grid);
      const [argRow, argCol] = overlayArgmax(grid);
      box.dataset.argmaxRow = String(argRow);
      box.dataset.argmaxCol = String(argCol);
      box.dataset.onPicture = String(reply.on_picture);
      const tok = model.get("tokens")[req.token];
      summary.textContent = `token ${req.token} “${tok}”: ${(100 * reply.on_picture).toFixed(1)}% of its attention on the picture's patches, ${(100 * reply.on_class_tokens).toFixed(1)}% on tile class tokens`
        + (seen[req.token] ? "" : " (this token comes before the image: HF masks it out)");
      status.textContent = "";
      box.dataset.ready = `${req.layer}:${req.token}:${req.mode}:${req.head}:${req.kv_group}`;
    } catch (err) {
      if (!disposed) { status.textContent = errorText(err); status.className = "lensnb-error"; }
    }
  }

  const names = ["layer", "token", "mode", "head", "kv_group"];
  for (const n of names) model.on(`change:${n}`, update);
  update();
  return () => {
    disposed = true;
    for (const n of names) model.off(`change:${n}`, update);
  };
}

export default { render };
