// Routes: what each route matches, where it sends, how it is guarded and
// limited, and its live rate and errors.
import { h, replace, table, fmt } from "../dom.js";
import { get } from "../api.js";
import * as metrics from "../metrics.js";

export function matchText(m) {
  const parts = [];
  if (m.path) parts.push("path " + m.path);
  if (m.prefix) parts.push("prefix " + m.prefix);
  if (m.regex) parts.push("regex " + m.regex);
  if (m.host) parts.push("host " + m.host);
  if (m.methods && m.methods.length) parts.push(m.methods.join(","));
  for (const [k, what] of [["headers", "header"], ["query", "query"], ["cookies", "cookie"]]) {
    for (const [n, v] of Object.entries(m[k] || {})) parts.push(what + " " + n + "=" + v);
  }
  return parts.join(" · ") || "everything";
}

export function upstreamText(r) {
  if (r.split && r.split.length) return r.split.map((s) => s.upstream + " " + s.weight).join(" / ");
  return r.upstream || "–";
}

export function limitText(r) {
  const out = [];
  if (r.rate_limit) {
    const l = r.rate_limit;
    out.push(l.rate + " per " + (l.per || "1s") + (l.key ? " by " + [].concat(l.key).join("+") : "") + (l.scope ? " (" + l.scope + ")" : "") + (l.shadow ? " shadow" : ""));
  }
  if (r.quota) out.push("quota " + r.quota.limit + " per " + (r.quota.per || "24h"));
  return out.join("; ") || "none";
}

export default async function routes(main) {
  const cfg = await get("/admin/config");
  const body = h("div");
  main.append(h("h1", {}, "Routes"), body);
  const render = () => {
    const rows = (cfg.routes || []).map((r) => {
      const live = metrics.routeRates.get(r.name) || { rps: null, e4: null, e5: null };
      return [
        [r.name, "mono"],
        matchText(r.match || {}),
        upstreamText(r),
        (r.auth || "none") + (r.roles && r.roles.length ? " (" + r.roles.join(", ") + ")" : ""),
        limitText(r),
        [fmt(live.rps, 2), "num"],
        [fmt(live.e4, 2) + " / " + fmt(live.e5, 2), "num"],
      ];
    });
    replace(body, rows.length ? table(["Name", "Match", "Upstream", "Auth", "Limits", ["req/s", "num"], ["4xx / 5xx per s", "num"]], rows, { id: "routes-table" })
      : h("p", { class: "muted" }, "No routes."));
  };
  render();
  return metrics.onSample(render);
}
