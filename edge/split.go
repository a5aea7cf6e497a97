package edge

import (
	"math/rand/v2"
	"strings"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/lb"
)

// splitter is a route's traffic split (routes[].split) compiled: its
// upstreams with cumulative weights, the override and the sticky key.
// pick only reads it.
type splitter struct {
	ups   []*upstream
	names [][]byte
	cum   []uint64 // cum[i]: the sum of the weights up to and including i
	total uint64

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
		sp.ups = append(sp.ups, s.upstreams[b.Upstream])
		sp.names = append(sp.names, []byte(b.Upstream))
		sp.total += uint64(b.Weight)
		sp.cum = append(sp.cum, sp.total)
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

// pick chooses the request's upstream: the one the override names, else
// by the sticky key's hash, else at random, each in proportion to the
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
	var r uint64
	var v []byte
	switch {
	case sp.keyIP:
		v = x.clientIP()
	case sp.key:
		v = sp.lookup(x, sp.keyCookie, sp.keyName)
	}
	if len(v) > 0 {
		r = mix(lb.HashBytes(v)) % sp.total
	} else {
		r = rand.Uint64N(sp.total)
	}
	for i, c := range sp.cum {
		if r < c {
			return sp.ups[i]
		}
	}
	return sp.ups[len(sp.ups)-1]
}

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
