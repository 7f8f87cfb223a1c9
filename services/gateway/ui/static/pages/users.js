// Users: history (newest first) beside recommendations; feedback buttons show the list change.
import { api } from "../api.js";
import { errorBox, field, fmt, h, itemLink, mount, sameId } from "../dom.js";

const RATINGS = ["5", "4.5", "4", "3.5", "3", "2.5", "2", "1.5", "1", "0.5"];
const DISLIKE_RATING = 1;
const SHOWN = 25;

function historyRow(e) {
  const what = e.source === "history" ? "history"
    : e.type === "rating" ? `rated ${e.rating}` : e.type || "event";
  return h("li", { class: e.source === "event" ? "event" : "" },
    itemLink(e), " ", h("span", { class: `badge ${e.source}` }, what),
    e.timestamp ? h("span", { class: "muted small" }, ` ${fmt.unix(e.timestamp)}`) : null);
}

async function examples() {
  const box = h("p", { class: "muted" }, "Enter the id of a user of the training data");
  try {
    const ids = ((await api("/v1/status")).data.bundle || {}).example_user_ids || [];
    if (ids.length) {
      box.append(", for example: ");
      ids.forEach((id, i) => box.append(i ? ", " : "", h("a", { href: `#/users/${encodeURIComponent(String(id))}` }, `user ${id}`)));
    }
  } catch { /* the form alone still works */ }
  box.append(".");
  return box;
}

export async function render(main, arg, query) {
  const uid = arg;
  // Ids are strings (1-128 of A-Z a-z 0-9 . _ : @ -): "1" for MovieLens, "cust-0007" for a shop.
  const idInput = h("input", { type: "text", name: "user", value: uid, required: true, placeholder: "e.g. 1 or cust-0007", maxlength: 128, pattern: "[A-Za-z0-9._:@\\-]{1,128}", autocomplete: "off", spellcheck: "false" });
  const kInput = h("input", { type: "number", name: "k", min: 1, max: 50, value: query.get("k") || 10 });
  const genreInput = h("input", { type: "text", name: "genres", value: query.get("genres") || "", list: "genre-list", placeholder: "e.g. Comedy, Drama", autocomplete: "off" });
  const genreList = h("datalist", { id: "genre-list" });
  const form = h("form", { class: "controls", onsubmit: (e) => {
    e.preventDefault();
    const id = idInput.value.trim();
    if (!id) return;
    const q = new URLSearchParams({ k: kInput.value || "10" });
    if (genreInput.value.trim()) q.set("genres", genreInput.value.trim());
    const target = `#/users/${encodeURIComponent(id)}?${q}`;
    if (window.location.hash === target) load(); else window.location.hash = target;
  } },
  field("User id", idInput), field("How many (k)", kInput),
  field("Genre filter", genreInput, "comma-separated; empty = all"), genreList,
  h("button", { type: "submit" }, "Show"));
  const notice = h("p", { class: "notice", role: "status", "aria-live": "polite" });
  const histBox = h("section", { class: "card", "aria-labelledby": "hist-h" }, h("h2", { id: "hist-h" }, "History (newest first)"));
  const recBox = h("section", { class: "card", "aria-labelledby": "rec-h" }, h("h2", { id: "rec-h" }, "Recommendations"));
  mount(main, h("h1", {}, uid ? `User ${uid}` : "Users"), form, notice,
    uid ? h("div", { class: "columns" }, histBox, recBox) : await examples());
  if (!uid) { idInput.focus(); return null; }

  let previous = null;
  let excluded = [];

  async function loadHistory() {
    const body = [h("h2", { id: "hist-h" }, "History (newest first)")];
    try {
      const { data } = await api(`/v1/users/${encodeURIComponent(uid)}/history`, { params: { limit: 2 * SHOWN } });
      excluded = data.items.filter((e) => e.source === "event").map((e) => e.item_id);
      const shownN = Math.min(SHOWN, data.items.length);
      body.push(h("p", { class: "muted small" }, `${shownN} of ${data.total} entries; events show type, rating and time.`),
        h("ol", { class: "list history" }, data.items.slice(0, SHOWN).map(historyRow)));
      return { body, items: data.items };
    } catch (err) {
      body.push(errorBox(err));
      return { body, items: [] };
    }
  }

  async function loadRecs() {
    const genres = genreInput.value.split(",").map((g) => g.trim()).filter(Boolean);
    const request = { user_id: uid, k: Number(kInput.value) || 10, genres, explain: true, exclude_item_ids: excluded };
    const { data, headers } = await api("/v1/recommendations", { method: "POST", body: request });
    return { data, cache: headers.get("x-hybridrec-cache") };
  }

  async function send(it, type, rating) {
    const body = { item_id: it.item_id, type };
    if (rating !== undefined) body.rating = rating;
    notice.textContent = `Sending ${type} for ${fmt.title(it)}...`;
    try {
      const { data } = await api(`/v1/users/${encodeURIComponent(uid)}/events`, { method: "POST", body });
      const what = type === "rating" ? `rating ${rating}` : type;
      await load(`Sent ${what} for ${fmt.title(it)} (event ${data.event_id}${data.degraded.length ? `, degraded: ${data.degraded.join(", ")}` : ""}).`);
    } catch (err) {
      mount(notice, errorBox(err));
    }
  }

  function recRow(it, fresh) {
    const select = h("select", { "aria-label": `Rating for ${fmt.title(it)}` }, RATINGS.map((r) => h("option", { value: r }, `${r} ★`)));
    return h("li", { class: fresh ? "rec new" : "rec", "data-item-id": String(it.item_id) },
      h("div", { class: "rec-head" }, h("span", { class: "rank" }, `${it.rank}.`), itemLink(it),
        h("span", { class: "score", title: "ranker score" }, fmt.num(it.score, 3)), fresh ? h("span", { class: "badge new" }, "new") : null),
      h("div", { class: "muted small" }, (it.genres || []).join(", ")),
      it.reasons && it.reasons.length ? h("div", { class: "reasons small" }, "Why: ", it.reasons.join("; ")) : null,
      h("div", { class: "feedback", role: "group", "aria-label": `Feedback on ${fmt.title(it)}` },
        select, h("button", { type: "button", onclick: () => send(it, "rating", Number(select.value)) }, "Rate"),
        h("button", { type: "button", class: "secondary", onclick: () => send(it, "click") }, "Click"),
        h("button", { type: "button", class: "secondary", onclick: () => send(it, "rating", DISLIKE_RATING) }, "Dislike")));
  }

  async function load(message) {
    const hist = await loadHistory();
    mount(histBox, hist.body);
    const head = h("h2", { id: "rec-h" }, "Recommendations");
    try {
      const { data, cache } = await loadRecs();
      const before = previous ? new Set(previous.map((it) => String(it.item_id))) : null;
      const gone = previous ? previous.filter((p) => !data.items.some((it) => sameId(it.item_id, p.item_id))) : [];
      const fresh = (it) => Boolean(before) && !before.has(String(it.item_id));
      const nNew = data.items.filter(fresh).length;
      mount(recBox, head,
        data.degraded.length ? h("p", { class: "degraded", role: "alert" }, `Degraded answer: ${data.degraded.join(", ")}`) : null,
        h("p", { class: "muted small" }, `bundle ${data.model_version}; result cache: ${cache || "-"}`),
        data.items.length ? h("ol", { class: "list recs" }, data.items.map((it) => recRow(it, fresh(it))))
          : h("p", {}, "No items match these filters."));
      const genres = new Set([...hist.items, ...data.items].flatMap((it) => it.genres || []));
      mount(genreList, [...genres].sort().map((g) => h("option", { value: g })));
      if (message) notice.textContent = `${message} The list changed: ${nNew} new, ${gone.length} gone${gone.length ? ` (${gone.map(fmt.title).join(", ")})` : ""}.`;
      previous = data.items;
    } catch (err) {
      mount(recBox, head, errorBox(err));
    }
  }
  await load();
  return null;
}
