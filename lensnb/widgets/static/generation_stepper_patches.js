// GenerationStepper patch panel (after generation_stepper_picture.js): add a patch (layer, hook,
// position, value) and rerun from the prompt; the list of active patches.

/** The patch panel: {element, draw}. `ctx.replaceState(got)` takes the state reply. */
function patchPanel(ctx) {
  const { model, state } = ctx;
  const element = el("details", "lensnb-gen-patches");
  element.append(el("summary", "", "Patches (rerun from the prompt)"));
  const form = el("div", "lensnb-gen-form");
  const field = (label, input, props = {}) => {
    Object.assign(input, props);
    const wrap = el("label", "", label + " ");
    wrap.append(input);
    form.append(wrap);
    return input;
  };
  const pLayer = field("layer", el("input"), { type: "number", min: "0", max: String(model.get("n_layers") - 1), value: "0" });
  const pHook = field("hook", selectEl("", model.get("hook_choices").map((h) => [h, h])));
  pHook.value = "hook_resid_post";
  const pPos = field("position", el("input"), { type: "number", value: "-1" });
  const pValue = field("value", selectEl("", ["zero", "scale", "source"].map((v) => [v, v])));
  const pScale = field("scale", el("input"), { type: "number", step: "0.1", value: "0" });
  const pSource = field("source prompt", el("input"), { type: "text", placeholder: "for value = source" });
  const pSourcePos = field("source position", el("input"), { type: "number", value: "-1" });
  const pEvery = field("every generated", el("input"), { type: "checkbox" });
  const addBtn = buttonEl("lensnb-gen-add", "Add patch & rerun", async () => {
    state.running = false;
    ctx.replaceState(await ctx.call("add_patch", {
      layer: Number(pLayer.value), hook: pHook.value, position: Number(pPos.value),
      value: pValue.value, scale: Number(pScale.value), source_prompt: pSource.value,
      source_position: Number(pSourcePos.value), every_generated: pEvery.checked,
    }));
  });
  const clearBtn = buttonEl("lensnb-gen-clear", "Clear patches", async () => ctx.replaceState(await ctx.call("clear_patches")));
  form.append(addBtn, clearBtn);
  const list = el("ul", "lensnb-gen-patch-list");
  element.append(form, list);

  function draw() {
    list.replaceChildren();
    for (const p of model.get("patches")) {
      const where = p.position === null ? "" : ` @ ${p.position}`;
      list.append(el("li", "", `${p.name}${where} ← ${p.value}${p.every_generated ? " (+ every generated)" : ""}`));
    }
  }
  return { element, draw };
}
