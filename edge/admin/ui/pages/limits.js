// Limits and quotas: each route's rate limit and quota with its live
// refusals, and quota usage per consumer (per API key, or any quota key
// looked up by hand), with a reset.
import { h, replace, table, fmt, toast, keepFocus, slug } from "../dom.js";
import { get, post, seg, APIError } from "../api.js";
import { limitText } from "./routes.js";
import * as metrics from "../metrics.js";

export default async function limits(main) {
  const cfg = await get("/admin/config");
  const routeBody = h("div");
  const usageBody = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const lookupOut = h("div", { id: "quota-lookup-result", "aria-live": "polite" });
  const lookupKey = h("input", { id: "quota-key", name: "key", required: true, placeholder: "an API key id, or values joined by |" });
  main.append(h("h1", {}, "Limits & quotas"),
    h("h2", {}, "Per route"), routeBody,
    h("h2", {}, "Quota usage by API key"), usageBody,
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

  const resetButton = (key, label, after) => {
    const b = h("button", { type: "button", class: "quiet", id: "quota-reset-" + slug(key), "aria-label": "Reset the quota of " + label }, "Reset");
    b.addEventListener("click", async () => {
      try { await post("/admin/quotas/" + seg(key) + "/reset"); toast("Quota of " + label + " reset."); } catch (e) { toast("Reset failed: " + e.message); }
      await after();
    });
    return b;
  };
  const usageCells = (u) => [[fmt(u.used, 0), "num"], u.per || "–", [fmt(u.current_window, 0) + " / " + fmt(u.previous_window, 0), "num"], u.window_start ? new Date(u.window_start).toLocaleString() : "–"];

  const lookup = async (key) => {
    if (!key) return;
    try {
      const u = await get("/admin/quotas/" + seg(key));
      replace(lookupOut, table(["Key", ["Used", "num"], "Per", ["This / last window", "num"], "Window start", ""],
        [[[key, "mono"], ...usageCells(u), resetButton(key, key, () => lookup(key))]]));
    } catch (e) {
      replace(lookupOut, h("p", { class: e instanceof APIError && e.status === 404 ? "muted" : "error" }, e.message));
    }
  };

  const refreshUsage = async () => {
    let keys;
    try {
      keys = await get("/admin/apikeys");
    } catch (e) {
      replace(usageBody, h("p", { class: "muted" }, e instanceof APIError && e.status === 404 ? "No API key store: quotas keyed by API key need auth.api_keys." : "Could not list keys: " + e.message));
      return;
    }
    const rows = await Promise.all((keys || []).map(async (k) => {
      try {
        const u = await get("/admin/quotas/" + seg(k.id));
        return [k.name, [k.id, "mono"], ...usageCells(u), resetButton(k.id, k.name, refreshUsage)];
      } catch (e) {
        const none = e instanceof APIError && e.status === 404;
        return [k.name, [k.id, "mono"], [none ? "0" : "?", "num"], none ? "no usage yet" : e.message, "", "", ""];
      }
    }));
    keepFocus(() => replace(usageBody, rows.length ? table(["Key", "Id", ["Used", "num"], "Per", ["This / last window", "num"], "Window start", ""], rows, { id: "quota-table" })
      : h("p", { class: "muted" }, "No API keys.")));
  };
  await refreshUsage();
  return off;
}
