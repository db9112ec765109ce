// A minimal lensnb-style widget for the export tests (appended to lensnb's common.js, like every
// widget). It shows the synced `label`, asks Python for row `index` (a float32 buffer) and shows
// the row's values and sum; "next" increments `index`, which fetches the next row.
export default {
  render({ model, el: root }) {
    root.classList.add("lensnb");
    const title = el("div", "tiny-title", model.get("label"));
    const values = el("div", "tiny-values", "loading");
    const error = el("div", "lensnb-error", "");
    const next = el("button", "tiny-next", "next");
    root.append(title, values, next, error);

    const show = async () => {
      const index = model.get("index");
      try {
        const { reply, buffers } = await request(model, "row", { index });
        const row = buffers.row;
        let sum = 0;
        for (const v of row.data) sum += v;
        values.textContent = `row ${reply.index}: n=${row.data.length} first=${Array.from(row.data.slice(0, 4)).join(",")} sum=${sum}`;
        error.textContent = "";
      } catch (err) {
        error.textContent = String(err.message || err);
      }
    };
    const onChange = () => show();
    model.on("change:index", onChange);
    next.addEventListener("click", () => {
      model.set("index", model.get("index") + 1);
      model.save_changes();
    });
    show();
    return () => model.off("change:index", onChange);
  },
};
