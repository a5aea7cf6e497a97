package edge

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/sluicegw/sluice/lb"
	"github.com/sluicegw/sluice/pool"
)

// forward sends the request to the route's upstream, retrying as its
// policy allows, and leaves the answer in ctx.Response. It returns the
// fault to answer with instead (nil when ctx.Response holds the answer,
// which may be an upstream 5xx after the last try). The exchange records
// the upstream, the target, the time spent upstream and the retries.
//
// A retry happens only when all of these hold: the failure is one the
// policy retries (retry.on), a try is left (retry.attempts) and time is
// left (the route timeout bounds all tries), the request can be sent again
// (its body is in memory, or it never left), repeating it is safe (an
// idempotent method or an Idempotency-Key, or it never reached the
// target), and the upstream's retry budget has room. Each retry goes to a
// target not tried yet when there is one.
func forward(x *exchange, rt *route, lim *bodyLimiter, key uint64) *fault {
	up := x.up // the route's, or its split's choice
	req, resp := &x.ctx.Request, &x.ctx.Response
	// From here, not from the request's arrival: the route timeout bounds
	// the upstream exchange (config: routes[].timeout), not auth or limits.
	// Two clock reads per try, shared by everything that needs the time:
	// t0 (the deadline, the budget, the first try's start) and t1 (the
	// try's latency, its report). time.Now costs up to 60 ns on a VM.
	t0 := time.Now()
	deadline := t0.Add(rt.timeout)
	up.pool.Budget.RequestAt(lb.MonoAt(t0))
	// Decided before the first try: sending a streamed body consumes it,
	// and fasthttp then drops it from the request.
	replayable := !req.IsBodyStream()
	var exclude uint64
	var f *fault
	for attempt := 1; ; attempt++ {
		target, idx, err := up.pool.Pick(key, exclude)
		if err != nil && exclude != 0 {
			// Every target has been tried: the retry may go to one again.
			target, idx, err = up.pool.Pick(key, 0)
		}
		if err != nil {
			if attempt > 1 {
				return f // keep the last try's answer
			}
			if errors.Is(err, pool.ErrCircuitOpen) {
				return faultCircuitOpen
			}
			return faultNoTarget
		}
		switch {
		case rt.hostMode == hostLiteral:
			req.Header.SetHostBytes(rt.hostValue)
		case rt.hostMode == hostTarget, len(req.Header.Host()) == 0:
			// An HTTP/1.0 request may come without Host; the upstream
			// gets the target's (RFC 9112 3.2: an HTTP/1.1 request needs one).
			req.Header.SetHost(target.Host)
		}
		req.UseHostHeader = true
		// The target's scheme, not the client's: fasthttp refuses to send
		// an https URI (a client on a TLS listener) over a plain HostClient
		// and an http one over TLS. The URI is parsed once per request
		// either way (HostClient.Do does it); this only overwrites bytes.
		req.URI().SetSchemeBytes(target.Scheme)
		if attempt > 1 {
			t0 = time.Now() // after the backoff
		}
		tryTimeout := deadline.Sub(t0)
		if up.retry.perTry > 0 && up.retry.perTry < tryTimeout {
			tryTimeout = up.retry.perTry
		}
		if tryTimeout <= 0 {
			up.pool.Report(target, pool.Neutral, 0)
			return faultTimeout
		}
		req.SetTimeout(tryTimeout)

		target.Begin()
		err = target.Client.Do(req, resp)
		target.Done()
		t1 := time.Now()
		rtt, at := t1.Sub(t0), lb.MonoAt(t1)
		up.metrics.Try(rtt)
		x.upstream, x.target = up.name, target.URL
		x.upstreamTime += rtt

		retryable, neverSent := false, false
		switch {
		case err != nil && lim != nil && (lim.tooLarge || lim.clientErr != nil):
			// The client's fault: tell nobody about the target.
			up.pool.ReportAt(target, pool.Neutral, rtt, at)
			if lim.tooLarge {
				return faultBodyTooLarge
			}
			return faultClientBody
		case err != nil:
			kind := pool.Classify(err)
			up.metrics.Error(uint8(kind))
			f = faultFor(kind, err)
			outcome := pool.Failure
			if kind == pool.KindBusy {
				outcome = pool.Neutral // our connection cap, not the target's failure
			}
			up.pool.ReportAt(target, outcome, rtt, at)
			retryable, neverSent = up.retry.onKind[kind], kind.NeverSent()
			x.snap.log.Warn("upstream request failed", "route", rt.name, "target", target.URL,
				"kind", kind.String(), "error", err.Error(), "attempt", attempt, "request_id", string(x.id))
		default:
			f = nil
			code := resp.StatusCode()
			if code >= 500 {
				up.metrics.Status5xx()
				up.pool.ReportAt(target, pool.Failure, rtt, at)
				retryable = code <= 599 && up.retry.onStatus[code-500]
			} else {
				up.pool.ReportAt(target, pool.Success, rtt, at)
			}
		}

		if !retryable || attempt >= up.retry.attempts {
			return f
		}
		if !neverSent && (!replayable || !pool.Idempotent(req)) {
			return f
		}
		if !up.pool.Budget.TryRetry() {
			up.logBudgetExhausted(x.snap.log)
			return f
		}
		pause := up.retry.backoffFor(attempt)
		if time.Until(deadline) <= pause {
			return f
		}
		time.Sleep(pause)
		if idx < 64 {
			exclude |= 1 << uint(idx)
		}
		x.retries++
		up.metrics.Retry()
	}
}

func (up *upstream) logBudgetExhausted(log *slog.Logger) {
	now := time.Now().UnixNano()
	last := up.budgetLogAt.Load()
	if now-last < int64(time.Second) || !up.budgetLogAt.CompareAndSwap(last, now) {
		return // at most one line a second per upstream
	}
	log.Warn("retry budget exhausted: not retrying", "upstream", up.name, "denied_total", up.pool.Budget.Denied())
}

// smallInt formats 0..99 without allocating.
func smallInt(n int) []byte {
	return []byte(smallInts[min(n, 99)])
}

var smallInts = func() (out [100]string) {
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}()
