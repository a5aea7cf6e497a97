package edge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

func upstreamsConfig(upstreamYAML string, routes string) string {
	return `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
` + upstreamYAML + `
routes:
` + routes
}

// load runs `workers` clients sending GETs to path until stop is closed
// (or 20 s pass), and counts the answers by status.
func load(g *testGateway, path string, workers int, stop <-chan struct{}) (wait func() map[int]int64) {
	var mu sync.Mutex
	byStatus := map[int]int64{}
	var wg sync.WaitGroup
	limit := time.After(20 * time.Second)
	done := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-limit:
		}
		close(done)
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, err := client.Get(g.url + path)
				code := -1
				if err == nil {
					code = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				byStatus[code]++
				mu.Unlock()
			}
		}()
	}
	return func() map[int]int64 { wg.Wait(); return byStatus }
}

func TestRetryOnConnectFailureForAnyMethod(t *testing.T) {
	live := testutil.StartUpstream(t, stub.Options{Name: "live"})
	dead := testutil.DeadAddr(t)
	g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  up:
    balancer: round_robin
    outlier: { consecutive_failures: -1 }
    targets: [ { url: "http://%s" }, { url: "%s" } ]
`, dead, live.URL), catchAll))
	retried := 0
	for i := 0; i < 10; i++ {
		for _, method := range []string{"GET", "POST"} {
			r := g.do(t, request{method: method, path: "/x", body: strings.NewReader("payload")})
			if r.status != 200 || !strings.Contains(r.body, `"upstream":"live"`) {
				t.Fatalf("%s: %d %s", method, r.status, r.body)
			}
			if r.header.Get("X-Retry-Count") == "1" {
				retried++
			}
		}
	}
	if retried < 5 {
		t.Errorf("only %d of 20 requests show X-Retry-Count: 1; round robin sends half to the dead target", retried)
	}
}

func TestRetryOnStatusOnlyWhenSafe(t *testing.T) {
	bad := testutil.StartUpstream(t, stub.Options{Name: "bad", Status: 503})
	good := testutil.StartUpstream(t, stub.Options{Name: "good"})
	g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  up:
    balancer: round_robin
    outlier: { consecutive_failures: -1 }
    retry: { attempts: 2, on: [503], backoff: 1ms }
    targets: [ { url: "%s" }, { url: "%s" } ]
`, bad.URL, good.URL), catchAll))
	for i := 0; i < 6; i++ {
		if r := g.do(t, request{method: "GET", path: "/x"}); r.status != 200 {
			t.Fatalf("GET: %d %s (an idempotent request must be retried on the other target)", r.status, r.body)
		}
	}
	posts503 := 0
	for i := 0; i < 6; i++ {
		r := g.do(t, request{method: "POST", path: "/x", body: strings.NewReader("order")})
		if r.status == 503 {
			posts503++
			if r.header.Get("X-Retry-Count") != "" {
				t.Error("a POST was retried")
			}
		}
	}
	if posts503 == 0 {
		t.Error("no POST reached the failing target as its answer; POSTs must not be retried")
	}
	for i := 0; i < 6; i++ {
		r := g.do(t, request{method: "POST", path: "/x", body: strings.NewReader("order"), headers: map[string]string{"Idempotency-Key": fmt.Sprint("k", i)}})
		if r.status != 200 {
			t.Fatalf("POST with Idempotency-Key: %d (must be retried)", r.status)
		}
	}
}

// With every try failing, retries add at most the budget (20%) to the
// upstream's load, however many attempts the policy allows.
func TestRetryBudgetCapsLoadOnFailingUpstream(t *testing.T) {
	bad := testutil.StartUpstream(t, stub.Options{Name: "bad", Status: 503})
	g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  up:
    outlier: { consecutive_failures: -1 }
    retry: { attempts: 5, on: [503], backoff: 1ms, max_backoff: 2ms, budget: 0.2, min_retries_per_second: 1 }
    targets: [ { url: "%s" } ]
`, bad.URL), catchAll))
	const requests = 400
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sent.Add(1) <= requests {
				if r := g.get(t, "/x"); r.status != 503 {
					t.Errorf("status %d", r.status)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := bad.Requests()
	// 20% of 400, plus the 10-per-10s floor.
	if limit := int64(requests*1.2 + 10); got > limit {
		t.Errorf("upstream saw %d requests for %d client requests; the budget allows at most %d", got, requests, limit)
	}
	if got <= requests {
		t.Errorf("upstream saw %d requests: no retries happened at all", got)
	}
	if denied := g.UpstreamStatus()[0].RetryBudgetDenied; denied == 0 {
		t.Error("no retry was refused by the budget")
	}
	t.Logf("%d client requests -> %d upstream requests", requests, got)
}

func TestCircuitBreakerOpensAndRecovers(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  up:
    outlier: { consecutive_failures: -1 }
    retry: { attempts: 1 }
    circuit: { failures: 3, open_for: 300ms, half_open_requests: 1, successes: 1 }
    targets: [ { url: "%s" } ]
`, up.URL), catchAll))
	up.SetStatus(500)
	for i := 0; i < 3; i++ {
		if r := g.get(t, "/x"); r.status != 500 {
			t.Fatalf("try %d: %d", i, r.status)
		}
	}
	seen := up.Requests()
	r := g.get(t, "/x")
	wantFault(t, r, 503, "upstream circuit open")
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1 (open_for 300ms, rounded up)", ra)
	}
	if up.Requests() != seen {
		t.Error("a request reached the target while its circuit was open")
	}
	cb := g.CircuitBreakers()
	if len(cb) != 1 || cb[0].State != "open" || cb[0].Trips != 1 {
		t.Fatalf("breakers: %+v", cb)
	}
	// After open_for, one trial goes through; it succeeds and closes it.
	up.SetStatus(200)
	testutil.WaitFor(t, "half-open trial to succeed", func() bool { return g.get(t, "/x").status == 200 })
	if cb := g.CircuitBreakers(); cb[0].State != "closed" {
		t.Fatalf("after a good trial: %+v", cb)
	}
	// Admin reset: trip it again, reset by upstream name.
	up.SetStatus(500)
	for i := 0; i < 3; i++ {
		g.get(t, "/x")
	}
	up.SetStatus(200)
	if n := g.ResetCircuitBreakers("up"); n != 1 {
		t.Fatalf("reset %d", n)
	}
	if r := g.get(t, "/x"); r.status != 200 {
		t.Fatalf("after reset: %d", r.status)
	}
	if n := g.ResetCircuitBreakers("nope"); n != 0 {
		t.Errorf("reset of an unknown name touched %d breakers", n)
	}
}

// One of three targets dies in the middle of a steady load: retries hide
// it from clients, it is ejected, and once it is back traffic returns to it.
func TestKillOneOfThreeUnderLoad(t *testing.T) {
	a := testutil.StartUpstream(t, stub.Options{Name: "a"})
	b := testutil.StartUpstream(t, stub.Options{Name: "b"})
	c := testutil.StartUpstream(t, stub.Options{Name: "c"})
	g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  up:
    balancer: round_robin
    outlier: { consecutive_failures: 2, base_ejection: 300ms }
    retry: { attempts: 3, on: [connect, reset, 502, 503], backoff: 1ms }
    health: { path: /healthz, interval: 50ms, timeout: 200ms, unhealthy: 2, healthy: 1 }
    targets: [ { url: "%s" }, { url: "%s" }, { url: "%s" } ]
`, a.URL, b.URL, c.URL), catchAll))
	stop := make(chan struct{})
	wait := load(g, "/x", 6, stop)
	testutil.WaitFor(t, "load on every target", func() bool { return a.Requests() > 20 && b.Requests() > 20 && c.Requests() > 20 })

	c.Stop()
	testutil.WaitFor(t, "the dead target to be taken out", func() bool {
		for _, ts := range g.UpstreamStatus()[0].Targets {
			if ts.URL == c.URL {
				return ts.State != "healthy"
			}
		}
		return false
	})
	time.Sleep(200 * time.Millisecond)

	back := testutil.StartUpstreamAt(t, c.Addr, stub.Options{Name: "c-again"})
	testutil.WaitFor(t, "traffic to return to the restarted target", func() bool { return back.Requests() > 20 })
	close(stop)
	byStatus := wait()
	total := int64(0)
	for _, n := range byStatus {
		total += n
	}
	if byStatus[200] != total {
		t.Errorf("answers by status %v: every request should have succeeded (retried on another target)", byStatus)
	}
	t.Logf("%d requests, statuses %v", total, byStatus)
}

func TestActiveHealthAndPanicMode(t *testing.T) {
	a := testutil.StartUpstream(t, stub.Options{Name: "a"})
	b := testutil.StartUpstream(t, stub.Options{Name: "b"})
	cfg := func(panicMode bool) string {
		return upstreamsConfig(fmt.Sprintf(`
  up:
    balancer: round_robin
    panic_mode: %v
    health: { path: /healthz, interval: 30ms, timeout: 200ms, unhealthy: 1, healthy: 1 }
    targets: [ { url: "%s" }, { url: "%s" } ]
`, panicMode, a.URL, b.URL), catchAll)
	}
	g := startGateway(t, cfg(true))
	a.SetStatus(503) // fails /healthz; its default answer is 503 too
	testutil.WaitFor(t, "a to be marked unhealthy", func() bool { return g.UpstreamStatus()[0].Targets[0].State == "unhealthy" })
	for i := 0; i < 10; i++ {
		if r := g.get(t, "/x"); r.status != 200 || !strings.Contains(r.body, `"upstream":"b"`) {
			t.Fatalf("with a unhealthy, got %d %s", r.status, r.body)
		}
	}
	// Everything unhealthy: panic mode routes anyway.
	b.SetStatus(503)
	testutil.WaitFor(t, "b to be marked unhealthy", func() bool { return g.UpstreamStatus()[0].Usable == 0 })
	if r := g.get(t, "/x"); r.status != 503 || strings.Contains(r.body, "no upstream target") {
		t.Fatalf("panic mode: want the targets' own 503, got %d %s", r.status, r.body)
	}
	// /services/health reports it.
	r := g.get(t, "/services/health")
	var sh struct {
		Status    string
		Upstreams []UpstreamStatus
	}
	if r.status != 503 || json.Unmarshal([]byte(r.body), &sh) != nil || sh.Status != "degraded" || sh.Upstreams[0].Targets[1].State != "unhealthy" {
		t.Fatalf("/services/health: %d %s", r.status, r.body)
	}
	// Without panic mode: 503 from the gateway.
	if err := g.Apply(mustParse(t, cfg(false))); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "both unhealthy in the new snapshot", func() bool { return g.UpstreamStatus()[0].Usable == 0 })
	wantFault(t, g.get(t, "/x"), 503, "no upstream target available")
	// Recovery.
	a.SetStatus(200)
	testutil.WaitFor(t, "a healthy again", func() bool { return g.get(t, "/x").status == 200 })
}

func TestServicesHealthCanBeTurnedOff(t *testing.T) {
	a := testutil.StartUpstream(t, stub.Options{Name: "a"})
	on := startGateway(t, oneUpstream(a.URL, "  - { name: api, match: { prefix: /api/ }, upstream: up }\n"))
	if r := on.get(t, "/services/health"); r.status != 200 || !strings.Contains(r.body, `"status":"ok"`) {
		t.Fatalf("default /services/health: %d %s", r.status, r.body)
	}
	off := startGateway(t, strings.Replace(oneUpstream(a.URL, "  - { name: api, match: { prefix: /api/ }, upstream: up }\n"), "admin:", "server: { services_health: false }\nadmin:", 1))
	wantFault(t, off.get(t, "/services/health"), 404, "no route")
}

// A slow target (real latency) gets far less than its share from the
// latency- and load-aware balancers.
func TestSlowTargetAvoided(t *testing.T) {
	for _, balancer := range []string{"p2c_ewma", "least_conn"} {
		t.Run(balancer, func(t *testing.T) {
			slow := testutil.StartUpstream(t, stub.Options{Name: "slow", Latency: 40 * time.Millisecond})
			f1 := testutil.StartUpstream(t, stub.Options{Name: "f1"})
			f2 := testutil.StartUpstream(t, stub.Options{Name: "f2"})
			g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  up:
    balancer: %s
    targets: [ { url: "%s" }, { url: "%s" }, { url: "%s" } ]
`, balancer, slow.URL, f1.URL, f2.URL), catchAll))
			stop := make(chan struct{})
			wait := load(g, "/x", 6, stop)
			testutil.WaitFor(t, "600 requests", func() bool { return slow.Requests()+f1.Requests()+f2.Requests() >= 600 })
			close(stop)
			wait()
			total := slow.Requests() + f1.Requests() + f2.Requests()
			share := float64(slow.Requests()) / float64(total)
			t.Logf("slow target got %d of %d (%.1f%%)", slow.Requests(), total, share*100)
			if share > 0.15 {
				t.Errorf("slow target got %.1f%% of requests; a fair share is 33%%", share*100)
			}
		})
	}
}

func TestHashBalancersKeepKeysTogether(t *testing.T) {
	var targets []string
	for i := 0; i < 4; i++ {
		u := testutil.StartUpstream(t, stub.Options{Name: fmt.Sprint("t", i)})
		targets = append(targets, fmt.Sprintf(`{ url: "%s" }`, u.URL))
	}
	g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  byuser:
    balancer: consistent_hash
    hash_key: header:X-User
    targets: [ %s ]
  byip:
    balancer: ip_hash
    targets: [ %s ]
`, strings.Join(targets, ", "), strings.Join(targets, ", ")), `
  - { name: user, match: { prefix: /u/ }, upstream: byuser }
  - { name: ip, match: { prefix: /i/ }, upstream: byip }
`))
	owners := map[string]bool{}
	for u := 0; u < 20; u++ {
		first := ""
		for i := 0; i < 5; i++ {
			r := g.do(t, request{path: "/u/x", headers: map[string]string{"X-User": fmt.Sprint("user-", u)}})
			var e struct{ Upstream string }
			_ = json.Unmarshal([]byte(r.body), &e)
			if first == "" {
				first = e.Upstream
			} else if e.Upstream != first {
				t.Fatalf("user-%d went to %s then %s", u, first, e.Upstream)
			}
		}
		owners[first] = true
	}
	if len(owners) < 2 {
		t.Errorf("20 users all hashed to %v", owners)
	}
	first := g.get(t, "/i/x").body
	for i := 0; i < 10; i++ {
		if b := g.get(t, "/i/x").body; b != first {
			t.Fatalf("ip_hash moved one client: %s then %s", first, b)
		}
	}
}

func TestRetryDoesNotResendAConsumedStream(t *testing.T) {
	bad := testutil.StartUpstream(t, stub.Options{Name: "bad", Status: 503})
	good := testutil.StartUpstream(t, stub.Options{Name: "good"})
	g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  up:
    balancer: round_robin
    outlier: { consecutive_failures: -1 }
    retry: { attempts: 2, on: [503], backoff: 1ms }
    targets: [ { url: "%s" }, { url: "%s" } ]
`, bad.URL, good.URL), catchAll)+"server: { buffer_body_bytes: 1KiB }\n")
	// PUT is idempotent, but a streamed body has been consumed by the
	// first try: it can't be sent again, so a 503 is the answer.
	big := strings.Repeat("x", 64<<10)
	saw503 := false
	for i := 0; i < 4; i++ {
		r := g.do(t, request{method: http.MethodPut, path: "/x", body: strings.NewReader(big)})
		if r.status == 503 {
			saw503 = true
		} else if r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
	}
	if !saw503 {
		t.Error("a streamed body was sent twice")
	}
}

// per_try_timeout cuts a stuck try short so the retry still fits inside
// the route's timeout.
func TestPerTryTimeoutLeavesRoomToRetry(t *testing.T) {
	stuck := testutil.StartUpstream(t, stub.Options{Name: "stuck", Latency: 1500 * time.Millisecond})
	fast := testutil.StartUpstream(t, stub.Options{Name: "fast"})
	g := startGateway(t, upstreamsConfig(fmt.Sprintf(`
  up:
    balancer: round_robin
    outlier: { consecutive_failures: -1 }
    retry: { attempts: 2, on: [timeout], per_try_timeout: 100ms, backoff: 1ms }
    targets: [ { url: "%s" }, { url: "%s" } ]
`, stuck.URL, fast.URL), "  - { name: all, match: { prefix: / }, upstream: up, timeout: 1s }\n"))
	retried := 0
	for i := 0; i < 4; i++ {
		r := g.get(t, "/x")
		if r.status != 200 || !strings.Contains(r.body, `"upstream":"fast"`) {
			t.Fatalf("try %d: %d %s (the stuck target's try must time out and be retried)", i, r.status, r.body)
		}
		if r.header.Get("X-Retry-Count") == "1" {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no request was retried: round robin must have sent some to the stuck target")
	}
	// A try that timed out may still be on its way into the stuck stub (a
	// loaded machine schedules it late): wait for its count, which must
	// settle at exactly the number of retries.
	deadline := time.Now().Add(5 * time.Second)
	for int64(retried) != stuck.Requests() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if int64(retried) != stuck.Requests() {
		t.Errorf("%d requests retried, %d tries reached the stuck target: every such try must be retried", retried, stuck.Requests())
	}
}
