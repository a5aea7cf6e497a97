package ipset

import (
	"cmp"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
)

// Set is a set of prefixes. The zero value and nil are empty sets.
type Set struct {
	v4, v6 trie
	n      int // prefixes given to New, duplicates and covered ones included
}

// trie is a path-compressed binary trie (a PATRICIA trie) in one slice:
// each node holds a whole prefix, and a chain of single-child nodes is one
// node, so n prefixes take at most 2n+1 nodes. nodes[0] is the root (the
// empty prefix); a child index of 0 means "no child" (the root is nobody's
// child). Indices rather than pointers keep the nodes contiguous and give
// the garbage collector nothing to scan.
type trie struct {
	nodes []node
}

type node struct {
	hi, lo uint64 // the prefix's bits, masked to its length
	bits   uint8  // the prefix's length (0..128)
	// end: a stored prefix ends here, so every address below is inside.
	// Otherwise the node is where two stored prefixes branch.
	end   bool
	child [2]uint32 // by the bit that follows the prefix
}

// New builds the set of prefixes. IPv4-mapped IPv6 prefixes of /96 or
// longer are stored as the IPv4 prefixes they map; invalid prefixes are
// skipped.
func New(prefixes []netip.Prefix) *Set {
	s := &Set{n: len(prefixes)}
	ps := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		ps = append(ps, p.Masked())
	}
	// Shortest first, as insert needs: a prefix inside one stored before
	// is dropped, and no prefix covers one stored before it.
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return cmp.Compare(a.Bits(), b.Bits()) })
	for _, p := range ps {
		hi, lo := split(p.Addr())
		if p.Addr().Is4() {
			s.v4.insert(hi, lo, p.Bits())
		} else {
			s.v6.insert(hi, lo, p.Bits())
		}
	}
	return s
}

// Len is the number of prefixes the set was built from.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Contains reports whether a is inside one of the set's prefixes. An
// IPv4-mapped IPv6 address is looked up as the IPv4 address it maps; a
// zone is ignored; the zero Addr is in no set.
func (s *Set) Contains(a netip.Addr) bool {
	if s == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	hi, lo := split(a)
	if a.Is4() {
		return s.v4.contains(hi, lo, 32)
	}
	return s.v6.contains(hi, lo, 128)
}

// split returns the address's bits, most significant first, as two words
// (an IPv4 address fills the top 32 bits of hi).
func split(a netip.Addr) (hi, lo uint64) {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 32, 0
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// bit is the address's i-th bit from the top.
func bit(hi, lo uint64, i int) uint64 {
	if i < 64 {
		return hi >> (63 - i) & 1
	}
	return lo >> (127 - i) & 1
}

// mask keeps the first n bits.
func mask(hi, lo uint64, n int) (uint64, uint64) {
	return hi &^ (^uint64(0) >> min(n, 64)), lo &^ (^uint64(0) >> max(n-64, 0))
}

// has reports whether the address's first n.bits bits are n's.
func (n *node) has(hi, lo uint64) bool {
	h, l := mask(hi^n.hi, lo^n.lo, int(n.bits))
	return h|l == 0
}

// common is the length of the prefix two keys share, at most limit.
func common(h1, l1, h2, l2 uint64, limit int) int {
	n := bits.LeadingZeros64(h1 ^ h2)
	if n == 64 {
		n += bits.LeadingZeros64(l1 ^ l2)
	}
	return min(n, limit)
}

// insert adds the prefix of the given length. Prefixes must arrive
// shortest first (New sorts them): then every node already stored is no
// longer than the new prefix, and a new prefix never covers an old one.
func (t *trie) insert(hi, lo uint64, n int) {
	if t.nodes == nil {
		t.nodes = make([]node, 1, 64)
	}
	cur := uint32(0)
	for {
		at := &t.nodes[cur]
		if at.end {
			return // inside a prefix already stored
		}
		if int(at.bits) == n {
			at.end = true // only the root, for a /0: a branch node is shorter than every prefix that comes after it
			return
		}
		b := bit(hi, lo, int(at.bits))
		c := at.child[b]
		if c == 0 {
			at.child[b] = t.add(node{hi: hi, lo: lo, bits: uint8(n), end: true})
			return
		}
		next := &t.nodes[c]
		k := common(hi, lo, next.hi, next.lo, min(n, int(next.bits)))
		if k == int(next.bits) {
			cur = c // the new prefix goes on below next
			continue
		}
		// They part after k bits (k < n, since next is no longer than n):
		// a branch node there, with next and the new prefix below it.
		bh, bl := mask(hi, lo, k)
		branch := node{hi: bh, lo: bl, bits: uint8(k)}
		branch.child[bit(next.hi, next.lo, k)] = c
		branch.child[bit(hi, lo, k)] = t.add(node{hi: hi, lo: lo, bits: uint8(n), end: true})
		t.nodes[cur].child[b] = t.add(branch) // t.add may move the slice: index again
		return
	}
}

func (t *trie) add(n node) uint32 {
	t.nodes = append(t.nodes, n)
	return uint32(len(t.nodes) - 1)
}

// contains walks down from the root by the address's bit after each
// node's prefix. A stored prefix is always a leaf (insert drops prefixes
// inside others), and the walk toward a stored prefix the address is
// inside never leaves that prefix's path (every node on it is a prefix of
// it), so comparing the address with the one leaf the walk ends at is
// enough: branch nodes are passed without comparing (as PATRICIA does).
// max is the address's bit length.
func (t *trie) contains(hi, lo uint64, max int) bool {
	if len(t.nodes) == 0 {
		return false
	}
	n := &t.nodes[0]
	for !n.end {
		if int(n.bits) == max {
			return false
		}
		c := n.child[bit(hi, lo, int(n.bits))]
		if c == 0 {
			return false
		}
		n = &t.nodes[c]
	}
	return n.has(hi, lo)
}
