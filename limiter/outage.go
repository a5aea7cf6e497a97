package limiter

import (
	"log/slog"
	"sync/atomic"
)

// outage remembers whether Redis is failing for one kind of limit, so the
// change is logged once each way (not once per request) and can be shown.
type outage struct {
	down atomic.Bool
}

// failed records a failed Redis call; the first of an outage is logged as
// "redis unreachable: <fallback>".
func (o *outage) failed(log *slog.Logger, fallback string, err error, attrs ...any) {
	if o.down.CompareAndSwap(false, true) {
		log.Warn("redis unreachable: "+fallback, append([]any{"error", errString(err)}, attrs...)...)
	}
}

// ok records a successful Redis call; the first after an outage is logged
// as "redis reachable again: <what> back on redis".
func (o *outage) ok(log *slog.Logger, what string) {
	if o.down.CompareAndSwap(true, false) {
		log.Info("redis reachable again: " + what + " back on redis")
	}
}

func (o *outage) active() bool { return o.down.Load() }
