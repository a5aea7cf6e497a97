package edge

import (
	"math"
	"math/rand/v2"
	"strings"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/lb"
)

// splitter is a route's traffic split (routes[].split) compiled: its
// upstreams with cumulative weights (the random draw), their weights and
// name seeds (the sticky choice), the override and the sticky key. pick
// only reads it.
type splitter struct {
	ups    []*upstream
	names  [][]byte
	cum    []uint64  // cum[i]: the sum of the weights up to and including i
	total  uint64    // of the weights
	weight []float64 // each upstream's
	seed   []uint64  // a hash of each upstream's name (sticky)

	override       []byte // split_override's name; nil: none
	overrideCookie bool   // a cookie, else a header (lower case, compared ignoring case)

	key       bool   // split_key set: sticky
	keyIP     bool   // the client address
	keyCookie bool   // else a cookie, else a header
	keyName   []byte // a header's in lower case
}

func (s *Snapshot) compileSplit(rc *config.Route) *splitter {
	sp := &splitter{}
	for _, b := range rc.Split {
		sp.add(s.upstreams[b.Upstream], b.Upstream, b.Weight)
	}
	if rc.SplitOverride != "" {
		kind, name, _ := config.ParseHashKey(rc.SplitOverride) // validated
		sp.overrideCookie = kind == "cookie"
		if !sp.overrideCookie {
			name = strings.ToLower(name)
		}
		sp.override = []byte(name)
	}
	if rc.SplitKey != "" {
		kind, name, _ := config.ParseHashKey(rc.SplitKey) // validated
		sp.key, sp.keyIP, sp.keyCookie = true, kind == "ip", kind == "cookie"
		if kind == "header" {
			name = strings.ToLower(name)
		}
		sp.keyName = []byte(name)
	}
	return sp
}

// add appends an upstream with its weight.
func (sp *splitter) add(up *upstream, name string, weight int) {
	sp.ups = append(sp.ups, up)
	sp.names = append(sp.names, []byte(name))
	sp.total += uint64(weight)
	sp.cum = append(sp.cum, sp.total)
	sp.weight = append(sp.weight, float64(weight))
	sp.seed = append(sp.seed, splitSeed(name))
}

// pick chooses the request's upstream: the one the override names, else
// by the sticky key (sticky), else at random, each in proportion to the
// weights.
func (sp *splitter) pick(x *exchange) *upstream {
	if sp.override != nil {
		if v := sp.lookup(x, sp.overrideCookie, sp.override); len(v) > 0 {
			for i, n := range sp.names {
				if string(n) == string(v) {
					return sp.ups[i]
				}
			}
		}
	}
	var v []byte
	switch {
	case sp.keyIP:
		v = x.clientIP()
	case sp.key:
		v = sp.lookup(x, sp.keyCookie, sp.keyName)
	}
	if len(v) > 0 {
		return sp.ups[sp.sticky(lb.HashBytes(v))]
	}
	r := rand.Uint64N(sp.total)
	for i, c := range sp.cum {
		if r < c {
			return sp.ups[i]
		}
	}
	return sp.ups[len(sp.ups)-1]
}

// sticky is the index of the upstream a key (its hash) goes to, by
// weighted rendezvous hashing: each upstream draws u in (0, 1) from the
// key and its own name, and the lowest -ln(u)/weight wins. -ln(u) is an
// exponential variable, so upstream i wins with probability
// weight_i/sum(weights), exactly (the minimum of independent exponentials
// with rates w_i is the i-th with probability w_i/sum). A key's draws
// don't depend on the weights, so a key moves from upstream j to k only
// when w_k/w_j grew: raising a canary from 10% to 20% moves only the
// 10% of keys it gains, all to the canary; lowering one moves only its
// own keys, spread over the others by weight; upstreams whose weights
// keep their ratio trade no key. The draws hang on the upstream's name,
// not its position, so reordering the list or adding an upstream moves
// nothing else. (A cumulative range over hash mod total, as before,
// shifted every later range when an earlier weight changed.)
func (sp *splitter) sticky(key uint64) int {
	best, bestScore := len(sp.ups)-1, math.Inf(1)
	key = mix(key)
	for i, w := range sp.weight {
		if w == 0 {
			continue
		}
		// 53 random bits, centred in their interval: u is never 0 or 1.
		u := (float64(mix(key^sp.seed[i])>>11) + 0.5) / (1 << 53)
		if score := -math.Log(u) / w; score < bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// splitSeed is an upstream's name hashed: its rendezvous draws depend on
// it, not on its place in the list.
func splitSeed(name string) uint64 { return mix(lb.HashBytes([]byte(name))) }

// lookup is a cookie's value, or a header's (name in lower case, matched
// ignoring case: names are kept as sent). Aliases the request.
func (sp *splitter) lookup(x *exchange, cookie bool, name []byte) []byte {
	h := &x.ctx.Request.Header
	if cookie {
		return h.CookieBytes(name)
	}
	for k, v := range h.All() {
		if len(k) == len(name) && equalFoldASCII(k, string(name)) {
			return v
		}
	}
	return nil
}

// mix spreads FNV-1a's bits (splitmix64's finaliser), so keys that differ
// in a last byte don't land in neighbouring slots.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}
