package edge

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/lb"
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

// splitGateway routes / through an 80/20 split of upstreams a and b (and
// a weight-0 "dark"), overridden by X-Upstream, sticky on the session
// cookie. Its func sends a GET with the headers and names the upstream
// that answered.
func splitGateway(t *testing.T) func(headers map[string]string) string {
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
	return func(headers map[string]string) string {
		t.Helper()
		r := g.do(t, request{path: "/x", headers: headers})
		var e struct{ Upstream string }
		if r.status != 200 || json.Unmarshal([]byte(r.body), &e) != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		return e.Upstream
	}
}

// Through a gateway: the share of each upstream, the override by header
// (also to a weight-0 upstream, a dark launch), and stickiness by cookie
// (one session always lands on the same upstream; sessions spread by the
// weights).
func TestSplitThroughGateway(t *testing.T) {
	to := splitGateway(t)
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

// Garbage in the override header and the sticky cookie: an override that
// names no upstream exactly (case, lists, prefixes, escapes, 4,000 bytes)
// falls back to the sticky choice; a key of any bytes is answered, never by
// the weight-0 upstream, and stays sticky; an empty key is a random draw;
// of two cookies of the name the first counts.
func TestSplitGarbageOverridesAndKeys(t *testing.T) {
	to := splitGateway(t)
	s1 := map[string]string{"Cookie": "session=s1"}
	want := to(s1)
	for _, o := range []string{"B", "DARK", "b,dark", "b;dark", "bb", "%62", "*", "a b", strings.Repeat("x", 4000)} {
		if got := to(map[string]string{"X-Upstream": o, "Cookie": "session=s1"}); got != want {
			t.Errorf("override %.20q: went to %s, want the sticky %s", o, got, want)
		}
	}
	for _, c := range []string{"session=%%zz", `session="q"`, "session=ü-ß", "session=" + strings.Repeat("k", 3000), "session=;x=1", "session"} {
		first := to(map[string]string{"Cookie": c})
		for range 3 {
			if got := to(map[string]string{"Cookie": c}); got != first && !strings.HasPrefix(c, "session=;") && c != "session" {
				t.Errorf("cookie %.20q went to %s, then %s", c, first, got)
			}
		}
		if first == "dark" {
			t.Errorf("cookie %.20q reached the weight-0 upstream", c)
		}
	}
	if a, b := to(map[string]string{"Cookie": "session=s1; session=s2"}), to(s1); a != b {
		t.Errorf("two session cookies went to %s, the first alone to %s", a, b)
	}
}

// testSplit builds a splitter over upstreams named and weighted as given
// (name, weight, name, weight...).
func testSplit(spec ...any) *splitter {
	sp := &splitter{}
	for i := 0; i < len(spec); i += 2 {
		name := spec[i].(string)
		sp.add(&upstream{name: name}, name, spec[i+1].(int))
	}
	return sp
}

// stickyKey is the i-th test user's key hash.
func stickyKey(i int) uint64 { return lb.HashBytes(fmt.Appendf(nil, "user-%d", i)) }

// Sticky keys spread by the weights (70/25/5, and a weight of 0 never),
// in whatever order the upstreams are listed.
func TestSplitStickySharesFollowWeights(t *testing.T) {
	const n = 200000
	for _, sp := range []*splitter{
		testSplit("a", 70, "z", 0, "b", 25, "c", 5),
		testSplit("c", 5, "b", 25, "z", 0, "a", 70),
	} {
		counts := map[string]int{}
		for i := range n {
			counts[sp.ups[sp.sticky(stickyKey(i))].name]++
		}
		withinSigmas(t, "a (70)", counts["a"], n, 0.70)
		withinSigmas(t, "b (25)", counts["b"], n, 0.25)
		withinSigmas(t, "c (5)", counts["c"], n, 0.05)
		if counts["z"] != 0 {
			t.Errorf("weight 0 chosen %d times", counts["z"])
		}
	}
}

// A weight change moves as few keys as it must. The least share that
// must move is the total variation between the old and new shares (half
// the sum of the share changes); weighted rendezvous moves exactly that
// when one weight changes, or when the others keep their ratios, and
// moves a key from j to k only when w_k/w_j grew. For a change of several
// weights in different directions (the last case) it moves more than the
// minimum: what it should move is drawn from the model (exponential
// variables, independent of sluice's hashing) and compared.
func TestSplitStickyMovesTheMinimum(t *testing.T) {
	cases := []struct {
		name          string
		before, after []any
		minimal       bool // rendezvous moves exactly the least share
	}{
		{"canary 10% to 20%", []any{"a", 90, "b", 10}, []any{"a", 80, "b", 20}, true},
		{"canary off", []any{"a", 95, "b", 5}, []any{"a", 95, "b", 0}, true},
		{"one weight of three up", []any{"a", 80, "b", 10, "c", 10}, []any{"a", 80, "b", 20, "c", 10}, true},
		{"two down in step", []any{"a", 10, "b", 45, "c", 45}, []any{"a", 20, "b", 40, "c", 40}, true},
		{"upstream added, list reordered", []any{"a", 90, "b", 10}, []any{"c", 5, "b", 10, "a", 90}, true},
		{"two swap shares", []any{"a", 50, "b", 30, "c", 20}, []any{"a", 50, "b", 20, "c", 30}, false},
	}
	const n = 200000
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old, cur := testSplit(c.before...), testSplit(c.after...)
			wOld, wNew := weights(old), weights(cur)
			least := leastMove(wOld, wNew)
			moved := 0
			for i := range n {
				k := stickyKey(i)
				from, to := old.ups[old.sticky(k)].name, cur.ups[cur.sticky(k)].name
				if from == to {
					continue
				}
				moved++
				// j to k only when w_k/w_j grew: w'_k*w_j > w_k*w'_j.
				if wNew[to]*wOld[from] <= wOld[to]*wNew[from] {
					t.Fatalf("user-%d moved %s -> %s, whose weights kept their ratio", i, from, to)
				}
			}
			want := least
			if !c.minimal {
				want = modelMove(wOld, wNew, 1_000_000)
			}
			t.Logf("moved %.4f, least %.4f, expected %.4f", float64(moved)/n, least, want)
			withinSigmas(t, "moved", moved, n, want)
		})
	}
}

func weights(sp *splitter) map[string]float64 {
	w := map[string]float64{}
	for i, up := range sp.ups {
		w[up.name] = sp.weight[i]
	}
	return w
}

func shares(w map[string]float64) map[string]float64 {
	sum := 0.0
	for _, v := range w {
		sum += v
	}
	s := map[string]float64{}
	for k, v := range w {
		s[k] = v / sum
	}
	return s
}

// leastMove is the least share of keys that must change upstream when the
// shares go from a to b: their total variation distance.
func leastMove(a, b map[string]float64) float64 {
	sa, sb := shares(a), shares(b)
	d := 0.0
	for k := range sa {
		d += math.Abs(sa[k] - sb[k])
	}
	for k := range sb {
		if _, ok := sa[k]; !ok {
			d += sb[k]
		}
	}
	return d / 2
}

// modelMove estimates the share of keys weighted rendezvous moves from
// weights a to b, from n draws of the model: each key has one
// exponential variable per upstream, and the least E/w wins.
func modelMove(a, b map[string]float64, n int) float64 {
	r := rand.New(rand.NewPCG(1, 2))
	names := make([]string, 0, len(a))
	for k := range a {
		names = append(names, k)
	}
	sort.Strings(names)
	winner := func(w map[string]float64, e []float64) int {
		best, bs := -1, math.Inf(1)
		for i, k := range names {
			if w[k] > 0 && e[i]/w[k] < bs {
				best, bs = i, e[i]/w[k]
			}
		}
		return best
	}
	e := make([]float64, len(names))
	moved := 0
	for range n {
		for i := range e {
			e[i] = r.ExpFloat64()
		}
		if winner(a, e) != winner(b, e) {
			moved++
		}
	}
	return float64(moved) / float64(n)
}

// Shares change on reload without reshuffling sessions: after a reload
// from a 90/10 to an 80/20 split (listed in the other order), the
// sessions that move all move to b, about 10% of them (the least that
// must), and none of b's leaves it.
func TestSplitReloadMovesOnlyTheDelta(t *testing.T) {
	a := testutil.StartUpstream(t, stub.Options{Name: "a"})
	b := testutil.StartUpstream(t, stub.Options{Name: "b"})
	cfg := func(wa, wb int) string {
		split := fmt.Sprintf("[ { upstream: a, weight: %d }, { upstream: b, weight: %d } ]", wa, wb)
		if wb > 10 {
			split = fmt.Sprintf("[ { upstream: b, weight: %d }, { upstream: a, weight: %d } ]", wb, wa)
		}
		return fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  a: { targets: [ { url: "%s" } ] }
  b: { targets: [ { url: "%s" } ] }
routes:
  - name: split
    match: { prefix: / }
    split: %s
    split_key: cookie:session
`, a.URL, b.URL, split)
	}
	g := startGateway(t, cfg(90, 10))
	to := func(i int) string {
		r := g.do(t, request{path: "/x", headers: map[string]string{"Cookie": fmt.Sprintf("session=u%d", i)}})
		var e struct{ Upstream string }
		if r.status != 200 || json.Unmarshal([]byte(r.body), &e) != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		return e.Upstream
	}
	const sessions = 800
	before := make([]string, sessions)
	for i := range before {
		before[i] = to(i)
	}
	if err := g.Apply(mustParse(t, cfg(80, 20))); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for i, was := range before {
		switch now := to(i); {
		case now == was:
		case was == "a" && now == "b":
			moved++
		default:
			t.Fatalf("session u%d moved %s -> %s", i, was, now)
		}
	}
	withinSigmas(t, "sessions moved a -> b", moved, sessions, 0.10)
}
