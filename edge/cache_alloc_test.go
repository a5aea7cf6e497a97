//go:build !race

package edge

import (
	"strings"
	"testing"
)

// A cache hit allocates nothing: the key is built into the exchange's
// buffer, the memory store is looked up by a hash of it, and the answer's
// fields and body are written from the shared entry.
func TestCacheHitAllocatesNothing(t *testing.T) {
	h := newHandlerHarnessWith(t, 512, "/api/x?b=2&a=1", "", `, cache: { ttl: 60s }`)
	h.once(t, 200) // the miss that stores it
	if cs := string(h.ctx.Response.Header.Peek("Cache-Status")); !strings.HasSuffix(cs, "stored") {
		t.Fatalf("first request: Cache-Status %q, want stored", cs)
	}
	for range 10 {
		h.once(t, 200)
	}
	if cs := string(h.ctx.Response.Header.Peek("Cache-Status")); !strings.HasPrefix(cs, "sluice; hit") || len(h.ctx.Response.Body()) != 512 {
		t.Fatalf("Cache-Status %q, body %d bytes: want a hit", cs, len(h.ctx.Response.Body()))
	}
	if n := testing.AllocsPerRun(500, func() { h.once(t, 200) }); n != 0 {
		t.Errorf("%.1f allocations per cache hit, want 0", n)
	}
}
