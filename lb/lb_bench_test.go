package lb

import "testing"

// go test ./lb -bench . -benchmem -cpu 1,2
func BenchmarkPick(b *testing.B) {
	for _, name := range []string{"round_robin", "weighted", "random"} {
		b.Run(name, func(b *testing.B) {
			p, _ := New(name, targets(1, 2, 3, 4))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var k uint64
				for pb.Next() {
					k++
					_ = p.Pick(k)
				}
			})
		})
	}
}
