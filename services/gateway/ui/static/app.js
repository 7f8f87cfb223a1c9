// The dashboard's router: #/page/arg -> pages/<page>.js render(main, arg, query).
import { forgetKeys, hasKey, onKeyNeeded } from "./api.js";
import { errorBox, mount } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as items from "./pages/items.js";
import * as users from "./pages/users.js";
import * as tryit from "./pages/try.js";
import * as admin from "./pages/admin.js";

const PAGES = { overview, items, users, try: tryit, admin };
const TITLES = { overview: "Overview", items: "Items", users: "Users", try: "Try it", admin: "Admin" };
let cleanup = null;

function askForKey(why) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-why").textContent = why;
  input.value = "";
  return new Promise((resolve) => {
    const done = (value) => {
      dialog.removeEventListener("close", onClose);
      cancel.removeEventListener("click", onCancel);
      document.getElementById("forget-key").hidden = !hasKey() && !value;
      resolve(value);
    };
    const onClose = () => {
      const value = dialog.returnValue === "ok" ? input.value.trim() : "";
      input.value = "";
      done(value || null);
    };
    const cancel = document.getElementById("key-cancel");
    const onCancel = () => { dialog.returnValue = "cancel"; dialog.close(); };
    dialog.addEventListener("close", onClose);
    cancel.addEventListener("click", onCancel);
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
}

function parse() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const [page, ...rest] = path.split("/");
  return {
    page: PAGES[page] ? page : "overview",
    arg: rest.length ? decodeURIComponent(rest.join("/")) : "",
    query: new URLSearchParams(query),
  };
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  const { page, arg, query } = parse();
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${TITLES[page]} - hybridrec dashboard`;
  const main = document.getElementById("main");
  try {
    cleanup = (await PAGES[page].render(main, arg, query)) || null;
  } catch (err) {
    mount(main, errorBox(err));
  }
}

onKeyNeeded(askForKey);
const forget = document.getElementById("forget-key");
forget.hidden = !hasKey();
forget.addEventListener("click", () => { forgetKeys(); forget.hidden = true; route(); });
window.addEventListener("hashchange", () => {
  document.getElementById("main").focus({ preventScroll: true }); // a page may move focus on
  route();
});
route();
