// Query: PromQL against the Prometheus in admin.prometheus_url, through
// the admin listener (/ui/api/prom/...), so the browser needs no access
// to Prometheus. Instant queries are tabled, range queries charted.
import { h, replace, table } from "../dom.js";
import { get } from "../api.js";
import { LineChart } from "../chart.js";

const ranges = [["instant", 0], ["last 5 minutes", 300], ["last 15 minutes", 900], ["last hour", 3600], ["last 6 hours", 21600]];
const maxSeries = 8;

function labelText(metric) {
  const m = { ...metric };
  const name = m.__name__ || "";
  delete m.__name__;
  const ls = Object.entries(m).map(([k, v]) => k + '="' + v + '"').join(", ");
  return name + (ls ? "{" + ls + "}" : "") || "{}";
}

export default function query(main) {
  const q = h("textarea", { id: "promql", name: "query", rows: "3", spellcheck: "false", required: true },
    "sum(rate(sluice_requests_total[1m]))");
  const range = h("select", { id: "prom-range", name: "range" }, ranges.map(([n, s]) => h("option", { value: String(s) }, n)));
  range.value = "300";
  const run = h("button", { type: "submit", id: "prom-run" }, "Run");
  const out = h("div", { id: "prom-result", "aria-live": "polite" });
  const form = h("form", { "aria-label": "PromQL query", on: { submit: async (ev) => {
    ev.preventDefault();
    run.disabled = true;
    replace(out, h("p", { class: "muted" }, "Running…"));
    try {
      const secs = Number(range.value);
      const now = Date.now() / 1000;
      const p = new URLSearchParams({ query: q.value });
      let r;
      if (secs === 0) {
        p.set("time", String(now));
        r = await get("/ui/api/prom/query?" + p);
      } else {
        p.set("start", String(now - secs));
        p.set("end", String(now));
        p.set("step", String(Math.max(1, Math.round(secs / 240))));
        r = await get("/ui/api/prom/query_range?" + p);
      }
      show(r.data, secs);
    } catch (e) {
      replace(out, h("p", { class: "error", role: "alert", id: "prom-error" }, "Query failed: " + e.message));
    } finally {
      run.disabled = false;
    }
  } } },
  h("label", {}, "PromQL", q),
  h("div", { class: "row" }, h("label", {}, "Range", range), run));

  const show = (data, secs) => {
    const res = data.result;
    if (data.resultType === "scalar" || data.resultType === "string") {
      replace(out, table(["Value"], [[String(res[1])]], { id: "prom-table" }));
      return;
    }
    if (!res.length) {
      replace(out, h("p", { class: "muted", id: "prom-empty" }, "No series."));
      return;
    }
    if (data.resultType === "vector") {
      replace(out, table(["Series", ["Value", "num"]], res.map((s) => [[labelText(s.metric), "mono"], [s.value[1], "num"]]), { id: "prom-table" }));
      return;
    }
    // matrix: one line per series, on a shared time axis.
    const shown = res.slice(0, maxSeries);
    const times = [...new Set(shown.flatMap((s) => s.values.map((v) => v[0])))].sort((a, b) => a - b);
    const ys = shown.map((s) => {
      const m = new Map(s.values.map((v) => [v[0], Number(v[1])]));
      return times.map((t) => m.has(t) && Number.isFinite(m.get(t)) ? m.get(t) : null);
    });
    const chart = new LineChart({ title: "Result", window: secs, format: (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) });
    chart.canvas.id = "prom-chart";
    replace(out, chart.el, res.length > maxSeries ? h("p", { class: "muted" }, "Showing " + maxSeries + " of " + res.length + " series.") : null);
    chart.update(times, ys, shown.map((s) => labelText(s.metric)));
  };

  main.append(h("h1", {}, "Query"),
    h("p", { class: "muted" }, "PromQL against the Prometheus this gateway is configured with, proxied by the admin listener."),
    h("section", { class: "panel" }, form), out);
}
