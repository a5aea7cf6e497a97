// Limits and quotas: each route's rate limit and quota with its live
// refusals, and the quota usage of every consumer (GET /admin/quotas, a
// page at a time, "More" for the next), each with a reset; plus a
// lookup for one quota key.
import { h, replace, table, fmt, toast, keepFocus, slug } from "../dom.js";
import { get, post, APIError } from "../api.js";
import { limitText } from "./routes.js";
import * as metrics from "../metrics.js";

const pageSizes = [10, 100, 500];

export default async function limits(main) {
  const cfg = await get("/admin/config");
  const routeBody = h("div");
  const usageBody = h("div", { id: "quota-usage" }, h("p", { class: "muted" }, "Loading…"));
  const usageErr = h("p", { class: "error", role: "alert", id: "quota-error" });
  const more = h("button", { type: "button", class: "quiet", id: "quota-more", hidden: true }, "More");
  const reload = h("button", { type: "button", class: "quiet", id: "quota-refresh" }, "Refresh");
  const size = h("select", { id: "quota-page-size", name: "limit" },
    pageSizes.map((n) => h("option", { value: String(n), selected: n === 100 }, String(n))));
  const lookupOut = h("div", { id: "quota-lookup-result", "aria-live": "polite" });
  const lookupKey = h("input", { id: "quota-key", name: "key", required: true, placeholder: "an API key id, or values joined by |" });
  main.append(h("h1", {}, "Limits & quotas"),
    h("h2", {}, "Per route"), routeBody,
    h("h2", {}, "Quota usage by consumer"),
    h("p", { class: "muted" }, "Every quota key counted in this window or the last: an API key's id, or the values the route's quota.key names, joined by |."),
    h("div", { class: "row" }, h("label", {}, "Rows per page", size), reload),
    usageErr, usageBody, more,
    h("h2", {}, "Look up a quota key"),
    h("form", { class: "row", on: { submit: async (ev) => { ev.preventDefault(); await lookup(lookupKey.value.trim()); } } },
      h("label", {}, "Quota key", lookupKey), h("button", { type: "submit", id: "quota-lookup" }, "Look up")),
    lookupOut);

  const limited = (cfg.routes || []).filter((r) => r.rate_limit || r.quota);
  const renderRoutes = () => {
    const rows = limited.map((r) => {
      const live = metrics.routeRates.get(r.name) || {};
      return [[r.name, "mono"], limitText(r), [fmt(live.limited, 2), "num"]];
    });
    replace(routeBody, rows.length ? table(["Route", "Limits", ["Rate-limited / s", "num"]], rows)
      : h("p", { class: "muted" }, "No route has a rate limit or a quota."));
  };
  renderRoutes();
  const off = metrics.onSample(renderRoutes);

  const usageCells = (u) => [[fmt(u.used, 0), "num"], u.per || "–", [fmt(u.current_window, 0) + " / " + fmt(u.previous_window, 0), "num"], u.window_start ? new Date(u.window_start).toLocaleString() : "–"];

  // reset resets key's quota; after runs on success or when it was gone.
  const resetButton = (key, label, after) => {
    const b = h("button", { type: "button", class: "quiet", id: "quota-reset-" + slug(key), "aria-label": "Reset the quota of " + label }, "Reset");
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await post("/admin/quotas/reset?key=" + encodeURIComponent(key));
        toast("Quota of " + label + " reset.");
      } catch (e) {
        if (!(e instanceof APIError && e.status === 404)) {
          toast("Reset failed: " + e.message);
          b.disabled = false;
          return;
        }
        toast("Quota of " + label + " had no usage left.");
      }
      await after();
    });
    return b;
  };

  const lookup = async (key) => {
    if (!key) return;
    try {
      const u = await get("/admin/quotas?key=" + encodeURIComponent(key));
      replace(lookupOut, table(["Key", ["Used", "num"], "Per", ["This / last window", "num"], "Window start", ""],
        [[[key, "mono"], ...usageCells(u), resetButton(key, key, () => lookup(key))]]));
    } catch (e) {
      replace(lookupOut, h("p", { class: e instanceof APIError && e.status === 404 ? "muted" : "error" }, e.message));
    }
  };

  // API key ids are quota keys (key: api_key): such rows show the key's
  // name too. No key store: no names.
  let names = new Map();
  const loadNames = async () => {
    try {
      names = new Map((await get("/admin/apikeys") || []).map((k) => [k.id, k.name]));
    } catch {
      names = new Map();
    }
  };

  // The consumers shown so far (every page loaded), and where the next
  // page starts ("" when the last one is in).
  let shown = [];
  let next = "";
  let loading = 0; // a newer load drops what an older one brings

  const render = () => {
    const rows = shown.map((u) => {
      const name = names.get(u.key);
      const label = name ? name + " (" + u.key + ")" : u.key;
      // The empty key: a header-keyed quota's when the header is missing.
      // The admin API's path has no way to name it, so no reset here.
      if (u.key === "") return [["(no value)", "mono muted"], "–", ...usageCells(u), ""];
      return [[u.key, "mono"], name || "–", ...usageCells(u), resetButton(u.key, label, async () => {
        shown = shown.filter((x) => x.key !== u.key);
        render();
      })];
    });
    keepFocus(() => {
      replace(usageBody, rows.length ? table(["Consumer", "API key", ["Used", "num"], "Per", ["This / last window", "num"], "Window start", ""], rows, { id: "quota-table" })
        : h("p", { class: "muted", id: "quota-empty" }, "No consumer has used a quota in this window or the last."));
      // The rows are in the order the store gave them: their data-key
      // attribute names each one (set as an attribute, never as markup).
      usageBody.querySelectorAll("tbody tr").forEach((tr, i) => tr.setAttribute("data-key", shown[i].key));
    });
    more.hidden = next === "";
  };

  // load fetches one page: from the start when fresh, else after next.
  const load = async (fresh) => {
    const my = ++loading;
    usageErr.textContent = "";
    more.disabled = true;
    try {
      const cursor = fresh ? "" : next;
      const p = await get("/admin/quotas?limit=" + encodeURIComponent(size.value) + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      if (my !== loading) return;
      if (fresh) shown = [];
      // A Redis SCAN may give a key again on a later page: keep one row.
      const have = new Set(shown.map((u) => u.key));
      shown = shown.concat((p.quotas || []).filter((u) => !have.has(u.key)));
      next = p.next || "";
    } catch (e) {
      if (my !== loading) return;
      if (e instanceof APIError && e.status === 404) {
        replace(usageBody, h("p", { class: "muted" }, "No quota store."));
        more.hidden = true;
        return;
      }
      usageErr.textContent = "Could not list quota usage: " + e.message;
    } finally {
      more.disabled = false;
    }
    render();
  };

  more.addEventListener("click", () => load(false));
  reload.addEventListener("click", async () => { await loadNames(); await load(true); });
  size.addEventListener("change", () => load(true));
  await loadNames();
  await load(true);
  return off;
}
