// PatchingWorkbench drawing (lensnb/widgets/patching_workbench.py), after the explorer's
// attention_draw.js, attention_head.js and attention_group.js (its head and KV-group views are
// reused as they are): colour ramps from THEME and the canvas grid every tab draws on (sweeps,
// direct logit attribution, logit lens). Token text reaches the canvas through fillText and
// the DOM through textContent only.

/** A THEME colour map (THEME.colormaps[name]) at t in [0, 1] -> [r, g, b]. */
const _PW_RAMPS = {};
function pwRamp(name, t) {
  if (!_PW_RAMPS[name]) _PW_RAMPS[name] = THEME.colormaps[name].map(hexToRgb);
  const stops = _PW_RAMPS[name];
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i], b = stops[i + 1];
  return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
}

/** A signed score on the diverging map, centred at 0, full colour at +-vmax. */
function pwSigned(v, vmax) { return rgb(pwRamp(THEME.diverging, 0.5 + 0.5 * v / (vmax || 1))); }

/** A value in [0, vmax] on the sequential map. */
function pwSequential(v, vmax) { return rgb(pwRamp(THEME.sequential, v / (vmax || 1))); }

/** The largest |v| of finite values (at least `floor`). */
function pwAbsMax(values, floor = 0) {
  let m = floor;
  for (const v of values) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m;
}

/** A score as text: 6 significant digits, signed. */
function pwNumber(v, digits = 6) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  const s = Number(v).toPrecision(digits);
  return v > 0 ? `+${s}` : s;
}

/**
 * A canvas heatmap: `rows` x `cols` cells with their labels.
 * spec: {rows: [label], cols: [label], colour(i, j) -> css colour | null (not computed yet),
 *        text(i, j) -> short cell text | "", marked(i, j) -> bool (a cross on the cell),
 *        groupEvery: n (a rule between column groups, e.g. the heads of a KV group),
 *        maxWidth, maxHeight, className}
 * Returns {element, draw(selected), cellAt(x, y) -> {i, j} | null, size}.
 */
function pwGrid(spec) {
  const rows = spec.rows, cols = spec.cols;
  const longest = Math.max(1, ...cols.map((c) => tokenLabel(c, 10).length));
  const left = 8 + 7 * Math.max(2, ...rows.map((r) => String(r).length));
  const top = Math.min(78, 10 + 6 * longest);
  const cw = Math.max(4, Math.min(36, Math.floor(((spec.maxWidth || 560) - left) / Math.max(1, cols.length))));
  const ch = Math.max(4, Math.min(24, Math.floor(((spec.maxHeight || 420) - top) / Math.max(1, rows.length))));
  const W = left + cw * cols.length + 2, H = top + ch * rows.length + 2;
  const [canvas, g] = hiDpiCanvas(W, H, spec.className || "lensnb-pw-grid");
  Object.assign(canvas.dataset, { left, top, cw, ch, rows: rows.length, cols: cols.length }); // geometry, for tests

  function draw(selected) {
    g.clearRect(0, 0, W, H);
    g.fillStyle = themeColour(canvas, "bg");
    g.fillRect(0, 0, W, H);
    const fontPx = Math.min(THEME.font.tiny_px, ch - 1, cw - 1);
    for (let i = 0; i < rows.length; i++) {
      for (let j = 0; j < cols.length; j++) {
        const x = left + j * cw, y = top + i * ch;
        const c = spec.colour(i, j);
        g.fillStyle = c || themeColour(canvas, "bg_alt");
        g.fillRect(x, y, cw - (cw > 6 ? 1 : 0), ch - (ch > 6 ? 1 : 0));
        if (spec.marked && spec.marked(i, j)) {
          g.strokeStyle = THEME.roles.ablated;
          g.lineWidth = THEME.lines.normal;
          g.beginPath();
          g.moveTo(x + 2, y + 2); g.lineTo(x + cw - 3, y + ch - 3);
          g.moveTo(x + cw - 3, y + 2); g.lineTo(x + 2, y + ch - 3);
          g.stroke();
        }
        const t = spec.text ? spec.text(i, j) : "";
        if (t && cw >= 22 && ch >= 10) {
          g.font = `${fontPx}px ${THEME.font.mono}`;
          g.textAlign = "center";
          g.textBaseline = "middle";
          g.fillStyle = spec.textColour ? spec.textColour(i, j) : themeColour(canvas, "fg");
          g.fillText(tokenLabel(t, Math.max(1, Math.floor(cw / 6))), x + cw / 2, y + ch / 2);
        }
      }
    }
    if (spec.groupEvery && spec.groupEvery < cols.length) {
      g.strokeStyle = themeColour(canvas, "fg_muted");
      g.lineWidth = THEME.lines.thin;
      for (let j = spec.groupEvery; j < cols.length; j += spec.groupEvery) {
        g.beginPath();
        g.moveTo(left + j * cw - 0.5, top);
        g.lineTo(left + j * cw - 0.5, top + rows.length * ch);
        g.stroke();
      }
    }
    // labels: rows left, columns rotated above
    g.fillStyle = themeColour(canvas, "fg");
    g.font = `${Math.min(THEME.font.tiny_px, Math.max(7, ch))}px ${THEME.font.mono}`;
    g.textAlign = "right";
    g.textBaseline = "middle";
    const rowEvery = ch >= 9 ? 1 : Math.ceil(9 / ch);
    for (let i = 0; i < rows.length; i += rowEvery) g.fillText(String(rows[i]), left - 4, top + (i + 0.5) * ch);
    g.font = `${Math.min(THEME.font.tiny_px, Math.max(7, cw))}px ${THEME.font.mono}`;
    const colEvery = cw >= 9 ? 1 : Math.ceil(9 / cw);
    for (let j = 0; j < cols.length; j += colEvery) {
      g.save();
      g.translate(left + (j + 0.5) * cw, top - 4);
      g.rotate(-Math.PI / 2);
      g.textAlign = "left";
      g.fillText(tokenLabel(cols[j], 10), 0, 0);
      g.restore();
    }
    if (selected) {
      g.strokeStyle = THEME.roles.highlight;
      g.lineWidth = THEME.lines.emphasis;
      g.strokeRect(left + selected.j * cw - 1, top + selected.i * ch - 1, cw + 1, ch + 1);
    }
    g.lineWidth = 1;
  }

  function cellAt(x, y) {
    const j = Math.floor((x - left) / cw), i = Math.floor((y - top) / ch);
    if (x < left || y < top || i < 0 || j < 0 || i >= rows.length || j >= cols.length) return null;
    return { i, j };
  }
  return { element: canvas, draw, cellAt, size: { W, H, left, top, cw, ch } };
}

/**
 * Pointer wiring of a pwGrid: `hover(cell | null)` on move/leave, `click(cell)` on click.
 * Returns nothing; the listeners go with the canvas.
 */
function pwPointer(grid, hover, click) {
  const at = (ev) => grid.cellAt(ev.offsetX, ev.offsetY);
  let last = null;
  grid.element.addEventListener("mousemove", (ev) => {
    const c = at(ev);
    if ((c && last && c.i === last.i && c.j === last.j) || (!c && !last)) return;
    last = c;
    hover(c, ev);
  });
  grid.element.addEventListener("mouseleave", () => { last = null; hover(null); });
  if (click) grid.element.addEventListener("click", (ev) => { const c = at(ev); if (c) click(c, ev); });
}

/** A colour bar: a gradient between two labelled ends (a small canvas and DOM labels). */
function pwColourBar(name, lowLabel, highLabel, note) {
  const element = el("div", "lensnb-pw-colourbar");
  const [canvas, g] = hiDpiCanvas(140, 10, "");
  for (let x = 0; x < 140; x++) {
    g.fillStyle = rgb(pwRamp(name, x / 139));
    g.fillRect(x, 0, 1, 10);
  }
  element.append(el("span", "", lowLabel), canvas, el("span", "", highLabel));
  if (note) element.append(el("span", "lensnb-pw-muted", note));
  return element;
}
