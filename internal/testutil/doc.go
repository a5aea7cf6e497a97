// Package testutil starts the real servers sluice's tests talk to, on
// 127.0.0.1 with ports the kernel picks, and stops them with t.Cleanup.
// One file per concern:
//
//   - listen.go: free ports (Listen, DeadAddr, ListenRetry)
//   - upstream.go: bench/stub upstreams (StartUpstream, StartUpstreamAt)
//   - build.go: building the binaries once per test process (Binary,
//     ModuleRoot)
//   - sluice.go: the sluice binary on a config (StartSluice)
//   - process.go: any other built binary (StartProcess)
//   - redis.go: real redis-server: standalone, Cluster, Sentinel, and a
//     rueidis client (StartRedis, StartRedisCluster, StartRedisSentinel,
//     RedisClient)
//   - nginx.go: a real nginx around an http-context config (StartNginx)
//   - notify.go: systemd's end of NOTIFY_SOCKET (ListenNotify)
//   - http.go: a GET, a raw TCP exchange (Get, RawExchange, Indent)
//   - wait.go: polling for what timers and other processes change (WaitFor)
//   - browser.go: headless Chromium under chromedp (Chromium, StartBrowser)
//   - prometheus.go: a real Prometheus scraping a sluice (StartPrometheus)
//   - ocsp.go: an OCSP responder for pebble's certificates, signing with
//     its intermediate (StartOCSPResponder)
//
// Invariants: everything it starts listens on loopback only; a server
// that does not come up fails the test after a bounded wait (seconds, not
// the test timeout); and everything is stopped when the test ends, even
// when it fails.
//
// testutil imports only bench/stub of sluice's. It must never import the
// packages whose tests use it (pool, lb, limiter, edge and its
// sub-packages, cmd/sluice): that would be an import cycle in their tests.
// internal/testutil/fakeconsul builds on it.
package testutil
