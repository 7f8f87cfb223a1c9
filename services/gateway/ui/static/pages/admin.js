// Admin (admin key only): the bundle each service serves; dry-run and reload.
import { adminApi, setAdminKey } from "../api.js";
import { errorBox, field, fmt, h, mount } from "../dom.js";

function bundlesTable(data) {
  const rows = data.services || [];
  return h("table", {}, h("caption", {}, `Bundle served by each service (${data.consistent ? "consistent" : "NOT the same version everywhere"})`),
    h("thead", {}, h("tr", {}, ["service", "version", "loaded at", "folder", "note"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((s) => h("tr", {}, h("th", { scope: "row" }, s.service), h("td", { class: "mono" }, s.version || "-"),
      h("td", {}, fmt.time(s.loaded_at)), h("td", { class: "mono small" }, s.path || "-"),
      h("td", {}, s.error || s.last_refused || "")))));
}

function resultTable(data) {
  const rows = data.services || [];
  const changed = rows.some((r) => r.changed);
  return h("div", {}, h("p", { class: "ok" }, `${data.dry_run ? "Dry run passed" : "Reload done"}: bundle ${data.bundle}${changed ? " (switched)" : " (nothing changed)"}.`),
    h("table", {}, h("caption", {}, "What each service did"),
      h("thead", {}, h("tr", {}, ["service", "previous", "version", "changed", "seconds"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, h("th", { scope: "row" }, r.service), h("td", { class: "mono" }, r.previous_version || "-"),
        h("td", { class: "mono" }, r.version), h("td", {}, r.changed ? "yes" : "no"), h("td", {}, fmt.num(r.seconds, 2)))))));
}

function keyForm(main, message) {
  const input = h("input", { type: "password", name: "admin-key", autocomplete: "off", required: true });
  const form = h("form", { class: "controls", onsubmit: (e) => {
    e.preventDefault();
    if (!input.value) return;
    setAdminKey(input.value);
    input.value = "";
    render(main);
  } }, field("Admin key", input), h("button", { type: "submit" }, "Unlock admin"));
  mount(main, h("h1", {}, "Admin"),
    h("p", { class: "error", role: "alert", id: "admin-refused" }, `Refused: ${message}`), form);
  input.focus();
}

export async function render(main) {
  mount(main, h("h1", {}, "Admin"), h("p", { class: "muted" }, "Loading..."));
  let bundles;
  try {
    bundles = (await adminApi("/v1/admin/bundle")).data;
  } catch (err) {
    if (err.status === 401) { keyForm(main, err.message); return null; }
    mount(main, h("h1", {}, "Admin"), errorBox(err));
    return null;
  }
  const out = h("div", { role: "status", "aria-live": "polite" });
  const versionInput = h("input", { type: "text", name: "bundle", placeholder: "empty = latest", autocomplete: "off" });
  const table = h("div", {}, bundlesTable(bundles));
  async function run(dryRun) {
    const body = { dry_run: dryRun };
    if (versionInput.value.trim()) body.bundle = versionInput.value.trim();
    mount(out, h("p", { class: "muted" }, dryRun ? "Verifying..." : "Reloading..."));
    try {
      const { data } = await adminApi("/v1/admin/reload", { method: "POST", body });
      mount(out, resultTable(data));
      mount(table, bundlesTable((await adminApi("/v1/admin/bundle")).data));
    } catch (err) {
      mount(out, errorBox(err));
    }
  }
  mount(main, h("h1", {}, "Admin"), h("section", { class: "card wide" }, table),
    h("section", { class: "card wide" }, h("h2", {}, "Hot reload"),
      h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); run(true); } },
        field("Bundle version", versionInput, "a folder under the artifacts root"),
        h("button", { type: "submit" }, "Dry run"),
        h("button", { type: "button", class: "danger", onclick: () => run(false) }, "Reload")), out));
  return null;
}
