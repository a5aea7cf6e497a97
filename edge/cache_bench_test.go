package edge

import "testing"

// BenchmarkCacheHit is a request answered from the memory cache, through
// the whole handler (routing, request id, the cache step, metrics).
func BenchmarkCacheHit(b *testing.B) {
	h := newHandlerHarnessWith(b, 1024, "/api/x?b=2&a=1", "", `, cache: { ttl: 60s }`)
	h.once(b, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.once(b, 200)
	}
}

// BenchmarkCacheMissProxied is the same request on the same route with
// the cache off: what a hit saves.
func BenchmarkCacheMissProxied(b *testing.B) {
	h := newHandlerHarnessWith(b, 1024, "/api/x?b=2&a=1", "", ``)
	h.once(b, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.once(b, 200)
	}
}
