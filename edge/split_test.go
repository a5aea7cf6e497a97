package edge

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// withinSigmas fails unless got is within 5 standard deviations of a
// binomial(n, p) count: a correct split fails this about once in 1.7
// million runs, a share off by a few points fails it every time.
func withinSigmas(t *testing.T, what string, got, n int, p float64) {
	t.Helper()
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	if math.Abs(float64(got)-mean) > 5*sd {
		t.Errorf("%s: %d of %d, want %.0f +- %.0f (5 sigma)", what, got, n, mean, 5*sd)
	}
}

// The random draw follows the weights (70/25/5, and a weight of 0 never).
func TestSplitPickFollowsWeights(t *testing.T) {
	a, b, c, z := &upstream{name: "a"}, &upstream{name: "b"}, &upstream{name: "c"}, &upstream{name: "z"}
	sp := &splitter{ups: []*upstream{a, z, b, c}, cum: []uint64{70, 70, 95, 100}, total: 100}
	const n = 200000
	counts := map[*upstream]int{}
	for range n {
		counts[sp.pick(nil)]++
	}
	withinSigmas(t, "a (70)", counts[a], n, 0.70)
	withinSigmas(t, "b (25)", counts[b], n, 0.25)
	withinSigmas(t, "c (5)", counts[c], n, 0.05)
	if counts[z] != 0 {
		t.Errorf("weight 0 chosen %d times", counts[z])
	}
}

// Through a gateway: the share of each upstream, the override by header
// (also to a weight-0 upstream, a dark launch), and stickiness by cookie
// (one session always lands on the same upstream; sessions spread by the
// weights).
func TestSplitThroughGateway(t *testing.T) {
	ups := map[string]*testutil.Upstream{}
	for _, name := range []string{"a", "b", "dark"} {
		ups[name] = testutil.StartUpstream(t, stub.Options{Name: name})
	}
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  a: { targets: [ { url: "%s" } ] }
  b: { targets: [ { url: "%s" } ] }
  dark: { targets: [ { url: "%s" } ] }
routes:
  - name: split
    match: { prefix: / }
    split: [ { upstream: a, weight: 80 }, { upstream: b, weight: 20 }, { upstream: dark, weight: 0 } ]
    split_override: header:X-Upstream
    split_key: cookie:session
`, ups["a"].URL, ups["b"].URL, ups["dark"].URL))
	to := func(headers map[string]string) string {
		r := g.do(t, request{path: "/x", headers: headers})
		var e struct{ Upstream string }
		if r.status != 200 || json.Unmarshal([]byte(r.body), &e) != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		return e.Upstream
	}
	const n = 2000
	counts := map[string]int{}
	for range n {
		counts[to(nil)]++
	}
	withinSigmas(t, "b (20%), random", counts["b"], n, 0.20)
	if counts["dark"] != 0 || counts["a"]+counts["b"] != n {
		t.Errorf("counts %v", counts)
	}

	for _, want := range []string{"b", "dark", "a"} {
		for range 10 {
			if got := to(map[string]string{"x-upstream": want}); got != want {
				t.Fatalf("override to %s went to %s", want, got)
			}
		}
	}
	if got := to(map[string]string{"X-Upstream": "nonexistent", "Cookie": "session=s1"}); got != to(map[string]string{"Cookie": "session=s1"}) {
		t.Error("an override naming no split upstream should fall back to the split")
	}

	const sessions = 400
	counts = map[string]int{}
	for i := range sessions {
		cookie := map[string]string{"Cookie": fmt.Sprintf("session=user-%d", i)}
		first := to(cookie)
		counts[first]++
		for range 3 {
			if got := to(cookie); got != first {
				t.Fatalf("session user-%d went to %s, then %s", i, first, got)
			}
		}
	}
	withinSigmas(t, "b (20%), sticky sessions", counts["b"], sessions, 0.20)
}
