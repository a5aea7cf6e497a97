// Upstreams: every target's health, in-flight requests, latency EWMA,
// circuit breaker and ejection, with a button to close an open breaker.
import { h, replace, table, fmt, badge, toast, keepFocus, poll, slug } from "../dom.js";
import { get, post, seg } from "../api.js";

const stateKind = { healthy: "ok", unhealthy: "bad", ejected: "warn", circuit_open: "bad" };
const circuitKind = { closed: "ok", open: "bad", "half-open": "warn" };

export default function upstreams(main) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const err = h("p", { class: "error", role: "alert" });
  main.append(h("h1", {}, "Upstreams"), err, body);
  let refresh;
  const reset = async (name, button) => {
    button.disabled = true;
    try {
      const r = await post("/admin/circuit-breakers/" + seg(name) + "/reset");
      toast("Breaker " + name + " reset (" + r.reset + ").");
    } catch (e) {
      toast("Reset failed: " + e.message);
    }
    await refresh();
  };
  refresh = async () => {
    let ups, breakers;
    try {
      [ups, breakers] = await Promise.all([get("/admin/upstreams"), get("/admin/circuit-breakers")]);
      err.textContent = "";
    } catch (e) {
      err.textContent = "Could not load: " + e.message;
      return;
    }
    const byTarget = new Map();
    for (const b of breakers || []) byTarget.set(b.upstream + " " + b.target, b);
    const sections = (ups.upstreams || []).map((u) => {
      const rows = (u.targets || []).map((t) => {
        const b = byTarget.get(u.name + " " + t.url);
        let action = "";
        if (b) {
          const button = h("button", { type: "button", class: "quiet", id: "reset-" + slug(b.name), "data-breaker": b.name,
            disabled: b.state === "closed" ? true : undefined, "aria-label": "Reset the circuit breaker of " + b.name }, "Reset breaker");
          button.addEventListener("click", () => reset(b.name, button));
          action = button;
        }
        return [
          [t.url, "mono"],
          badge(t.state, stateKind[t.state]),
          [fmt(t.in_flight, 0), "num"],
          [t.latency_ms ? fmt(t.latency_ms, 2) + " ms" : "–", "num"],
          [fmt(t.consecutive_failures, 0), "num"],
          t.circuit ? h("span", {}, badge(t.circuit, circuitKind[t.circuit]), " ", t.circuit_trips ? t.circuit_trips + " trips" : "") : "none",
          t.ejected_until ? "until " + new Date(t.ejected_until).toLocaleTimeString() : "no",
          t.last_health_error || "",
          action,
        ];
      });
      return h("section", { "aria-label": "Upstream " + u.name },
        h("h2", {}, u.name, " ", h("span", { class: "muted" }, u.balancer + " · " + u.usable + " of " + u.total + " usable" +
          (u.retry_budget_denied ? " · " + u.retry_budget_denied + " retries denied" : ""))),
        table(["Target", "State", ["In flight", "num"], ["Latency (EWMA)", "num"], ["Failures", "num"], "Circuit", "Ejected", "Last health error", ""], rows,
          { "data-upstream": u.name }));
    });
    keepFocus(() => replace(body, sections.length ? sections : h("p", { class: "muted" }, "No upstreams.")));
  };
  return poll(refresh, 2000);
}
