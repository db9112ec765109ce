// PatchingWorkbench panels (after patching_heatmap.js): the selection's detail (a head's
// attention through the explorer's own headView / a KV group's heads through its groupView,
// and direct logit attribution), the ablation board and the logit-lens tab. `wb` is the
// workbench's shared context (patching_workbench.js): {model, live, ask, showError, ...}.

/**
 * The context the explorer's views (attention_head.js, attention_group.js) expect, over the
 * workbench: their model reads layer / head / kv_group from here, their requests go to the
 * workbench (which relays them to an explorer of the clean prompt), and a click on a head
 * panel of the group view selects that head in the workbench.
 */
function pwExplorerContext(wb, element) {
  const local = { layer: 0, head: 0, kv_group: 0, view: "head" };
  const tokens = wb.model.get("clean_tokens");
  const N = tokens.length;
  const exported = wb.model.get("selected"); // a static copy holds this head's exact rows
  const model = {
    get: (name) => (name in local ? local[name] : wb.model.get(name)),
    set: (name, value) => { local[name] = value; },
    save_changes: () => { if (local.view === "head") wb.select({ kind: "head", layer: local.layer, head: local.head }); },
    on: () => {}, off: () => {},
  };
  const ctx = {
    model, root: element, N, t0: performance.now(), local,
    tokens: () => tokens,
    groupSize: () => wb.model.get("n_heads") / wb.model.get("n_kv"),
    state: { scale: "linear", win: { q0: 0, q1: N, k0: 0, k1: N }, overview: null, detail: null,
      hover: null, switchT0: null, generation: 0, thumbGeneration: 0, alive: true },
    overviews: new Lru(64),
    ask: (name, params) => wb.ask(name, params),
    hoverLine: el("div", "lensnb-attn-hover", "hover a cell: query, key and weight"),
    errorLine: el("div", "lensnb-error"),
    onHeadShown: () => {},
  };
  ctx.showError = (err) => { ctx.errorLine.textContent = errorText(err); };
  ctx.exactRow = exactRowCache((name, params) => ctx.ask(name, params), (layer, head) => {
    if (!wb.live && !(exported.kind === "head" && exported.layer === layer && exported.head === head)) {
      throw new Error("this static copy holds the exact weights of the head selected when it was saved only: open the notebook with its kernel for the others");
    }
  });
  return ctx;
}

/**
 * The selection's detail: head (attention + DLA) or KV group (its heads + their DLA), as two
 * parts: `element` (title, DLA; under the sweep) and `attention` (the explorer's view; beside).
 */
function pwDetailPanel(wb) {
  const element = el("div", "lensnb-pw-detail");
  const title = el("div", "lensnb-pw-title", "");
  const dlaLine = el("div", "lensnb-pw-dla-line");
  const dlaBox = el("div", "lensnb-pw-dla");
  const dlaHover = el("div", "lensnb-pw-hover lensnb-pw-muted", "");
  const attnBox = el("div", "lensnb-attn lensnb-pw-attn");
  const note = el("div", "lensnb-pw-muted");
  element.append(title, dlaLine, dlaBox, dlaHover);
  const attention = el("div", "lensnb-pw-detail-attn");
  attention.append(note, attnBox);
  const ectx = pwExplorerContext(wb, attnBox);
  const head = headView(ectx), group = groupView(ectx);
  attnBox.append(head.element, group.element, ectx.hoverLine, ectx.errorLine);
  let dla = null; // {reply, heads: Float32Array, mlp}

  async function loadDla() {
    if (dla || wb.model.get("reasons").dla) return dla;
    try {
      const { reply, buffers } = await wb.ask("dla", {});
      dla = { reply, heads: buffers.heads.data, mlp: buffers.mlp.data };
    } catch (err) { dlaLine.textContent = errorText(err); }
    return dla;
  }

  function drawDlaGrid(sel) {
    const L = wb.model.get("n_layers"), H = wb.model.get("n_heads");
    const vmax = pwAbsMax(dla.heads, 1e-9);
    const grid = pwGrid({
      rows: Array.from({ length: L }, (_, l) => `L${l}`), cols: Array.from({ length: H }, (_, h) => `H${h}`),
      colour: (i, j) => pwSigned(dla.heads[i * H + j], vmax), groupEvery: H / wb.model.get("n_kv"),
      maxWidth: 260, maxHeight: 220, className: "lensnb-pw-dla-grid",
    });
    const heads = sel.kind === "head" ? [sel.head] : wb.headsOf(sel.kv_group);
    dlaBox.replaceChildren(grid.element, // in the page first: theme colours resolve there
      pwColourBar(THEME.diverging, `−${vmax.toPrecision(2)}`, `+${vmax.toPrecision(2)}`, "direct effect on the logit difference, every head"));
    grid.draw(null);
    const g = grid.element.getContext("2d");
    g.strokeStyle = THEME.roles.highlight;
    g.lineWidth = THEME.lines.normal;
    const { left, top, cw, ch } = grid.size;
    for (const h of heads) g.strokeRect(left + h * cw - 1, top + sel.layer * ch - 1, cw + 1, ch + 1);
    pwPointer(grid, (c) => {
      dlaHover.textContent = c ? `L${c.i} H${c.j}: direct effect ${pwNumber(dla.heads[c.i * H + c.j])} (click: show it)` : "";
    }, (c) => wb.select({ kind: "head", layer: c.i, head: c.j }));
  }

  async function show() {
    const sel = wb.model.get("selected");
    element.hidden = attention.hidden = !sel || !sel.kind;
    if (element.hidden) return;
    const H = wb.model.get("n_heads");
    const reasons = wb.model.get("reasons");
    const heads = sel.kind === "head" ? [sel.head] : wb.headsOf(sel.kv_group);
    title.textContent = sel.kind === "head"
      ? `Head L${sel.layer} H${sel.head} (KV group ${wb.kvOf(sel.head)})`
      : `KV group ${sel.kv_group} of layer ${sel.layer}: query heads ${heads.join(", ")}`;
    element.dataset.kind = sel.kind;
    element.dataset.layer = String(sel.layer);
    // direct logit attribution
    if (reasons.dla) {
      dlaLine.textContent = `direct logit attribution does not apply: ${reasons.dla}`;
      dlaBox.replaceChildren();
    } else {
      await loadDla();
      if (dla && wb.model.get("selected") === sel) {
        const v = heads.reduce((s, h) => s + dla.heads[sel.layer * H + h], 0);
        const what = sel.kind === "head" ? "its direct effect" : "its heads' direct effect (sum)";
        dlaLine.textContent = `${what} on logit(${JSON.stringify(wb.model.get("answer_text"))}) − logit(${JSON.stringify(wb.model.get("wrong_text"))}): ${pwNumber(v)} of ${pwNumber(dla.reply.logit_diff)} in all`;
        dlaLine.dataset.value = String(v);
        drawDlaGrid(sel);
      }
    }
    // attention on the clean prompt (the explorer's views)
    const layers = wb.model.get("attention_layers");
    if (reasons.attention || !layers.includes(sel.layer)) {
      note.textContent = reasons.attention ? `no attention view: ${reasons.attention}`
        : `layer ${sel.layer} has no self-attention pattern to show (the explorer shows layers ${layers.join(", ")})`;
      head.element.hidden = true; group.element.hidden = true;
      return;
    }
    note.textContent = sel.kind === "head" ? "its attention on the clean prompt (wheel: zoom, drag: pan, hover: exact weight)" : "";
    Object.assign(ectx.local, { layer: sel.layer, view: sel.kind === "head" ? "head" : "group",
      head: sel.kind === "head" ? sel.head : heads[0], kv_group: sel.kind === "head" ? wb.kvOf(sel.head) : sel.kv_group });
    ectx.state.win = { q0: 0, q1: ectx.N, k0: 0, k1: ectx.N };
    ectx.errorLine.textContent = "";
    head.element.hidden = sel.kind !== "head";
    group.element.hidden = sel.kind !== "kv_group";
    if (sel.kind === "head") head.load(); else group.load();
  }
  const stopTheme = onThemeChange(() => head.redraw());
  return { element, attention, show, dispose: () => { ectx.state.alive = false; head.dispose(); stopTheme(); } };
}

/** The ablation board: switch heads / KV groups off and see the clean logit difference. */
function pwAblationBoard(wb) {
  const { model } = wb;
  const element = el("div", "lensnb-pw-ablation");
  const reasons = model.get("reasons");
  const L = model.get("n_layers"), H = model.get("n_heads"), G = model.get("n_kv");
  const how = selectEl("lensnb-pw-how", [["zero", "zero ablation"], ["mean", "mean ablation"]], (v) => send({ how: v }));
  const clear = buttonEl("lensnb-pw-clear", "switch all back on", () => send({ heads: [], kv_groups: [] }));
  const value = el("div", "lensnb-pw-ablation-value", "");
  const bar = el("div", "lensnb-pw-bar");
  bar.append(how, clear);
  const boards = el("div", "lensnb-pw-boards");
  element.append(bar, value, boards);
  const pending = { n: 0 };

  function current() {
    return { heads: model.get("ablated_heads"), kv_groups: model.get("ablated_kv_groups"), how: model.get("ablate_how") };
  }
  async function send(change) {
    const params = { ...current(), ...change };
    const n = ++pending.n;
    value.dataset.pending = "true";
    try {
      const { reply } = await wb.ask("ablate", params);
      if (n !== pending.n) return;
      showValue(reply);
    } catch (err) { wb.showError(err); }
    if (n === pending.n) delete value.dataset.pending;
  }
  function showValue(r) {
    const k = r.heads.length + r.kv_groups.length;
    const what = k ? `${r.heads.length} head(s), ${r.kv_groups.length} KV group(s) ${r.how}-ablated` : "nothing ablated";
    value.dataset.value = String(r.value);
    value.textContent = `logit diff on the clean prompt, ${what}: ${pwNumber(r.value)}   ·   clean ${pwNumber(r.clean_value)}   ·   corrupted ${pwNumber(r.corrupted_value)}   ·   normalised ${r.normalised === null ? "—" : pwNumber(r.normalised, 4)} (1 = clean, 0 = corrupted)`;
    draw();
  }
  function toggles(kind, n, label, ablated, reason) {
    const box = el("div", "lensnb-pw-board");
    box.append(el("div", "lensnb-pw-title", kind === "head" ? "heads" : "KV groups"));
    if (reason) { box.append(el("div", "lensnb-pw-muted", `cannot ablate ${kind === "head" ? "heads" : "KV groups"} here: ${reason}`)); return box; }
    const table = el("div", "lensnb-pw-toggles");
    table.style.gridTemplateColumns = `auto repeat(${n}, 18px)`;
    table.append(el("span", ""));
    for (let j = 0; j < n; j++) table.append(el("span", "lensnb-pw-muted lensnb-pw-colhead", `${label}${j}`));
    const on = new Set(ablated.map(([l, j]) => `${l}:${j}`));
    for (let l = 0; l < L; l++) {
      table.append(el("span", "lensnb-pw-muted", `L${l}`));
      for (let j = 0; j < n; j++) {
        const b = el("button", "lensnb-pw-toggle");
        const off = on.has(`${l}:${j}`);
        b.classList.toggle("off", off);
        b.dataset.layer = String(l);
        b.dataset[kind === "head" ? "head" : "kvGroup"] = String(j);
        b.title = `${off ? "switch on" : "switch off"} L${l} ${label}${j}` + (kind === "head" ? ` (KV group ${wb.kvOf(j)})` : ` (heads ${wb.headsOf(j).join(", ")})`);
        b.setAttribute("aria-pressed", String(off));
        b.disabled = !wb.live;
        if (!wb.live) b.title = "a static copy: the ablation board needs the kernel";
        b.addEventListener("click", () => {
          const list = (kind === "head" ? model.get("ablated_heads") : model.get("ablated_kv_groups")).filter(([a, c]) => !(a === l && c === j));
          if (!off) list.push([l, j]);
          send(kind === "head" ? { heads: list } : { kv_groups: list });
        });
        table.append(b);
      }
    }
    box.append(table);
    return box;
  }
  function draw() {
    how.value = model.get("ablate_how");
    how.disabled = clear.disabled = !wb.live;
    boards.replaceChildren(
      toggles("head", H, "H", model.get("ablated_heads"), reasons.ablate_heads),
      toggles("kv_group", G, "G", model.get("ablated_kv_groups"), reasons.ablate_kv_groups));
  }
  const load = () => send({});
  return { element, draw, load };
}

/** The logit lens tab: per layer and position, the top token and the answer's probability. */
function pwLogitLens(wb) {
  const element = el("div", "lensnb-pw-lens");
  const prompt = selectEl("lensnb-pw-lens-prompt", [["clean", "clean prompt"], ["corrupted", "corrupted prompt"]], () => load());
  const colour = selectEl("lensnb-pw-lens-colour", [["answer", "colour: P(answer)"], ["wrong", "colour: P(wrong)"], ["top", "colour: P(top token)"]], () => draw());
  const bar = el("div", "lensnb-pw-bar");
  bar.append(prompt, colour);
  const box = el("div", "lensnb-pw-lens-grid");
  const line = el("div", "lensnb-pw-hover", "hover a cell: the top tokens of that layer at that position");
  element.append(bar, box, line);
  const cache = {};
  async function load() {
    const p = prompt.value;
    if (!cache[p]) {
      box.replaceChildren(el("div", "lensnb-pw-muted", "computing the logit lens…"));
      try { cache[p] = await wb.ask("logit_lens", { prompt: p }); } catch (err) { box.replaceChildren(el("div", "lensnb-error", errorText(err))); return; }
    }
    draw();
  }
  function draw() {
    const got = cache[prompt.value];
    if (!got) return;
    const { reply, buffers } = got;
    const R = reply.rows.length, P = reply.tokens.length, k = buffers.top_probs.shape[2];
    const which = colour.value;
    const val = (i, j) => (which === "top" ? buffers.top_probs.data[(i * P + j) * k] : buffers[which].data[i * P + j]);
    const grid = pwGrid({ rows: reply.rows, cols: reply.tokens, maxWidth: 760, maxHeight: 460,
      colour: (i, j) => pwSequential(val(i, j), 1), text: (i, j) => reply.top_tokens[i][j][0],
      textColour: (i, j) => (val(i, j) > THEME.tint_text_flip ? THEME.ui.fg.light : THEME.ui.on_accent.light) });
    box.replaceChildren(grid.element, pwColourBar(THEME.sequential, "0", "1", "probability; cells show the top token"));
    grid.draw(null); // in the page first: theme colours resolve there
    pwPointer(grid, (c) => {
      if (!c) { line.textContent = ""; return; }
      const tops = reply.top_tokens[c.i][c.j].map((t, r) => `«${tokenLabel(t, 16)}» ${buffers.top_probs.data[(c.i * P + c.j) * k + r].toFixed(3)}`).join("  ");
      line.textContent = `${reply.rows[c.i]} · position ${c.j} «${tokenLabel(reply.tokens[c.j], 16)}»: ${tops}   ·   P(answer) ${buffers.answer.data[c.i * P + c.j].toFixed(4)}   P(wrong) ${buffers.wrong.data[c.i * P + c.j].toFixed(4)}`;
    });
    element.dataset.prompt = reply.prompt;
  }
  return { element, load, redraw: draw };
}
