package pool

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/lb"
	"github.com/valyala/fasthttp"
)

// HealthSettings configure active checks.
type HealthSettings struct {
	Path      string
	Host      string // Host header; default the target's host:port
	Interval  time.Duration
	Jitter    float64 // fraction of Interval
	Timeout   time.Duration
	StatusLo  int
	StatusHi  int
	Healthy   int // passes in a row to become healthy
	Unhealthy int // failures in a row to become unhealthy
}

// healthState is what the checker knows about its target.
type healthState struct {
	passes    atomic.Int32
	failures  atomic.Int32
	lastCheck atomic.Int64 // unix ns
	lastError atomic.Pointer[string]
}

// startHealthCheck runs the target's active checks until the returned stop
// is called. The first check runs at once. A target starts healthy, so a
// gateway serves from its first second; Unhealthy failures in a row take
// it out, Healthy passes in a row bring it back (with slow start).
func (t *Target) startHealthCheck(hs HealthSettings) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		wait := time.Duration(0)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			t.checkOnce(hs, req, resp)
			wait = Jitter(hs.Interval, hs.Jitter)
		}
	}()
	return cancel
}

func (t *Target) checkOnce(hs HealthSettings, req *fasthttp.Request, resp *fasthttp.Response) {
	req.Reset()
	resp.Reset()
	req.SetRequestURI(hs.Path)
	req.URI().SetSchemeBytes(t.Scheme) // https for a TLS target
	req.Header.SetMethod(fasthttp.MethodGet)
	host := hs.Host
	if host == "" {
		host = t.Host
	}
	req.Header.SetHost(host)
	req.Header.Set("User-Agent", "sluice-health-check")
	req.UseHostHeader = true
	req.SetTimeout(hs.Timeout)
	err := t.Client.Do(req, resp)
	if err == nil {
		// A streamed (large) answer: we only need the status.
		_ = resp.CloseBodyStream()
	}
	t.health.lastCheck.Store(time.Now().UnixNano())
	ok := err == nil && resp.StatusCode() >= hs.StatusLo && resp.StatusCode() <= hs.StatusHi
	if ok {
		t.health.lastError.Store(nil)
		t.health.failures.Store(0)
		if t.State()&lb.Unhealthy != 0 && int(t.health.passes.Add(1)) >= hs.Healthy {
			t.health.passes.Store(0)
			if t.SetState(lb.Unhealthy, false) {
				t.StartWarmup(t.settings.SlowStart)
			}
			t.log.Info("target healthy", "upstream", t.Upstream, "target", t.URL)
		}
		return
	}
	msg := "status " + itoa(resp.StatusCode())
	if err != nil {
		msg = err.Error()
	}
	t.health.lastError.Store(&msg)
	t.health.passes.Store(0)
	if t.State()&lb.Unhealthy == 0 && int(t.health.failures.Add(1)) >= hs.Unhealthy {
		t.health.failures.Store(0)
		t.SetState(lb.Unhealthy, true)
		t.log.Warn("target unhealthy", "upstream", t.Upstream, "target", t.URL, "error", msg)
	}
}

// LastHealthError is the error of the last failed check, or "".
func (t *Target) LastHealthError() string {
	if p := t.health.lastError.Load(); p != nil {
		return *p
	}
	return ""
}

// HealthChecked reports whether the target has active checks.
func (t *Target) HealthChecked() bool { return t.settings.Health != nil }

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
