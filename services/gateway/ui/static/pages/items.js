// Items: title search, and an item page with content and collaborative neighbours.
import { api } from "../api.js";
import { errorBox, field, fmt, h, itemLink, mount } from "../dom.js";

export function searchForm(onResults, { label = "Search titles", initial = "", action } = {}) {
  const input = h("input", { type: "search", name: "q", placeholder: "e.g. toy story", required: true, value: initial, autocomplete: "off" });
  const results = h("div", { class: "results", "aria-live": "polite" });
  const form = h("form", { class: "search", role: "search", onsubmit: async (e) => {
    e.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    if (action) action(q);
    results.replaceChildren(h("p", { class: "muted" }, "Searching..."));
    try {
      const { data } = await api("/v1/items", { params: { q, limit: 20 } });
      onResults(results, data.items, q);
    } catch (err) { mount(results, errorBox(err)); }
  } }, field(label, input), h("button", { type: "submit" }, "Search"));
  return { form, results, input };
}

function listResults(target, items, q) {
  if (!items.length) { mount(target, h("p", {}, `No title matches "${q}".`)); return; }
  mount(target, h("ol", { class: "list" }, items.map((it) => h("li", {}, itemLink(it),
    h("span", { class: "muted" }, ` ${(it.genres || []).join(", ")}`)))));
}

function neighbours(title, data) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title),
    h("ol", { class: "list" }, data.items.map((it) => h("li", {}, itemLink(it),
      h("span", { class: "score", title: "similarity" }, fmt.num(it.score, 3)),
      h("div", { class: "muted small" }, (it.genres || []).join(", "))))));
}

async function itemPage(main, id) {
  mount(main, h("p", { class: "muted" }, "Loading..."));
  const path = `/v1/items/${encodeURIComponent(id)}`;
  const [item, content, collab] = await Promise.allSettled([
    api(path), api(`${path}/similar`, { params: { k: 10, mode: "content" } }),
    api(`${path}/similar`, { params: { k: 10, mode: "collaborative" } })]);
  if (item.status === "rejected") { mount(main, h("h1", {}, "Item"), errorBox(item.reason)); return; }
  const it = item.value.data;
  const attrs = [["item id", String(it.item_id)], ["year", it.year ?? "-"], ["genres", (it.genres || []).join(", ") || "-"],
    ["tags", (it.tags || []).join(", ") || "-"], ["popularity", `${fmt.int(it.popularity)} training interactions`],
    ["added at run time", it.fresh ? "yes" : "no"]];
  const side = (res, title) => (res.status === "fulfilled" ? neighbours(title, res.value.data)
    : h("section", { class: "card" }, h("h2", {}, title), errorBox(res.reason)));
  mount(main,
    h("p", {}, h("a", { href: "#/items" }, "< Search")),
    h("h1", {}, fmt.title(it)),
    h("section", { class: "card wide" }, h("dl", { class: "facts" }, attrs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("h2", {}, "Text"), h("p", { class: "overview" }, it.overview || "No overview text.")),
    h("div", { class: "columns" }, side(content, "Content neighbours (BERT)"),
      side(collab, "Collaborative neighbours (item tower)")));
}

export async function render(main, arg, query) {
  if (arg) return itemPage(main, arg);
  const initial = query.get("q") || "";
  const { form, results, input } = searchForm(listResults, {
    initial, action: (q) => history.replaceState(null, "", `#/items?q=${encodeURIComponent(q)}`) });
  mount(main, h("h1", {}, "Items"), form, results);
  if (initial) form.requestSubmit(); else input.focus();
  return null;
}
