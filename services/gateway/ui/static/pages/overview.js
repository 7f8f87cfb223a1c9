// Overview: services, live bundle, evaluation figures and traffic, refreshed every 5 s.
import { api } from "../api.js";
import { errorBox, fmt, h, mount, svg } from "../dom.js";

const REFRESH_MS = 5000;

function serviceCard(s) {
  const checks = Object.entries(s.checks || {});
  return h("section", { class: `card status-${s.status}`, "aria-label": `${s.service} service` },
    h("h3", {}, s.service, " ", h("span", { class: `badge ${s.status}` }, s.status)),
    h("p", { class: "muted mono" }, s.model_version || "no bundle"),
    checks.length ? h("ul", { class: "checks" }, checks.map(([k, v]) => h("li", {}, `${k}: ${v}`))) : null);
}

function tile(label, value, note) {
  return h("div", { class: "tile" }, h("span", { class: "tile-value" }, value),
    h("span", { class: "tile-label" }, label), note ? h("small", { class: "muted" }, note) : null);
}

function metricsChart(metrics) {
  const rows = Object.entries(metrics).filter(([, v]) => v >= 0 && v <= 1);
  if (!rows.length) return null;
  const barH = 22, labelW = 260, w = 560, top = 6;
  const height = top + rows.length * barH;
  const chart = svg("svg", { viewBox: `0 0 ${w} ${height}`, class: "chart", role: "img",
    "aria-label": "Bundle evaluation figures between 0 and 1, as bars" });
  rows.forEach(([name, v], i) => {
    const y = top + i * barH;
    chart.append(svg("text", { x: labelW - 8, y: y + 15, "text-anchor": "end" }, name));
    chart.append(svg("rect", { x: labelW, y: y + 3, width: Math.max(1, v * (w - labelW - 60)), height: barH - 8, class: "bar" }));
    chart.append(svg("text", { x: labelW + v * (w - labelW - 60) + 6, y: y + 15 }, v.toFixed(3)));
  });
  return chart;
}

function bundleSection(b) {
  if (!b) return h("section", { class: "card" }, h("h2", {}, "Live bundle"), h("p", {}, "No bundle loaded."));
  const facts = [
    ["version", b.version], ["trained at", fmt.time(b.trained_at)], ["loaded at", fmt.time(b.loaded_at)],
    ["dataset", b.dataset || "-"], ["items", fmt.int(b.n_items)], ["users", fmt.int(b.n_users)],
    ["candidate sources", (b.sources || []).join(", ") || "-"],
  ];
  const metrics = Object.entries(b.metrics || {});
  return h("section", { class: "card wide" },
    h("h2", {}, "Live bundle"),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "version" ? "mono" : "" }, v)])),
    h("h3", {}, "Evaluation (from the bundle's manifest)"),
    metrics.length
      ? h("div", { class: "eval" },
        h("table", {}, h("caption", { class: "sr-only" }, "Evaluation figures"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "figure"), h("th", { scope: "col" }, "value"))),
          h("tbody", {}, metrics.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, fmt.num(v, 4)))))),
        metricsChart(b.metrics))
      : h("p", { class: "muted" }, "This bundle carries no evaluation figures."));
}

function trafficSection(t) {
  const reasons = Object.entries(t.degraded_by_reason || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
  return h("section", { class: "card wide" },
    h("h2", {}, "Traffic (this gateway, last ", Math.round(t.window_s), " s)"),
    h("div", { class: "tiles" },
      tile("requests / s", fmt.num(t.requests_per_s, 2), `${fmt.int(t.total_requests)} since start`),
      tile("p50 latency", t.p50_ms === null ? "-" : `${fmt.num(t.p50_ms, 1)} ms`),
      tile("p99 latency", t.p99_ms === null ? "-" : `${fmt.num(t.p99_ms, 1)} ms`),
      tile("result-cache hit rate", fmt.pct(t.cache_hit_rate)),
      tile("degraded answers", fmt.int(t.degraded_answers), reasons),
      tile("events / s", fmt.num(t.events_per_s, 2), `${fmt.int(t.total_events)} since start`)));
}

export async function render(main) {
  const body = h("div", { class: "grid" });
  const updated = h("p", { class: "muted", role: "status", "aria-live": "polite" }, "Loading...");
  mount(main, h("h1", {}, "Overview"), updated, body);
  let stopped = false;
  async function refresh() {
    try {
      const { data } = await api("/v1/status");
      if (stopped) return;
      mount(body, h("div", { class: "services" }, data.services.map(serviceCard)),
        trafficSection(data.traffic), bundleSection(data.bundle));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()} (every ${REFRESH_MS / 1000} s)`;
    } catch (err) {
      if (!stopped) mount(body, errorBox(err));
    }
  }
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => { stopped = true; clearInterval(timer); };
}
