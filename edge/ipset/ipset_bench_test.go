package ipset

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// BenchmarkContains: lookups in a set of 10,000 prefixes (random IPv4 /8
// to /32 and IPv6 /16 to /128), for addresses inside one and outside all.
//
//	go test ./edge/ipset -run '^$' -bench Contains -benchmem -cpu 1,2
func BenchmarkContains(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	ps := make([]netip.Prefix, 0, 10000)
	for len(ps) < 5000 {
		ps = append(ps, netip.PrefixFrom(addr4(r.Uint32()), 8+r.IntN(25)).Masked())
	}
	for len(ps) < 10000 {
		ps = append(ps, netip.PrefixFrom(addr6(r.Uint64(), r.Uint64()), 16+r.IntN(113)).Masked())
	}
	set := New(ps)
	in4, in6 := lastAddr(ps[17]), lastAddr(ps[5017])
	// Outside every prefix: checked against the linear scan.
	out4, out6 := addr4(r.Uint32()), addr6(r.Uint64(), r.Uint64())
	for linear(ps, out4) {
		out4 = addr4(r.Uint32())
	}
	for linear(ps, out6) {
		out6 = addr6(r.Uint64(), r.Uint64())
	}
	for _, c := range []struct {
		name string
		a    netip.Addr
		want bool
	}{{"v4/inside", in4, true}, {"v4/outside", out4, false}, {"v6/inside", in6, true}, {"v6/outside", out6, false}} {
		b.Run(c.name, func(b *testing.B) {
			if set.Contains(c.a) != c.want {
				b.Fatalf("Contains(%s) != %v", c.a, c.want)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					set.Contains(c.a)
				}
			})
		})
	}
	b.Run("build", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			New(ps)
		}
	})
}
