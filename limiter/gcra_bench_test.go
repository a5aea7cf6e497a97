package limiter

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// go test ./limiter -run '^$' -bench . -benchmem -cpu 1,2
func BenchmarkTakeExistingKey(b *testing.B) {
	l := New()
	lim := Limit{Rate: 1 << 30, Per: time.Second, Burst: 1 << 30}
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("10.0.%d.%d|route", i/256, i%256))
		l.Take(keys[i], lim, 1)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i, now := 0, int64(2)
		for pb.Next() {
			l.Take(keys[i&1023], lim, now)
			i++
			now++
		}
	})
}

// BenchmarkMemoryPerKey reports the heap held per distinct key with 1M
// keys in the limiter.
func BenchmarkMemoryPerKey(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l := New()
		lim := Limit{Rate: 10, Per: time.Second, Burst: 10}
		key := make([]byte, 0, 32)
		for k := 0; k < 1_000_000; k++ {
			key = fmt.Appendf(key[:0], "10.%d.%d.%d|api", k>>16, (k>>8)&255, k&255)
			l.Take(key, lim, 1)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "bytes/key")
		runtime.KeepAlive(l)
	}
}
