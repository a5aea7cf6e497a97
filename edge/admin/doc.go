// Package admin serves sluice's admin listener: liveness and readiness,
// gateway info, reloads, the effective config, upstream and circuit
// breaker state (and resets), API keys and quotas, /metrics and
// /debug/pprof (admin.go, apikeys.go), behind Basic or bearer-token
// authentication (auth.go).
//
// Invariants:
//   - The admin listener is separate from the data plane and binds to
//     loopback unless configured otherwise; nothing here is on the request
//     path.
//   - Every answer is JSON; errors are {"error": "..."}. No answer and no
//     log line carries a secret: API keys are shown raw only once, when
//     created; credentials are compared as constant-time digests.
//
// admin never imports edge: the gateway hands it a Hooks value of plain
// functions. It imports edge/auth, edge/config and limiter for their types.
package admin
