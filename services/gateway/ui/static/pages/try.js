// Try it: an anonymous session built from picked items (and ratings) -> recommendations.
import { api } from "../api.js";
import { errorBox, fmt, h, itemLink, mount, sameId } from "../dom.js";
import { searchForm } from "./items.js";

const STORE = "hybridrec.session";
const CHOICES = [["", "liked (no rating)"], ["5", "5 ★"], ["4", "4 ★"], ["3", "3 ★"], ["2", "2 ★"], ["1", "1 ★"]];

function load() {
  try { return JSON.parse(sessionStorage.getItem(STORE) || "[]"); } catch { return []; }
}

export async function render(main) {
  let picked = load(); // [{item, rating|null}]
  const sessionBox = h("section", { class: "card", "aria-labelledby": "sess-h" });
  const recBox = h("section", { class: "card", "aria-labelledby": "try-rec-h" });
  const { form, results } = searchForm((target, items, q) => {
    if (!items.length) { mount(target, h("p", {}, `No title matches "${q}".`)); return; }
    mount(target, h("ul", { class: "list" }, items.map((it) => h("li", {}, itemLink(it), " ",
      h("button", { type: "button", class: "small-btn", "aria-label": `Add ${fmt.title(it)}`, onclick: () => add(it) }, "Add")))));
  }, { label: "Find items you like" });

  function save() { sessionStorage.setItem(STORE, JSON.stringify(picked)); }
  function add(it) {
    if (!picked.some((p) => sameId(p.item.item_id, it.item_id))) picked.push({ item: it, rating: null });
    save(); update();
  }
  function remove(it) { picked = picked.filter((p) => !sameId(p.item.item_id, it.item_id)); save(); update(); }

  function drawSession() {
    mount(sessionBox, h("h2", { id: "sess-h" }, `Your session (${picked.length})`),
      picked.length ? h("ul", { class: "list session" }, picked.map((p) => {
        const select = h("select", { "aria-label": `Rating for ${fmt.title(p.item)}`, onchange: () => {
          p.rating = select.value ? Number(select.value) : null; save(); update();
        } }, CHOICES.map(([v, label]) => h("option", { value: v, selected: String(p.rating ?? "") === v }, label)));
        return h("li", {}, itemLink(p.item), " ", select, " ",
          h("button", { type: "button", class: "secondary small-btn", "aria-label": `Remove ${fmt.title(p.item)}`, onclick: () => remove(p.item) }, "Remove"));
      })) : h("p", { class: "muted" }, "Search and add a few items; recommendations follow."),
      picked.length ? h("button", { type: "button", class: "secondary", onclick: () => { picked = []; save(); update(); } }, "Clear session") : null);
  }

  async function update() {
    drawSession();
    const head = h("h2", { id: "try-rec-h" }, "Recommendations for this session");
    if (!picked.length) { mount(recBox, head, h("p", { class: "muted" }, "Nothing picked yet.")); return; }
    const body = {
      recent_item_ids: picked.filter((p) => p.rating === null).map((p) => p.item.item_id),
      ratings: picked.filter((p) => p.rating !== null).map((p) => ({ item_id: p.item.item_id, rating: p.rating })),
      k: 10, explain: true,
    };
    try {
      const { data } = await api("/v1/recommendations", { method: "POST", body });
      mount(recBox, head,
        data.degraded.length ? h("p", { class: "degraded", role: "alert" }, `Degraded answer: ${data.degraded.join(", ")}`) : null,
        h("ol", { class: "list recs" }, data.items.map((it) => h("li", { class: "rec", "data-item-id": String(it.item_id) },
          itemLink(it), h("span", { class: "score" }, fmt.num(it.score, 3)),
          it.reasons && it.reasons.length ? h("div", { class: "reasons small" }, "Why: ", it.reasons.join("; ")) : null))));
    } catch (err) {
      mount(recBox, head, errorBox(err));
    }
  }

  mount(main, h("h1", {}, "Try it"),
    h("p", { class: "muted" }, "An anonymous session: nothing is stored on the server."),
    form, results, h("div", { class: "columns" }, sessionBox, recBox));
  await update();
  return null;
}
