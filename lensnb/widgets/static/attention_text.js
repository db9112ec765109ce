// AttentionExplorer text view (after attention_group.js). Virtualised: a page of at most
// TEXT_PAGE tokens is in the DOM at a time, whatever the text's length; a strip above it shows
// the whole text (max weight per pixel) and jumps on click.

const TEXT_PAGE = 1024; // tokens in the DOM at once
const STRIP_W = 720; // CSS px of the whole-text strip
const STRIP_H = 16;

/** The whole-text strip: max weight per pixel, the shown page framed, the chosen token marked. */
function paintStrip(sctx, view, N) {
  const { weights, max, page, chosen } = view;
  sctx.clearRect(0, 0, STRIP_W, STRIP_H);
  for (let x = 0; x < STRIP_W; x++) {
    const a0 = Math.floor((x / STRIP_W) * N), a1 = Math.max(a0 + 1, Math.floor(((x + 1) / STRIP_W) * N));
    let m = 0;
    for (let i = a0; i < a1; i++) if (weights[i] > m) m = weights[i];
    const a = max > 0 ? m / max : 0;
    sctx.fillStyle = withAlpha(THEME.roles.attention_tint, Math.max(0.04, a).toFixed(3));
    sctx.fillRect(x, 0, 1, STRIP_H);
  }
  const px = (i) => (i / N) * STRIP_W;
  sctx.strokeStyle = themeColour(sctx.canvas, "fg");
  sctx.strokeRect(px(page) + 0.5, 0.5, Math.max(2, px(Math.min(N, page + TEXT_PAGE)) - px(page) - 1), STRIP_H - 1);
  sctx.fillStyle = THEME.roles.highlight;
  sctx.fillRect(px(chosen) - 1, 0, 2, STRIP_H);
}

/** Colour the tokens of the page in `textBox` by `view.weights`. */
function colourTokens(textBox, view) {
  if (!view.weights) return;
  for (const s of textBox.children) {
    const i = Number(s.dataset.pos);
    const a = view.max > 0 ? view.weights[i] / view.max : 0;
    s.style.backgroundColor = withAlpha(THEME.roles.attention_tint, a.toFixed(3));
    s.style.color = a > THEME.tint_text_flip ? THEME.ui.on_accent.light : "";
    s.dataset.weight = String(view.weights[i]);
    s.classList.toggle("chosen", i === view.chosen);
  }
}

/** The text view: {element, build, load, redraw}. */
function textPanel(ctx) {
  const { model, N, state } = ctx;
  const element = el("div", "lensnb-attn-textpanel");
  const roleSel = selectEl("lensnb-attn-role", [["query", "chosen token as query: attention it sends to each token"],
    ["key", "chosen token as key: attention each token sends to it"]], (v) => setTraits(model, { text_role: v }));
  const textNote = el("div", "lensnb-attn-note");
  const nav = el("div", "lensnb-attn-textnav");
  const range = el("span", "lensnb-attn-range");
  const [strip, sctx] = hiDpiCanvas(STRIP_W, STRIP_H, "lensnb-attn-strip");
  strip.title = "the whole text: darker = more attention; click to show that part";
  const textBox = el("div", "lensnb-attn-tokens");
  const view = { page: 0, weights: null, max: 0, chosen: -1 }; // page: first token shown
  const pageOf = (i) => Math.floor(i / TEXT_PAGE) * TEXT_PAGE;
  const goTo = (first) => { view.page = Math.max(0, Math.min(pageOf(N - 1), pageOf(first))); renderPage(); drawStrip(); };
  const prev = buttonEl("lensnb-attn-prev", "◀ earlier", () => goTo(view.page - TEXT_PAGE));
  const next = buttonEl("lensnb-attn-next", "later ▶", () => goTo(view.page + TEXT_PAGE));
  nav.append(prev, range, next);
  nav.hidden = N <= TEXT_PAGE;
  strip.hidden = N <= TEXT_PAGE;
  element.append(roleSel, textNote, nav, strip, textBox);
  const drawStrip = () => { if (!strip.hidden && view.weights) paintStrip(sctx, view, N); };

  function renderPage() {
    const toks = ctx.tokens();
    const end = Math.min(N, view.page + TEXT_PAGE);
    const frag = document.createDocumentFragment();
    for (let i = view.page; i < end; i++) {
      const s = el("span", "lensnb-attn-token", toks[i]);
      s.dataset.pos = String(i);
      frag.appendChild(s);
    }
    textBox.replaceChildren(frag);
    textBox.dataset.first = String(view.page);
    range.textContent = `tokens ${view.page}–${end - 1} of ${N}`;
    prev.disabled = view.page === 0;
    next.disabled = end >= N;
    colourTokens(textBox, view);
  }

  async function load() {
    const layer = model.get("layer"), head = model.get("head");
    const role = model.get("text_role");
    let pos = model.get("text_token");
    if (pos < 0) pos = N - 1;
    roleSel.value = role;
    const gen = ++state.generation;
    try {
      const w = await ctx.exactRow(role === "query" ? "row" : "column", layer, head, pos);
      if (gen !== state.generation) return;
      Object.assign(view, { weights: w, chosen: pos, max: w.reduce((m, v) => Math.max(m, v), 0) });
      if (pageOf(pos) !== view.page || !textBox.children.length) { view.page = pageOf(pos); renderPage(); } else colourTokens(textBox, view);
      drawStrip();
      const tok = tokenLabel(ctx.tokens()[pos], 24);
      textNote.textContent = (role === "query"
        ? `L${layer} H${head}: attention query ${pos} «${tok}» gives each token`
        : `L${layer} H${head}: attention each query gives key ${pos} «${tok}»`)
        + `; colour scaled to the largest weight, ${weightText(view.max)}. Click a token to choose it.`;
    } catch (err) { ctx.showError(err); }
  }

  // one listener for the whole page (delegation), not two per token
  textBox.addEventListener("click", (ev) => {
    const pos = ev.target && ev.target.dataset ? ev.target.dataset.pos : undefined;
    if (pos !== undefined) setTraits(model, { text_token: Number(pos) });
  });
  textBox.addEventListener("mouseover", (ev) => {
    const s = ev.target;
    if (!s || !s.dataset || s.dataset.pos === undefined) return;
    const i = Number(s.dataset.pos), w = s.dataset.weight;
    ctx.hoverLine.textContent = `token ${i} «${tokenLabel(ctx.tokens()[i], 24)}»` + (w !== undefined ? `: ${weightText(Number(w))}` : "");
  });
  strip.addEventListener("click", (ev) => goTo(Math.floor((ev.offsetX / STRIP_W) * N)));
  return { element, build: renderPage, load, redraw: drawStrip };
}
