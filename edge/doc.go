// Package edge is sluice's request path: the fasthttp server, the
// per-config Snapshot (routes with their compiled steps, upstream pools),
// reloads, and what the admin listener reads.
//
// A request, top to bottom (README "Architecture" has the same list):
//
//	gateway.go        ServeHTTP: takes an exchange (exchange.go), runs serve, records
//	requestid.go      keep the client's X-Request-Id or make one
//	step_ipfilter.go  the top-level ip_filter (ipset/: the prefix sets)
//	checks.go         hold the head to RFC 9110/9112 (version, method, folding, framing, Host)
//	paths.go          split the target once; normalise the path (pathnorm)
//	builtin.go        /services/health and data-plane metrics
//	redirect.go       server.redirect_https: plain requests get a 308 to https
//	router.go         pick the route: host, exact path, regex, longest prefix,
//	                  conditions (match.go), method (a CORS preflight by the
//	                  method it asks about)
//	step_ipfilter.go  the route's steps (steps.go), built with the snapshot:
//	step_security.go    ip filter, security headers, CORS, auth, rate limit,
//	step_cors.go        quota, request decompression, compression, proxy
//	step_auth.go        (step_mtls.go: auth: mtls)
//	step_ratelimit.go
//	step_quota.go
//	step_decompress.go decode a gzip, br or zstd request body within the body limit
//	step_compress.go  (accept_encoding.go: the Accept-Encoding parser)
//	step_proxy.go     forwarding headers (headers.go), rewrite, body and response limits
//	websocket.go      or, for a WebSocket upgrade, dial the target and hand
//	tunnel.go         both connections to a tunnel (relayed outside the pool)
//	forward.go        pick a target, send, retry within the budget
//	observability.go  metrics, access log line, span end (spans.go)
//
// Off the request path: snapshot.go and upstream.go compile a config,
// reload.go swaps snapshots, discovery.go follows Consul, resources.go
// opens what outlives a config (Redis, key store, quotas, JWKS, access
// log), status.go reports upstream state, tls_listen.go terminates TLS
// (listen_tls: certificates by SNI behind an atomic pointer, swapped on
// reload; client certificates; shared session ticket keys), acme.go gets
// certificates for acme_hosts through certmagic (chosen over
// x/crypto/acme for background renewal, OCSP stapling and a storage with
// cluster locks; acme.go says more), acme_redis.go is certmagic's storage
// in Redis for several instances (one orders, all serve), acme_log.go
// passes certmagic's log to slog. An ACME challenge for a managed name is
// the only thing sluice answers on the plain listener before the HTTPS
// redirect, and no client-chosen name ever reaches certmagic (no
// on-demand issuance, no challenge lookup for a name not in acme_hosts).
// Shutdown returns after certmagic's work has stopped and let go of its
// storage locks (or at the shutdown deadline).
//
// Invariants:
//   - A request loads the current *Snapshot once, from an atomic pointer,
//     and uses only that snapshot. Nothing on the request path takes a lock
//     that a reload holds.
//   - A reload builds and validates a whole new snapshot off the request
//     path; a bad config is refused and the old snapshot keeps serving.
//   - Every choice the config makes (auth mode, limiter scope, key parts,
//     hash kind) is made when the snapshot is built: steps hold their
//     choice as a type, never a string compared per request.
//   - Per-request state lives in the exchange, passed to every step:
//     nothing travels through ctx.UserValue, and no header sluice set is
//     read back.
//   - Every failure answers through writeFault: a status, a short JSON body
//     and the request id.
//   - Everything read from a RequestCtx is valid only until the handler
//     returns; anything kept longer is copied.
//   - Steady-state proxying allocates nothing (alloc_test.go).
//
// edge may import pool, lb and limiter; they never import edge. The
// sub-packages (config, auth, observe, admin, pathnorm, ipset, submatch)
// never import edge.
package edge
