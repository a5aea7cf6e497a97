// Overview: requests per second, latency, errors by class and in-flight,
// live, with the last five minutes charted.
import { h, fmt, ms } from "../dom.js";
import { LineChart } from "../chart.js";
import * as metrics from "../metrics.js";

export default function overview(main) {
  const stat = (id, label) => {
    const value = h("div", { class: "value", id: "stat-" + id, "data-value": "" }, "–");
    return { el: h("div", { class: "stat" }, h("div", { class: "label", id: "label-" + id }, label), value), value };
  };
  const stats = {
    rps: stat("rps", "Requests / s"),
    p50: stat("p50", "Latency p50"),
    p99: stat("p99", "Latency p99"),
    e4: stat("e4", "4xx / s"),
    e5: stat("e5", "5xx / s"),
    up: stat("up", "Upstream errors / s"),
    inflight: stat("inflight", "In flight"),
  };
  for (const s of Object.values(stats)) s.value.setAttribute("aria-labelledby", s.value.id.replace("stat-", "label-"));
  const rate = (v) => fmt(v, v < 10 ? 2 : 1);
  const opts = { window: metrics.historySeconds };
  const charts = {
    rps: new LineChart({ ...opts, title: "Requests per second", series: ["req/s"], format: rate }),
    lat: new LineChart({ ...opts, title: "Latency", series: ["p50", "p99"], format: ms }),
    err: new LineChart({ ...opts, title: "Errors per second by class", series: ["4xx", "5xx", "upstream errors"], format: rate }),
    inflight: new LineChart({ ...opts, title: "Requests in flight", series: ["in flight"], format: (v) => Number.isInteger(v) ? String(v) : v.toFixed(2) }),
  };
  charts.rps.canvas.id = "chart-rps";
  const status = h("p", { class: "muted", id: "overview-status" }, "Waiting for the first two scrapes…");
  main.append(
    h("h1", {}, "Overview"),
    h("div", { class: "stats" }, Object.values(stats).map((s) => s.el)),
    h("div", { class: "charts" }, Object.values(charts).map((c) => c.el)),
    status);

  const set = (s, v, text) => {
    s.value.textContent = text;
    s.value.dataset.value = v === null || v === undefined ? "" : String(v);
  };
  const render = () => {
    const hist = metrics.history;
    if (metrics.lastError) status.textContent = "Metrics unavailable: " + metrics.lastError;
    else if (hist.length) status.textContent = "Updated every second; the charts keep the last " + metrics.historySeconds / 60 + " minutes.";
    if (!hist.length) return;
    const last = hist[hist.length - 1];
    set(stats.rps, last.rps, rate(last.rps));
    set(stats.p50, last.p50, ms(last.p50));
    set(stats.p99, last.p99, ms(last.p99));
    set(stats.e4, last.e4, rate(last.e4));
    set(stats.e5, last.e5, rate(last.e5));
    set(stats.up, last.upErrors, rate(last.upErrors));
    set(stats.inflight, last.inflight, fmt(last.inflight, 0));
    const t = hist.map((p) => p.t);
    charts.rps.update(t, [hist.map((p) => p.rps)]);
    charts.lat.update(t, [hist.map((p) => p.p50), hist.map((p) => p.p99)]);
    charts.err.update(t, [hist.map((p) => p.e4), hist.map((p) => p.e5), hist.map((p) => p.upErrors)]);
    charts.inflight.update(t, [hist.map((p) => p.inflight)]);
  };
  render();
  return metrics.onSample(render);
}
