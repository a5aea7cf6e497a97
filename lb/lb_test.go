package lb

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func targets(weights ...int) []*Target {
	ts := make([]*Target, len(weights))
	for i, w := range weights {
		ts[i] = &Target{Weight: w}
	}
	return ts
}

func counts(p Picker, n, picks int) []int {
	c := make([]int, n)
	for i := 0; i < picks; i++ {
		c[p.Pick(Pick{Key: uint64(i) * 7919})]++
	}
	return c
}

func mustNew(t testing.TB, name string, ts []*Target) Picker {
	t.Helper()
	p, err := New(name, ts, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDistributions(t *testing.T) {
	const picks = 60000
	cases := []struct {
		balancer string
		weights  []int
		share    []float64 // expected fraction per target
	}{
		{"round_robin", []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}},
		{"weighted", []int{1, 2, 3}, []float64{1. / 6, 2. / 6, 3. / 6}},
		{"weighted", []int{5, 1, 1}, []float64{5. / 7, 1. / 7, 1. / 7}},
		{"random", []int{1, 1, 1, 1}, []float64{.25, .25, .25, .25}},
		{"least_conn", []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}},
		{"p2c_ewma", []int{1, 1, 1, 1}, []float64{.25, .25, .25, .25}},
		{"consistent_hash", []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}},
		{"consistent_hash", []int{1, 2, 3}, []float64{1. / 6, 2. / 6, 3. / 6}},
	}
	for _, tc := range cases {
		got := counts(mustNew(t, tc.balancer, targets(tc.weights...)), len(tc.weights), picks)
		for i, want := range tc.share {
			frac := float64(got[i]) / picks
			// +-3% of the expected share, as the issue asks; the ring gets
			// the spread virtual nodes give (160 per weight unit).
			tol := 0.03
			if tc.balancer == "consistent_hash" {
				tol = 0.10
			}
			if math.Abs(frac-want)/want > tol {
				t.Errorf("%s %v: target %d got %.4f of picks, want %.4f (+-%.0f%%)", tc.balancer, tc.weights, i, frac, want, tol*100)
			}
		}
	}
}

// nginx's smooth WRR interleaves: weights 5,1,1 give a a b a c a a.
func TestWeightedIsSmooth(t *testing.T) {
	w := newWeighted(targets(5, 1, 1))
	var seq []int
	for i := 0; i < 7; i++ {
		seq = append(seq, w.Pick(Pick{}))
	}
	if fmt.Sprint(seq) != fmt.Sprint([]int{0, 0, 1, 0, 2, 0, 0}) {
		t.Fatalf("sequence %v", seq)
	}
}

// Every balancer skips blocked and excluded targets, returns -1 when none
// is left, and a panic-mode pick ignores health but never an open circuit.
func TestEveryBalancerSkipsBlockedTargets(t *testing.T) {
	for _, name := range Balancers {
		t.Run(name, func(t *testing.T) {
			ts := targets(1, 1, 1, 1)
			p := mustNew(t, name, ts)
			ts[0].SetState(Unhealthy, true)
			ts[1].SetState(Ejected, true)
			ts[2].SetState(CircuitOpen, true)
			for k := 0; k < 2000; k++ {
				if i := p.Pick(Pick{Key: uint64(k)}); i != 3 {
					t.Fatalf("picked %d; only 3 is usable", i)
				}
			}
			if i := p.Pick(Pick{Key: 1, Exclude: 1 << 3}); i != -1 {
				t.Fatalf("picked %d with the only usable target excluded", i)
			}
			seen := map[int]bool{}
			for k := 0; k < 2000; k++ {
				i := p.Pick(Pick{Key: uint64(k), Exclude: 1 << 3, PanicMode: true})
				if i == 2 || i == 3 || i < 0 {
					t.Fatalf("panic-mode pick chose %d (2 has an open circuit, 3 is excluded)", i)
				}
				seen[i] = true
			}
			if !seen[0] && !seen[1] {
				t.Fatal("panic-mode picks never used the unhealthy targets")
			}
		})
	}
}

func TestSetStateReportsRecovery(t *testing.T) {
	tg := &Target{}
	if tg.SetState(Unhealthy, true) {
		t.Error("blocking reported as recovery")
	}
	tg.SetState(Ejected, true)
	if tg.SetState(Unhealthy, false) {
		t.Error("still ejected, yet reported usable")
	}
	if !tg.SetState(Ejected, false) {
		t.Error("last bit cleared, recovery not reported")
	}
}

func TestLeastConnAvoidsBusyTargets(t *testing.T) {
	ts := targets(1, 1, 1)
	p := mustNew(t, "least_conn", ts)
	for i := 0; i < 5; i++ {
		ts[0].Begin()
		ts[1].Begin()
	}
	ts[1].Begin()
	for k := 0; k < 100; k++ {
		if i := p.Pick(Pick{}); i != 2 {
			t.Fatalf("picked %d (in flight %d); 2 is idle", i, ts[i].InFlight())
		}
	}
}

func TestP2CAvoidsSlowTarget(t *testing.T) {
	ts := targets(1, 1, 1)
	p := mustNew(t, "p2c_ewma", ts)
	ts[0].Observe(200 * time.Millisecond)
	ts[1].Observe(2 * time.Millisecond)
	ts[2].Observe(2 * time.Millisecond)
	got := counts(p, 3, 30000)
	if frac := float64(got[0]) / 30000; frac > 0.001 {
		t.Errorf("slow target got %.3f of picks: %v", frac, got)
	}
}

func TestPeakEWMA(t *testing.T) {
	tg := &Target{}
	tg.Observe(10 * time.Millisecond)
	tg.Observe(100 * time.Millisecond)
	if tg.Latency() != 100*time.Millisecond {
		t.Errorf("a slower sample must replace the average at once: %v", tg.Latency())
	}
	tg.Observe(time.Millisecond)
	if l := tg.Latency(); l <= time.Millisecond || l > 100*time.Millisecond {
		t.Errorf("a faster sample decays the average, not replaces it: %v", l)
	}
}

// Removing one of N targets moves only the keys it owned (~1/N).
func TestRingMovesOnlyTheRemovedTargetsKeys(t *testing.T) {
	names := []string{"http://a:1", "http://b:1", "http://c:1", "http://d:1", "http://e:1"}
	before := newRing(targets(1, 1, 1, 1, 1), names, 0)
	after := newRing(targets(1, 1, 1, 1), append(append([]string{}, names[:2]...), names[3:]...), 0) // drop "c"
	const keys = 50000
	moved := 0
	for k := 0; k < keys; k++ {
		key := HashBytes([]byte(fmt.Sprintf("user-%d", k)))
		b := names[before.Pick(Pick{Key: key})]
		a := []string{"http://a:1", "http://b:1", "http://d:1", "http://e:1"}[after.Pick(Pick{Key: key})]
		if a != b {
			if b != "http://c:1" {
				t.Fatalf("key %d moved from %s to %s although %s is still there", k, b, a, b)
			}
			moved++
		}
	}
	if frac := float64(moved) / keys; frac > 1.0/5*1.15 {
		t.Errorf("%.3f of keys moved, want about 1/5", frac)
	}
}

func TestIPHashIsStable(t *testing.T) {
	p := mustNew(t, "ip_hash", targets(1, 1, 1, 1))
	for _, ip := range []string{"10.0.0.1", "192.168.1.77", "2001:db8::1"} {
		key := HashBytes([]byte(ip))
		first := p.Pick(Pick{Key: key})
		for k := 0; k < 100; k++ {
			if i := p.Pick(Pick{Key: key}); i != first {
				t.Fatalf("%s went to %d then %d", ip, first, i)
			}
		}
	}
}

func TestRingBoundedLoad(t *testing.T) {
	ts := targets(1, 1, 1, 1)
	r := newRing(ts, nil, 1.25)
	key := HashBytes([]byte("hot-key"))
	owner := r.Pick(Pick{Key: key})
	for i := 0; i < 10; i++ {
		ts[owner].Begin()
	}
	if i := r.Pick(Pick{Key: key}); i == owner {
		t.Errorf("overloaded owner %d (in flight 10, average 2.5) still chosen", owner)
	}
	unbounded := newRing(ts, nil, 0)
	if i := unbounded.Pick(Pick{Key: key}); i != owner {
		t.Errorf("without a bound the key must stay on its owner")
	}
}

func TestSlowStartRampsShare(t *testing.T) {
	ts := targets(1, 1)
	p := mustNew(t, "round_robin", ts)
	ts[1].StartWarmup(time.Hour) // stays near the 10% floor for the test
	got := counts(p, 2, 20000)
	if frac := float64(got[1]) / 20000; frac > 0.15 {
		t.Errorf("warming target got %.3f of picks; want near its 10%% floor share", frac)
	}
	ts[1].StartWarmup(time.Nanosecond)
	time.Sleep(time.Millisecond)
	got = counts(p, 2, 20000)
	if frac := float64(got[1]) / 20000; math.Abs(frac-0.5) > 0.02 {
		t.Errorf("warmed-up target got %.3f of picks, want 0.5", frac)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New("round_robin", nil, Options{}); err == nil {
		t.Error("no targets accepted")
	}
	if _, err := New("fastest", targets(1), Options{}); err == nil {
		t.Error("unknown balancer accepted")
	}
}
