// Package cachecmp compares the two memory-cache libraries sluice could use
// for its response cache (edge/cache/doc.go has the numbers and the choice).
// A module of its own, so ristretto is not a dependency of sluice.
package cachecmp

import (
	"math/rand/v2"
	"testing"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/maypok86/otter/v2"
)

// A Zipf(1.01) key stream over 1M keys, entries of 1..16 KiB (size by key), a
// 64 MiB bound: the hit ratio each library reaches, and the cost of a Get.
var zs = 1.01

const (
	nKeys = 1_000_000
	limit = 64 << 20
	ops   = 2_000_000
)

func size(k uint64) int64 { return int64(1024 + (k*2654435761)%(15*1024)) }

func keys(seed uint64) []uint64 {
	r := rand.New(rand.NewPCG(seed, 1))
	z := rand.NewZipf(r, zs, 1, nKeys-1)
	out := make([]uint64, ops)
	for i := range out {
		out[i] = z.Uint64()
	}
	return out
}

func TestHitRatio(t *testing.T) {
	for _, s := range []float64{1.01, 1.1, 1.3} {
		zs = s
		hitRatio(t)
	}
}

func hitRatio(t *testing.T) {
	ks := keys(42)
	oc, _ := otter.New(&otter.Options[uint64, int64]{MaximumWeight: limit, Weigher: func(_ uint64, v int64) uint32 { return uint32(v) }})
	rc, _ := ristretto.NewCache(&ristretto.Config[uint64, int64]{NumCounters: 10 * nKeys / 10, MaxCost: limit, BufferItems: 64})
	var oh, rh int
	for _, k := range ks {
		if _, ok := oc.GetIfPresent(k); ok {
			oh++
		} else {
			oc.Set(k, size(k))
		}
		if _, ok := rc.Get(k); ok {
			rh++
		} else {
			rc.Set(k, size(k), size(k))
		}
	}
	t.Logf("zipf s=%.2f: hit ratio over %d ops: otter %.3f, ristretto %.3f", zs, ops, float64(oh)/ops, float64(rh)/ops)
}

func BenchmarkOtterGet(b *testing.B) {
	oc, _ := otter.New(&otter.Options[uint64, int64]{MaximumWeight: limit, Weigher: func(_ uint64, v int64) uint32 { return uint32(v) }})
	for k := uint64(0); k < 4096; k++ {
		oc.Set(k, 1024)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := uint64(0)
		for pb.Next() {
			oc.GetIfPresent(k & 4095)
			k++
		}
	})
}

func BenchmarkRistrettoGet(b *testing.B) {
	rc, _ := ristretto.NewCache(&ristretto.Config[uint64, int64]{NumCounters: 1e5, MaxCost: limit, BufferItems: 64})
	for k := uint64(0); k < 4096; k++ {
		rc.Set(k, 1024, 1024)
	}
	rc.Wait()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := uint64(0)
		for pb.Next() {
			rc.Get(k & 4095)
			k++
		}
	})
}
