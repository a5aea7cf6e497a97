// Package observe is sluice's metrics and access log: one Prometheus
// registry per gateway, the request-path handles resolved when a snapshot
// is built, the scrape-time collector for state (metrics.go), the scrape
// handler and the JSON rendering the dashboard reads (serve.go, json.go),
// and the buffered JSON access log (accesslog.go).
//
// Invariants:
//   - Label values are names from the config (route, upstream, target URL)
//     or small closed sets (method, status code, error kind, reason),
//     never raw paths or other client data: cardinality is bounded by the
//     config.
//   - The request path never looks a metric up by label: a Route or
//     Upstream handle holds its children, and status-code children are
//     created once on first use and then read from an atomic slot. A
//     recorded request allocates nothing in the steady state.
//   - State that already lives elsewhere (target health, circuit state,
//     retry-budget denials, Redis fallback) is read at scrape time by a
//     collector, not mirrored on every change.
//   - A nil *Route or *Upstream handle is valid and records nothing
//     (metrics off).
//   - An access log line costs no allocation and never waits for the
//     disk: when the writer falls behind, lines are dropped and counted.
//     An Entry's byte slices are read during Log only (they may be a
//     RequestCtx's, recycled when the handler returns).
//
// observe imports nothing of sluice's: it never imports edge, nor pool
// (error kinds and circuit states arrive as numbers; edge's tests check
// they agree with pool's).
package observe
