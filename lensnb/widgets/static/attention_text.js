// AttentionExplorer text view (second of attention.py's files; attention_draw.js before it).
// Virtualised: a page of at most TEXT_PAGE tokens is in the DOM at a time, whatever the text's
// length; a strip above it shows the whole text (max weight per pixel) and jumps on click.

const TEXT_PAGE = 1024; // tokens in the DOM at once
const STRIP_W = 720; // CSS px of the whole-text strip
const STRIP_H = 16;

function textPanel({ model, N, tokens, exactRow, hoverLine, showError, state }) {
  const element = el("div", "lensnb-attn-textpanel");
  const roleSel = el("select", "lensnb-attn-role");
  for (const [v, label] of [["query", "chosen token as query: attention it sends to each token"], ["key", "chosen token as key: attention each token sends to it"]]) {
    const o = el("option", "", label);
    o.value = v;
    roleSel.appendChild(o);
  }
  const textNote = el("div", "lensnb-attn-note");
  const nav = el("div", "lensnb-attn-textnav");
  const prev = el("button", "lensnb-attn-prev", "◀ earlier");
  const next = el("button", "lensnb-attn-next", "later ▶");
  const range = el("span", "lensnb-attn-range");
  const [strip, sctx] = hiDpiCanvas(STRIP_W, STRIP_H, "lensnb-attn-strip");
  strip.title = "the whole text: darker = more attention; click to show that part";
  nav.append(prev, range, next);
  nav.hidden = N <= TEXT_PAGE;
  strip.hidden = N <= TEXT_PAGE;
  const textBox = el("div", "lensnb-attn-tokens");
  element.append(roleSel, textNote, nav, strip, textBox);

  let page = 0; // first token of the page shown
  let weights = null; // Float32Array [N] of the chosen row/column
  let max = 0;
  let chosen = -1;
  const pageOf = (i) => Math.floor(i / TEXT_PAGE) * TEXT_PAGE;

  function renderPage() {
    const toks = tokens();
    const end = Math.min(N, page + TEXT_PAGE);
    const frag = document.createDocumentFragment();
    for (let i = page; i < end; i++) {
      const s = el("span", "lensnb-attn-token", toks[i]);
      s.dataset.pos = String(i);
      frag.appendChild(s);
    }
    textBox.replaceChildren(frag);
    textBox.dataset.first = String(page);
    range.textContent = `tokens ${page}–${end - 1} of ${N}`;
    prev.disabled = page === 0;
    next.disabled = end >= N;
    colour();
  }

  function colour() {
    if (!weights) return;
    for (const s of textBox.children) {
      const i = Number(s.dataset.pos);
      const a = max > 0 ? weights[i] / max : 0;
      s.style.backgroundColor = withAlpha(THEME.roles.attention_tint, a.toFixed(3));
      s.style.color = a > THEME.tint_text_flip ? THEME.ui.on_accent.light : "";
      s.dataset.weight = String(weights[i]);
      s.classList.toggle("chosen", i === chosen);
    }
  }

  function drawStrip() {
    if (strip.hidden || !weights) return;
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
    sctx.strokeStyle = themeColour(element, "fg");
    sctx.strokeRect(px(page) + 0.5, 0.5, Math.max(2, px(Math.min(N, page + TEXT_PAGE)) - px(page) - 1), STRIP_H - 1);
    sctx.fillStyle = THEME.roles.highlight;
    sctx.fillRect(px(chosen) - 1, 0, 2, STRIP_H);
  }

  function goTo(first) {
    page = Math.max(0, Math.min(pageOf(N - 1), pageOf(first)));
    renderPage();
    drawStrip();
  }

  async function load() {
    const layer = model.get("layer"), head = model.get("head");
    const role = model.get("text_role");
    let pos = model.get("text_token");
    if (pos < 0) pos = N - 1;
    roleSel.value = role;
    const gen = ++state.generation;
    try {
      const w = await exactRow(role === "query" ? "row" : "column", layer, head, pos);
      if (gen !== state.generation) return;
      weights = w;
      chosen = pos;
      max = 0;
      for (const v of w) max = Math.max(max, v);
      if (pageOf(pos) !== page || !textBox.children.length) { page = pageOf(pos); renderPage(); } else colour();
      drawStrip();
      const toks = tokens();
      textNote.textContent = (role === "query"
        ? `L${layer} H${head}: attention query ${pos} «${tokenLabel(toks[pos], 24)}» gives each token`
        : `L${layer} H${head}: attention each query gives key ${pos} «${tokenLabel(toks[pos], 24)}»`)
        + `; colour scaled to the largest weight, ${weightText(max)}. Click a token to choose it.`;
    } catch (err) { showError(err); }
  }

  // one listener for the whole page (delegation), not two per token
  textBox.addEventListener("click", (ev) => {
    const pos = ev.target && ev.target.dataset ? ev.target.dataset.pos : undefined;
    if (pos === undefined) return;
    model.set("text_token", Number(pos));
    model.save_changes();
  });
  textBox.addEventListener("mouseover", (ev) => {
    const s = ev.target;
    if (!s || !s.dataset || s.dataset.pos === undefined) return;
    const i = Number(s.dataset.pos);
    const w = s.dataset.weight;
    hoverLine.textContent = `token ${i} «${tokenLabel(tokens()[i], 24)}»` + (w !== undefined ? `: ${weightText(Number(w))}` : "");
  });
  prev.addEventListener("click", () => goTo(page - TEXT_PAGE));
  next.addEventListener("click", () => goTo(page + TEXT_PAGE));
  strip.addEventListener("click", (ev) => goTo(Math.floor((ev.offsetX / STRIP_W) * N)));
  roleSel.addEventListener("change", () => { model.set("text_role", roleSel.value); model.save_changes(); });

  return { element, build: renderPage, load, redraw: drawStrip };
}
