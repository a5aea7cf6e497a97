// Calls to the admin listener. The session cookie rides along by itself;
// every state-changing call adds the session's CSRF token, which the
// listener requires before it lets a cookie change anything.

let csrf = "";
let onUnauthorized = () => {};

export function setCSRF(token) { csrf = token || ""; }
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export class APIError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// api calls path with method and an optional JSON body, and returns the
// parsed JSON answer; a non-2xx answer throws an APIError with the
// listener's {"error"} message.
export async function api(method, path, body, retried) {
  const headers = { "Accept": "application/json", "X-Sluice-Console": "1" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let data = null;
  try { data = await r.json(); } catch { /* not JSON */ }
  if (r.status === 401 && path !== "/ui/login") onUnauthorized();
  // A login in another tab replaced the session (same cookie, new
  // token): take the current token once and try again.
  if (r.status === 403 && !retried && headers["X-CSRF-Token"] !== undefined && path !== "/ui/login") {
    const s = await api("GET", "/ui/api/session");
    if (s.authenticated && s.csrf_token && s.csrf_token !== csrf) {
      setCSRF(s.csrf_token);
      return api(method, path, body, true);
    }
  }
  if (!r.ok) throw new APIError(r.status, (data && data.error) || r.statusText || String(r.status), data);
  return data;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);
export const del = (path) => api("DELETE", path);

// seg puts a name (a breaker "upstream@host:port", a key id) into a path
// segment. A segment of dots alone can't be sent ("%2E%2E" is ".." to the
// URL standard too), so quota keys, which may be anything, go in ?key=. The admin router matches the raw path, so
// only what would break the URL is escaped; "@", ":" and "|" stay as
// they are, as curl would send them.
export function seg(s) {
  return String(s).replace(/[%/?#\s"<>`{}^\\]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"));
}
