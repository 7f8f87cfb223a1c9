// Small DOM helpers: elements are built with textContent, never from HTML strings.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function mount(target, ...children) {
  target.replaceChildren();
  append(target, children);
}

const SVG = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

export const fmt = {
  num(v, digits = 2) { return v === null || v === undefined ? "-" : Number(v).toFixed(digits); },
  int(v) { return v === null || v === undefined ? "-" : Number(v).toLocaleString("en"); },
  pct(v) { return v === null || v === undefined ? "-" : `${(100 * v).toFixed(1)} %`; },
  time(v) { return v ? new Date(v).toLocaleString() : "-"; },
  unix(v) { return v ? new Date(v * 1000).toLocaleString() : ""; },
  title(it) { return it.year ? `${it.title} (${it.year})` : it.title; },
};

export function itemLink(it) {
  return h("a", { href: `#/items/${encodeURIComponent(String(it.item_id))}` }, fmt.title(it));
}

export function errorBox(err) {
  const rid = err && err.requestId ? ` (request ${err.requestId})` : "";
  return h("p", { class: "error", role: "alert" }, `${err && err.message ? err.message : err}${rid}`);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("small", { class: "muted" }, hint) : null);
}

export const sameId = (a, b) => String(a) === String(b);
