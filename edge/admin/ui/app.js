// The console's shell: login, navigation between pages (#/name), logout.
import { h, replace, toast } from "./dom.js";
import { get, post, setCSRF, whenUnauthorized, APIError } from "./api.js";
import * as metrics from "./metrics.js";
import overview from "./pages/overview.js";
import routes from "./pages/routes.js";
import upstreams from "./pages/upstreams.js";
import keys from "./pages/keys.js";
import limits from "./pages/limits.js";
import config from "./pages/config.js";
import query from "./pages/query.js";

const pages = { overview, routes, upstreams, keys, limits, config, query };
const titles = { overview: "Overview", routes: "Routes", upstreams: "Upstreams", keys: "API keys",
  limits: "Limits & quotas", config: "Config", query: "Query" };
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const logoutButton = document.getElementById("logout");
let features = { prometheus: false };
let cleanup = null;
let loggedIn = false;

function pageName() {
  const name = location.hash.replace(/^#\/?/, "");
  return name in pages && (name !== "query" || features.prometheus) ? name : "overview";
}

let shown = 0; // counts page changes: a page still loading when another is opened is dropped

async function show(ev) {
  if (!loggedIn) return;
  if (cleanup) { cleanup(); cleanup = null; }
  const my = ++shown;
  const name = pageName();
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = titles[name] + " · sluice console";
  // Each page renders into its own box: one that finishes loading after
  // the next page was opened writes into a box no longer on the page.
  const box = h("div");
  replace(main, box);
  main.dataset.page = name;
  if (ev) main.focus({ preventScroll: true }); // keyboard and screen reader users land on the new page
  let stop = null;
  try {
    stop = (await pages[name](box, { features })) || null;
  } catch (e) {
    replace(box, h("h1", {}, titles[name]), h("p", { class: "error", role: "alert" }, "Could not load: " + e.message));
  }
  if (my !== shown) {
    if (stop) stop();
    return;
  }
  cleanup = stop;
}

function showLogin(message) {
  loggedIn = false;
  metrics.stop();
  if (cleanup) { cleanup(); cleanup = null; }
  nav.hidden = true;
  logoutButton.hidden = true;
  document.title = "Log in · sluice console";
  main.dataset.page = "login";
  const err = h("p", { id: "login-error", class: "error", role: "alert" }, message || "");
  const user = h("input", { id: "login-user", name: "username", autocomplete: "username", required: true, value: "admin" });
  const pass = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const button = h("button", { type: "submit", id: "login-submit" }, "Log in");
  const form = h("form", { on: { submit: async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    err.textContent = "";
    try {
      const r = await post("/ui/login", { username: user.value, password: pass.value });
      setCSRF(r.csrf_token);
      await enter();
    } catch (e) {
      err.textContent = e instanceof APIError && e.status === 401 ? "Wrong user name or password." : e.message;
      pass.value = "";
      pass.focus();
    } finally {
      button.disabled = false;
    }
  } } },
  h("label", {}, "User name", user),
  h("label", {}, "Password", pass),
  button, err);
  replace(main, h("section", { class: "login panel", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "sluice console"),
    h("p", { class: "muted" }, "Log in with the admin listener's credentials."),
    form));
  pass.focus();
}

async function enter() {
  try { features = await get("/ui/api/features"); } catch { features = { prometheus: false }; }
  document.getElementById("nav-query").hidden = !features.prometheus;
  loggedIn = true;
  nav.hidden = false;
  logoutButton.hidden = false;
  metrics.start();
  await show();
  main.focus();
}

whenUnauthorized(() => {
  if (loggedIn) showLogin("Your session has ended. Log in again.");
});

logoutButton.addEventListener("click", async () => {
  try { await post("/ui/logout"); } catch (e) { toast("Logout: " + e.message); }
  setCSRF("");
  showLogin("Logged out.");
});

window.addEventListener("hashchange", show);

(async () => {
  let s;
  try {
    s = await get("/ui/api/session");
  } catch (e) {
    replace(main, h("p", { class: "error", role: "alert" }, "The admin listener did not answer: " + e.message));
    return;
  }
  if (s.authenticated) {
    setCSRF(s.csrf_token);
    await enter();
  } else {
    showLogin();
  }
})();
