package lb

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"sort"
)

// ring is consistent hashing on a ring of virtual nodes (ketama style):
// each target owns 160 x weight points; a key goes to the first point
// clockwise from its hash. When a target leaves, only the keys it owned
// move (about 1/N of them); the others keep their target. Unusable targets
// are skipped by walking on clockwise, so their keys spread over the
// neighbours instead of piling onto one.
//
// With bounded load (c > 0) a target already carrying more than c x the
// average in-flight load is passed over too, so one hot key can't melt a
// target (Mirrokni, Thorup, Zadimoghaddam: "Consistent Hashing with
// Bounded Loads").
type ring struct {
	points  []ringPoint // sorted by hash
	targets []*Target
	bound   float64
}

type ringPoint struct {
	hash   uint64
	target uint32
}

const pointsPerWeight = 160

// newRing builds the ring. A target's points depend only on its name (or,
// without names, its position) and weight, so removing one target leaves
// every other target's points where they were.
func newRing(targets []*Target, names []string, boundedLoad float64) *ring {
	r := &ring{targets: targets, bound: boundedLoad}
	for i, t := range r.targets {
		var name []byte
		if i < len(names) {
			name = []byte(names[i])
		} else {
			name = binary.BigEndian.AppendUint64(nil, uint64(i))
		}
		for v := 0; v < pointsPerWeight*max(t.Weight, 1); v++ {
			h := fnv.New64a()
			h.Write(name)
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(v)))
			r.points = append(r.points, ringPoint{hash: mix64(h.Sum64()), target: uint32(i)})
		}
	}
	sort.Slice(r.points, func(a, b int) bool { return r.points[a].hash < r.points[b].hash })
	return r
}

// Pick returns the owner of p.Key, walking clockwise past unusable,
// excluded or overloaded targets.
func (r *ring) Pick(p Pick) int {
	n := len(r.points)
	h := mix64(p.Key)
	start := sort.Search(n, func(i int) bool { return r.points[i].hash >= h })
	limit := int64(math.MaxInt64)
	if r.bound > 0 {
		var total int64
		for _, t := range r.targets {
			total += t.InFlight()
		}
		limit = int64(math.Ceil(r.bound * float64(total+1) / float64(len(r.targets))))
	}
	for k := 0; k < n; k++ {
		i := int(r.points[(start+k)%n].target)
		t := r.targets[i]
		if excluded(p, i) || !t.usable(p.PanicMode) || t.InFlight() >= limit {
			continue
		}
		return i
	}
	return scanFrom(r.targets, p, 0)
}

// mix64 is a 64-bit finalizer (splitmix64) that spreads nearby inputs
// over the whole ring.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// HashBytes hashes a request key (an IP, a header value, a path) for Pick.
// It does not allocate.
func HashBytes(b []byte) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, c := range b {
		h ^= uint64(c)
		h *= prime
	}
	return h
}

var _ Picker = (*ring)(nil)
