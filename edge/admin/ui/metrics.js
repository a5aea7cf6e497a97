// The live figures: GET /metrics as JSON every second while logged in,
// turned into rates by differencing consecutive scrapes. The last
// historySeconds are kept in the page, whatever page is showing.
import { get } from "./api.js";

export const historySeconds = 300;
const interval = 1000;

let prev = null;        // the last scrape, summed
let timer = null;
const listeners = new Set();

// history: one point a second. t is in seconds; rates are per second;
// p50 and p99 are seconds (null when no request finished).
export const history = [];
// routes: per route name, the latest rates.
export let routeRates = new Map();
export let lastError = "";

export function onSample(fn) { listeners.add(fn); return () => listeners.delete(fn); }

export function start() {
  if (timer) return;
  const tick = async () => {
    try {
      await sample();
      lastError = "";
    } catch (e) {
      lastError = String(e.message || e);
    }
    for (const fn of listeners) fn();
  };
  tick();
  timer = setInterval(tick, interval);
}

export function stop() {
  clearInterval(timer);
  timer = null;
  prev = null;
  history.length = 0;
  routeRates = new Map();
}

// summarize folds one /metrics JSON answer into the sums the console shows.
function summarize(body) {
  const s = { total: 0, classes: { "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 }, buckets: new Map(), count: 0,
    inflight: 0, upErrors: 0, rateLimited: new Map(), routes: new Map() };
  const route = (name) => {
    let r = s.routes.get(name);
    if (!r) { r = { total: 0, e4: 0, e5: 0, limited: 0 }; s.routes.set(name, r); }
    return r;
  };
  for (const f of body.metrics || []) {
    switch (f.name) {
    case "sluice_requests_total":
      for (const x of f.samples || []) {
        const v = x.value || 0, code = Number(x.labels && x.labels.code) || 0;
        s.total += v;
        const cls = Math.floor(code / 100) + "xx";
        if (cls in s.classes) s.classes[cls] += v;
        const r = route((x.labels && x.labels.route) || "");
        r.total += v;
        if (code >= 500) r.e5 += v; else if (code >= 400) r.e4 += v;
      }
      break;
    case "sluice_request_duration_seconds":
      for (const x of f.samples || []) {
        s.count += x.count || 0;
        for (const b of x.buckets || []) s.buckets.set(b.le, (s.buckets.get(b.le) || 0) + b.count);
      }
      break;
    case "sluice_requests_in_flight":
      for (const x of f.samples || []) s.inflight += x.value || 0;
      break;
    case "sluice_upstream_errors_total":
      for (const x of f.samples || []) s.upErrors += x.value || 0;
      break;
    case "sluice_rate_limited_total":
      for (const x of f.samples || []) route((x.labels && x.labels.route) || "").limited += x.value || 0;
      break;
    }
  }
  return s;
}

// quantile is histogram_quantile over the buckets' increase: linear
// within the bucket the rank falls in, as Prometheus does.
export function quantile(q, cur, old) {
  const les = [...cur.buckets.keys()].sort((a, b) => a - b);
  const total = cur.count - (old ? old.count : 0);
  if (!(total > 0)) return null;
  const rank = q * total;
  let below = 0, lower = 0;
  for (const le of les) {
    const n = cur.buckets.get(le) - (old ? (old.buckets.get(le) || 0) : 0);
    if (n >= rank) {
      if (le > 1e300) return lower; // the +Inf bucket: its lower bound, as Prometheus
      const inBucket = n - below;
      return inBucket > 0 ? lower + (le - lower) * ((rank - below) / inBucket) : le;
    }
    below = n;
    lower = le;
  }
  return lower;
}

async function sample() {
  const body = await get("/metrics");
  const now = Date.now() / 1000;
  const cur = summarize(body);
  cur.t = now;
  if (prev) {
    const dt = Math.max(now - prev.t, 0.001);
    const rate = (a, b) => Math.max(a - b, 0) / dt;
    history.push({
      t: now,
      rps: rate(cur.total, prev.total),
      e4: rate(cur.classes["4xx"], prev.classes["4xx"]),
      e5: rate(cur.classes["5xx"], prev.classes["5xx"]),
      upErrors: rate(cur.upErrors, prev.upErrors),
      p50: quantile(0.5, cur, prev),
      p99: quantile(0.99, cur, prev),
      inflight: cur.inflight,
    });
    while (history.length && history[0].t < now - historySeconds) history.shift();
    const rates = new Map();
    for (const [name, r] of cur.routes) {
      const p = prev.routes.get(name) || { total: 0, e4: 0, e5: 0, limited: 0 };
      rates.set(name, { rps: rate(r.total, p.total), e4: rate(r.e4, p.e4), e5: rate(r.e5, p.e5), limited: rate(r.limited, p.limited), total: r.total });
    }
    routeRates = rates;
  }
  prev = cur;
}
