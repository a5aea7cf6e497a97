package edge

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// mirror copies a route's requests to a shadow upstream (routes[].mirror),
// fire-and-forget: the copy is sent from its own goroutine, its answer is
// dropped, and the client's request never waits for it. Copies are bounded
// (max_concurrent in flight, then dropped, never queued) and only of
// buffered bodies up to max_body_bytes.
type mirror struct {
	up        *upstream
	threshold uint64 // a request is copied when a random uint64 is below it
	all       bool   // sample 1
	maxBody   int
	max       int64
	timeout   time.Duration

	inflight atomic.Int64
	// Counters (sluice_mirror_requests_total, read at scrape time): copies
	// sent (finished), dropped for concurrency, skipped for their body.
	sent, dropped, skipped atomic.Int64
}

func (s *Snapshot) compileMirror(m *config.Mirror) *mirror {
	return &mirror{
		up:        s.upstreams[m.Upstream],
		threshold: uint64(*m.Sample * math.MaxUint64),
		all:       *m.Sample >= 1,
		maxBody:   int(m.MaxBodyBytes),
		max:       int64(m.MaxConcurrent),
		timeout:   m.Timeout.D(),
	}
}

// copy sends a copy of req, as it is about to go upstream (rewritten, with
// the forwarding headers), when it is sampled and fits. Called before the
// real request is sent, so its body is still there.
func (m *mirror) copy(req *fasthttp.Request) {
	if !m.all && rand.Uint64() >= m.threshold {
		return
	}
	if req.IsBodyStream() || len(req.Body()) > m.maxBody {
		m.skipped.Add(1)
		return
	}
	if m.inflight.Add(1) > m.max {
		m.inflight.Add(-1)
		m.dropped.Add(1)
		return
	}
	c := fasthttp.AcquireRequest()
	req.CopyTo(c)
	go m.send(c)
}

func (m *mirror) send(req *fasthttp.Request) {
	defer func() {
		fasthttp.ReleaseRequest(req)
		m.sent.Add(1)
		m.inflight.Add(-1)
	}()
	target, _, err := m.up.pool.Pick(0, 0)
	if err != nil {
		return
	}
	if len(req.Header.Host()) == 0 {
		req.Header.SetHost(target.Host)
	}
	req.UseHostHeader = true
	req.SetTimeout(m.timeout)
	resp := fasthttp.AcquireResponse()
	t0 := time.Now()
	target.Begin()
	err = target.Client.Do(req, resp)
	target.Done()
	outcome := pool.Success
	if err != nil {
		outcome = pool.Failure
		m.up.metrics.Error(uint8(pool.Classify(err)))
	}
	m.up.pool.Report(target, outcome, time.Since(t0))
	fasthttp.ReleaseResponse(resp) // closes a streamed answer: its connection is not reused
}
