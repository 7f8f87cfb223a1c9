// Calls to the gateway's public /v1 API. The API key lives in sessionStorage only;
// it is sent as X-API-Key and never written to the page or the console.
const KEY = "hybridrec.key";
const ADMIN_KEY = "hybridrec.adminKey";

export class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

let askKey = null; // set by the app: async (why) => key or null

export function onKeyNeeded(fn) { askKey = fn; }
export function hasKey() { return Boolean(sessionStorage.getItem(KEY) || sessionStorage.getItem(ADMIN_KEY)); }
export function setAdminKey(key) { sessionStorage.setItem(ADMIN_KEY, key); }
export function forgetKeys() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(ADMIN_KEY); }

async function send(path, { method = "GET", body, params, admin = false, headers = {} }) {
  // Relative to the page (<root>/ui/), so a gateway behind a path prefix works too.
  const url = new URL(`..${path}`, document.baseURI);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const h = { Accept: "application/json", ...headers };
  const key = admin ? sessionStorage.getItem(ADMIN_KEY) : sessionStorage.getItem(KEY);
  if (key) h["X-API-Key"] = key;
  const init = { method, headers: h, cache: "no-store" };
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let data = null;
  try { data = await response.json(); } catch { data = null; }
  if (!response.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(response.status, err.code || "http_error",
      err.message || `HTTP ${response.status}`, data && data.request_id);
  }
  return { data, headers: response.headers };
}

// A public call; a 401 asks the user for a key (once per session) and retries.
export async function api(path, options = {}) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await send(path, options);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401 || options.admin || !askKey || attempt > 2) throw err;
      const key = await askKey(attempt === 0 ? "This gateway needs an API key." : "That key was refused; try another.");
      if (!key) throw err;
      sessionStorage.setItem(KEY, key);
    }
  }
}

// An admin call: the admin key if one was given, else the API key (401 is returned to the page).
export async function adminApi(path, options = {}) {
  const admin = Boolean(sessionStorage.getItem(ADMIN_KEY));
  return send(path, { ...options, admin });
}
