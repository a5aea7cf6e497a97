package admin

import (
	"sync"

	"github.com/valyala/fasthttp"
)

// WriteGate refuses admin writes to state another process may write
// too (API keys, quota resets: in a file, kept in memory and written
// whole) while an upgrade runs. Both processes read the files at start
// and write them from memory, so a write taken by one would be lost when
// the other writes next. With the gate shut in the old process from the
// start of an upgrade until it fails or hands over, and in the new one
// until it is the main process, no process writes while another may:
// the new one's start-time read is current, and nothing needs merging.
// A refused write is answered 503 with a reason, so the caller retries.
type WriteGate struct {
	mu     sync.RWMutex // held shared through each write; Shut waits for them
	reason string       // non-empty: shut
}

// Shut refuses writes from now on, with reason, once the writes under
// way have finished.
func (g *WriteGate) Shut(reason string) {
	g.mu.Lock()
	g.reason = reason
	g.mu.Unlock()
}

// Open lets writes through again.
func (g *WriteGate) Open() { g.Shut("") }

// wrap runs h unless the gate is shut (a nil gate is always open).
func (g *WriteGate) wrap(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	if g == nil {
		return h
	}
	return func(ctx *fasthttp.RequestCtx) {
		g.mu.RLock()
		defer g.mu.RUnlock()
		if g.reason != "" {
			ctx.Response.Header.Set("Retry-After", "5")
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"error": g.reason})
			return
		}
		h(ctx)
	}
}
