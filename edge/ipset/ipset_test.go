package ipset

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// linear is the reference: a scan of every prefix, the way netip says
// containment works.
func linear(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.IsValid() && p.Masked().Contains(a) {
			return true
		}
	}
	return false
}

func TestContainsExamples(t *testing.T) {
	set := New(mustPrefixes(t,
		"10.0.0.0/8", "192.168.1.7/32", "172.16.0.0/12", "172.16.5.0/24", // the /24 is inside the /12
		"2001:db8::/32", "::1/128", "fe80::/10", "::ffff:100.64.0.0/106"))
	cases := []struct {
		addr string
		want bool
	}{
		{"10.0.0.0", true}, {"10.255.255.255", true}, {"11.0.0.0", false}, {"9.255.255.255", false},
		{"192.168.1.7", true}, {"192.168.1.6", false}, {"192.168.1.8", false},
		{"172.31.255.255", true}, {"172.32.0.0", false}, {"172.16.5.9", true},
		{"2001:db8::1", true}, {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true}, {"2001:db9::", false},
		{"::1", true}, {"::2", false}, {"fe80::1%eth0", true}, {"fec0::1", false},
		// IPv4-mapped addresses are their IPv4 address; the mapped prefix
		// is its IPv4 prefix (100.64.0.0/10).
		{"::ffff:10.1.2.3", true}, {"100.64.0.1", true}, {"100.127.255.255", true}, {"100.128.0.0", false},
		// An IPv4 address is not inside an IPv6 prefix and the other way
		// round, even where the bits agree.
		{"0.0.0.1", false},
	}
	for _, c := range cases {
		if got := set.Contains(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("Contains(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
	if set.Contains(netip.Addr{}) {
		t.Error("the zero Addr is inside a set")
	}
	var empty *Set
	if empty.Contains(netip.MustParseAddr("10.0.0.1")) || New(nil).Contains(netip.MustParseAddr("::1")) || empty.Len() != 0 {
		t.Error("an empty set contains something")
	}
	all := New(mustPrefixes(t, "0.0.0.0/0"))
	if !all.Contains(netip.MustParseAddr("203.0.113.9")) || all.Contains(netip.MustParseAddr("2001:db8::1")) {
		t.Error("0.0.0.0/0 must hold every IPv4 address and no IPv6 one")
	}
}

// TestContainsMatchesLinearScan: on random sets (small and large, sparse
// and clustered so that prefixes nest and overlap) and random addresses
// (many of them drawn inside or next to a stored prefix), the trie agrees
// with a scan of every prefix.
func TestContainsMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		n := 1 + r.IntN(64)
		if round%20 == 0 {
			n = 2000
		}
		ps := randomPrefixes(r, n)
		set := New(ps)
		for i := 0; i < 500; i++ {
			a := randomAddrNear(r, ps)
			if got, want := set.Contains(a), linear(ps, a); got != want {
				t.Fatalf("round %d: Contains(%s) = %v, linear scan says %v (prefixes %v)", round, a, got, want, ps)
			}
		}
	}
}

// FuzzContains: any prefixes and address made from the fuzzer's bytes, the
// trie agrees with the linear scan.
func FuzzContains(f *testing.F) {
	f.Add([]byte{10, 0, 0, 0, 8, 10, 1, 2, 3}, false)
	f.Add([]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32}, true)
	f.Fuzz(func(t *testing.T, data []byte, v6 bool) {
		size := 4
		if v6 {
			size = 16
		}
		var ps []netip.Prefix
		for len(data) >= 2*size+1 {
			a, _ := netip.AddrFromSlice(data[:size])
			ps = append(ps, netip.PrefixFrom(a, int(data[size])%(a.BitLen()+1)))
			data = data[size+1:]
		}
		if len(data) < size {
			return
		}
		a, _ := netip.AddrFromSlice(data[:size])
		if got, want := New(ps).Contains(a), linear(ps, a); got != want {
			t.Fatalf("Contains(%s) = %v, linear scan says %v (prefixes %v)", a, got, want, ps)
		}
	})
}

func TestContainsAllocatesNothing(t *testing.T) {
	set := New(randomPrefixes(rand.New(rand.NewPCG(3, 4)), 10000))
	a4, a6 := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8::77")
	if n := testing.AllocsPerRun(1000, func() { set.Contains(a4); set.Contains(a6) }); n != 0 {
		t.Errorf("Contains: %.1f allocations, want 0", n)
	}
}

func mustPrefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// randomPrefixes: half IPv4, half IPv6; addresses from a few "networks"
// so that prefixes nest, repeat and overlap; lengths over the whole range.
func randomPrefixes(r *rand.Rand, n int) []netip.Prefix {
	bases4 := []uint32{0x0a000000, 0xc0a80000, r.Uint32(), r.Uint32()}
	bases6 := [][2]uint64{{0x20010db800000000, 0}, {r.Uint64(), r.Uint64()}}
	out := make([]netip.Prefix, 0, n)
	for i := 0; i < n; i++ {
		if r.IntN(2) == 0 {
			v := bases4[r.IntN(len(bases4))] ^ r.Uint32()>>r.IntN(33)
			out = append(out, netip.PrefixFrom(addr4(v), r.IntN(33)))
		} else {
			base := bases6[r.IntN(len(bases6))]
			hi, lo := base[0]^r.Uint64()>>r.IntN(65), base[1]^r.Uint64()
			out = append(out, netip.PrefixFrom(addr6(hi, lo), r.IntN(129)))
		}
	}
	return out
}

// randomAddrNear: an address inside a stored prefix, one just past its
// end, or anywhere at all.
func randomAddrNear(r *rand.Rand, ps []netip.Prefix) netip.Addr {
	p := ps[r.IntN(len(ps))].Masked()
	a, bits := p.Addr(), p.Bits()
	switch r.IntN(4) {
	case 0: // anywhere
		if a.Is4() {
			return addr4(r.Uint32())
		}
		return addr6(r.Uint64(), r.Uint64())
	case 1: // the first address past the prefix
		if n := lastAddr(p).Next(); n.IsValid() {
			return n
		}
		return a
	default: // inside: random host bits
		if a.Is4() {
			b := a.As4()
			return addr4(binary.BigEndian.Uint32(b[:]) | r.Uint32()&(^uint32(0)>>bits))
		}
		hi, lo := split(a)
		mh, ml := hostMask(bits)
		return addr6(hi|r.Uint64()&mh, lo|r.Uint64()&ml)
	}
}

// hostMask is the mask of the bits after the first n of 128.
func hostMask(n int) (hi, lo uint64) {
	switch {
	case n < 64:
		return ^uint64(0) >> n, ^uint64(0)
	case n < 128:
		return 0, ^uint64(0) >> (n - 64)
	}
	return 0, 0
}

func lastAddr(p netip.Prefix) netip.Addr {
	a, bits := p.Masked().Addr(), p.Bits()
	if a.Is4() {
		b := a.As4()
		return addr4(binary.BigEndian.Uint32(b[:]) | ^uint32(0)>>bits)
	}
	hi, lo := split(a)
	mh, ml := hostMask(bits)
	return addr6(hi|mh, lo|ml)
}

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func addr6(hi, lo uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}
