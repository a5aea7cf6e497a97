package pool

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/lb"
	"github.com/valyala/fasthttp"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestBreakerStateMachine(t *testing.T) {
	target := &lb.Target{}
	var mu sync.Mutex // notify runs on timer goroutines too
	var changes []string
	b := newBreaker(CircuitSettings{Failures: 3, OpenFor: 50 * time.Millisecond, HalfOpenRequests: 2, Successes: 2}, target,
		func(from, to CircuitState) {
			mu.Lock()
			changes = append(changes, from.String()+">"+to.String())
			mu.Unlock()
		})

	// closed: two failures, a success resets the run, three in a row trip.
	b.Record(false)
	b.Record(false)
	b.Record(true)
	b.Record(false)
	b.Record(false)
	if b.State() != CircuitClosed {
		t.Fatalf("opened before 3 consecutive failures")
	}
	b.Record(false)
	if b.State() != CircuitOpen || target.State()&lb.CircuitOpen == 0 || b.Allow() {
		t.Fatalf("after 3 failures: state %s, bit %v, allow %v", b.State(), target.State(), b.Allow())
	}
	if b.OpenUntil().IsZero() || b.Trips() != 1 {
		t.Errorf("open until %v, trips %d", b.OpenUntil(), b.Trips())
	}

	// open -> half-open after open_for; two trials admitted, the third not.
	testutil.WaitFor(t, "half-open", func() bool { return b.State() == CircuitHalfOpen })
	if target.State()&lb.CircuitOpen != 0 {
		t.Error("half-open target still blocked for balancers")
	}
	first, second, third := b.Allow(), b.Allow(), b.Allow()
	if !first || !second || third {
		t.Fatal("half-open must admit exactly half_open_requests trials")
	}
	// A failed trial re-opens.
	b.Record(false)
	if b.State() != CircuitOpen {
		t.Fatalf("failed trial: state %s", b.State())
	}
	testutil.WaitFor(t, "half-open again", func() bool { return b.State() == CircuitHalfOpen })
	b.Allow()
	b.Allow()
	b.Record(true)
	if b.State() != CircuitHalfOpen {
		t.Fatal("closed after one success; want two")
	}
	b.Record(true)
	if b.State() != CircuitClosed {
		t.Fatalf("two successful trials: state %s", b.State())
	}
	mu.Lock()
	got := fmt.Sprint(changes)
	mu.Unlock()
	if want := "[closed>open open>half_open half_open>open open>half_open half_open>closed]"; got != want {
		t.Errorf("transitions %s, want %s", got, want)
	}

	// Reset from open closes at once, and the pending timer doesn't undo it.
	for i := 0; i < 3; i++ {
		b.Record(false)
	}
	b.Reset()
	if b.State() != CircuitClosed || target.State() != 0 {
		t.Fatal("reset did not close")
	}
	time.Sleep(80 * time.Millisecond)
	if b.State() != CircuitClosed {
		t.Fatalf("the old open timer moved a reset breaker to %s", b.State())
	}
}

func TestBreakerFailureRatio(t *testing.T) {
	b := newBreaker(CircuitSettings{Failures: 1000, FailureRatio: 0.5, Window: time.Second, MinRequests: 10,
		OpenFor: time.Minute, HalfOpenRequests: 1, Successes: 1}, &lb.Target{}, nil)
	// Alternating: never 1000 in a row, but half fail.
	for i := 0; i < 8; i++ {
		b.Record(i%2 == 0)
	}
	if b.State() != CircuitClosed {
		t.Fatal("opened before min_requests")
	}
	b.Record(true)
	b.Record(false)
	if b.State() != CircuitOpen {
		t.Fatalf("5 of 10 failed with ratio 0.5: state %s", b.State())
	}
}

func TestRetryBudget(t *testing.T) {
	b := newRetryBudget(0.2, 1) // floor: 10 per 10 s
	allowed := 0
	for i := 0; i < 500; i++ {
		b.Request()
		if b.TryRetry() {
			allowed++
		}
	}
	if allowed != 100 {
		t.Errorf("500 requests at budget 0.2 allowed %d retries, want 100", allowed)
	}
	if b.Denied() != 400 {
		t.Errorf("denied %d", b.Denied())
	}
	quietB := newRetryBudget(0.2, 3)
	n := 0
	for quietB.TryRetry() {
		n++
	}
	if n != 30 {
		t.Errorf("with no requests the floor allows %d retries per 10 s, want 30", n)
	}
}

func buildPool(t *testing.T, urls []string, s Settings, balancer string, panicMode bool) *Pool {
	t.Helper()
	reg := NewRegistry(quiet())
	spec := PoolSpec{Name: "p", Balancer: balancer, Settings: s, PanicMode: panicMode, RetryBudget: 0.2, MinRetries: 3}
	for _, u := range urls {
		spec.Targets = append(spec.Targets, TargetSpec{URL: u, Weight: 1})
	}
	p, err := Build(reg, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Retain(nil) })
	return p
}

func fourURLs() []string {
	return []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3", "http://127.0.0.1:4"}
}

func TestOutlierEjectionGrowsAndIsCapped(t *testing.T) {
	s := Settings{Outlier: OutlierSettings{ConsecutiveFailures: 3, BaseEjection: 60 * time.Millisecond, MaxEjection: time.Minute, MaxEjectionPercent: 50}}
	p := buildPool(t, fourURLs(), s, "round_robin", true)
	fail := func(t *Target, n int) {
		for i := 0; i < n; i++ {
			p.Report(t, Failure, time.Millisecond)
		}
	}
	a, b, c := p.Targets[0], p.Targets[1], p.Targets[2]
	fail(a, 2)
	p.Report(a, Success, time.Millisecond) // a success breaks the run
	fail(a, 2)
	if a.State()&lb.Ejected != 0 {
		t.Fatal("ejected without 3 failures in a row")
	}
	fail(a, 1)
	if a.State()&lb.Ejected == 0 || a.EjectedUntil().IsZero() {
		t.Fatal("3 failures in a row did not eject")
	}
	fail(b, 3)
	fail(c, 3)
	if b.State()&lb.Ejected == 0 || c.State()&lb.Ejected != 0 {
		t.Fatalf("max_ejection_percent 50 of 4 targets: b %v c %v (want b ejected, c kept)", b.State(), c.State())
	}
	// The first ejection ends after base_ejection; the second lasts twice as long.
	testutil.WaitFor(t, "first ejection to end", func() bool { return a.State()&lb.Ejected == 0 })
	first := time.Now()
	fail(a, 3)
	second := a.EjectedUntil().Sub(first)
	if second < 100*time.Millisecond {
		t.Errorf("second ejection lasts %v, want about 2 x 60ms", second)
	}
}

func TestPickPanicModeAndOpenCircuits(t *testing.T) {
	s := Settings{Circuit: &CircuitSettings{Failures: 1, OpenFor: time.Minute, HalfOpenRequests: 1, Successes: 1}}
	p := buildPool(t, fourURLs()[:2], s, "round_robin", true)
	for _, tg := range p.Targets {
		tg.SetState(lb.Unhealthy, true)
	}
	if tg, _, err := p.Pick(0, 0); err != nil || tg == nil {
		t.Fatalf("panic mode: all unhealthy must still route: %v", err)
	}
	strict := buildPool(t, fourURLs()[:2], s, "round_robin", false)
	for _, tg := range strict.Targets {
		tg.SetState(lb.Unhealthy, true)
	}
	if _, _, err := strict.Pick(0, 0); !errors.Is(err, ErrNoTarget) {
		t.Fatalf("panic mode off, all unhealthy: %v", err)
	}

	// Open circuits are never routed to, panic or not: 503 at once.
	for _, tg := range p.Targets {
		tg.breaker.Record(false)
	}
	if _, _, err := p.Pick(0, 0); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("all circuits open: %v", err)
	}
	if ra := p.RetryAfter(); ra < 50*time.Second || ra > time.Minute {
		t.Errorf("Retry-After %v, want about open_for", ra)
	}
}

func TestPickExcludesFullHalfOpenTargets(t *testing.T) {
	s := Settings{Circuit: &CircuitSettings{Failures: 1, OpenFor: 20 * time.Millisecond, HalfOpenRequests: 1, Successes: 1}}
	p := buildPool(t, fourURLs()[:2], s, "round_robin", true)
	a, b := p.Targets[0], p.Targets[1]
	a.breaker.Record(false)
	testutil.WaitFor(t, "half-open", func() bool { return a.breaker.State() == CircuitHalfOpen })
	// a admits one trial; after that every pick must go to b.
	sawA := 0
	for i := 0; i < 20; i++ {
		tg, _, err := p.Pick(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if tg == a {
			sawA++
		}
	}
	if sawA != 1 || b.breaker.State() != CircuitClosed {
		t.Fatalf("half-open target got %d picks, want exactly 1 trial", sawA)
	}
	// A neutral outcome (client hung up) gives the trial back.
	p.Report(a, Neutral, 0)
	if tg, _, _ := p.Pick(0, 1<<1); tg != a {
		t.Fatal("trial not released by a neutral outcome")
	}
}

// Active checks against a real server whose health flips.
func TestActiveHealthChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := stub.New(stub.Options{})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	hs := &HealthSettings{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: time.Second, StatusLo: 200, StatusHi: 399, Healthy: 2, Unhealthy: 3}
	p := buildPool(t, []string{"http://" + ln.Addr().String()}, Settings{Health: hs, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxConns: 4, BufferBodyBytes: 1 << 20, HeaderBufferBytes: 8192}, "round_robin", false)
	tg := p.Targets[0]
	testutil.WaitFor(t, "a first check", func() bool { return srv.Requests() >= 1 })
	if tg.State() != 0 {
		t.Fatal("healthy target marked unhealthy")
	}
	srv.SetStatus(503)
	testutil.WaitFor(t, "unhealthy", func() bool { return tg.State()&lb.Unhealthy != 0 })
	if tg.LastHealthError() != "status 503" {
		t.Errorf("last error %q", tg.LastHealthError())
	}
	srv.SetStatus(200)
	testutil.WaitFor(t, "healthy again", func() bool { return tg.State() == 0 })

	// Stopping the target (connection refused) is unhealthy too.
	_ = srv.Close()
	testutil.WaitFor(t, "unhealthy after the server stopped", func() bool { return tg.State()&lb.Unhealthy != 0 })
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want ErrKind
	}{
		{fasthttp.ErrNoFreeConns, KindBusy},
		{fasthttp.ErrDialTimeout, KindConnect},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, KindConnect},
		{fasthttp.ErrTimeout, KindTimeout},
		{ErrUpstreamClosed, KindReset},
		{io.ErrUnexpectedEOF, KindReset},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, KindReset},
		{&fasthttp.ErrSmallBuffer{}, KindProtocol},
		{ErrSwitchingProtocols, KindProtocol},
		{ErrInvalidChunked, KindProtocol},
		{errNoCleanConn, KindBusy}, // never sent, and not the target's failure
		{errors.New("error when reading response headers: invalid response status code"), KindProtocol},
		{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, KindTLS},
		{x509.HostnameError{Host: "a"}, KindTLS},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, KindTLS},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, KindTLS},
		{fasthttp.ErrTLSHandshakeTimeout, KindConnect},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %s, want %s", c.err, got, c.want)
		}
	}
	if !KindConnect.NeverSent() || !KindBusy.NeverSent() || !KindTLS.NeverSent() || KindTimeout.NeverSent() {
		t.Error("NeverSent")
	}
}
