package lb

import "testing"

// go test ./lb -run '^$' -bench . -benchmem -cpu 1,2
func BenchmarkPick(b *testing.B) {
	for _, name := range Balancers {
		b.Run(name, func(b *testing.B) {
			ts := targets(1, 2, 3, 4, 1, 2, 3, 4)
			p, _ := New(name, ts, Options{BoundedLoad: 1.25})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var k uint64
				for pb.Next() {
					k++
					i := p.Pick(Pick{Key: k * 2654435761})
					ts[i].Begin()
					ts[i].Done()
				}
			})
		})
	}
}
