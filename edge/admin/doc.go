// Package admin serves sluice's admin listener: liveness and readiness,
// gateway info, reloads, the effective config, upstream and circuit
// breaker state (and resets), API keys and quotas, /metrics and
// /debug/pprof (admin.go, apikeys.go), behind Basic or bearer-token
// authentication (auth.go); and the web console at /ui/ (console.go: the
// embedded files in ui/ and the Prometheus query proxy), with its login
// sessions and CSRF tokens (session.go).
//
// Invariants:
//   - The admin listener is separate from the data plane and binds to
//     loopback unless configured otherwise; nothing here is on the request
//     path.
//   - Every API answer is JSON; errors are {"error": "..."}. No answer and
//     no log line carries a secret: API keys are shown raw only once, when
//     created; credentials are compared as constant-time digests.
//   - A console session cookie alone authorizes reads only: a
//     state-changing call with it needs the session's CSRF token too. Basic
//     and bearer credentials work everywhere, with or without a session.
//   - The console's page takes every value from the gateway as text
//     (textContent), never as HTML, under a CSP that allows only its own
//     files and no framing.
//
// admin never imports edge: the gateway hands it a Hooks value of plain
// functions. It imports edge/auth, edge/config and limiter for their types.
package admin
