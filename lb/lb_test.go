package lb

import (
	"math"
	"testing"
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
		c[p.Pick(uint64(i))]++
	}
	return c
}

func TestDistributions(t *testing.T) {
	const picks = 60000
	cases := []struct {
		balancer string
		weights  []int
		share    []float64 // expected fraction per target
		tol      float64
	}{
		{"round_robin", []int{1, 1, 1}, []float64{1. / 3, 1. / 3, 1. / 3}, 0.0001},
		{"weighted", []int{1, 2, 3}, []float64{1. / 6, 2. / 6, 3. / 6}, 0.03 / 6},
		{"weighted", []int{5, 1, 1}, []float64{5. / 7, 1. / 7, 1. / 7}, 0.001},
		{"random", []int{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, 0.03 * .25},
	}
	for _, tc := range cases {
		p, err := New(tc.balancer, targets(tc.weights...))
		if err != nil {
			t.Fatal(err)
		}
		got := counts(p, len(tc.weights), picks)
		for i, want := range tc.share {
			frac := float64(got[i]) / picks
			if math.Abs(frac-want) > tc.tol+1e-9 && math.Abs(frac-want)/want > 0.03 {
				t.Errorf("%s %v: target %d got %.4f of picks, want %.4f (+-3%%)", tc.balancer, tc.weights, i, frac, want)
			}
		}
	}
}

// nginx's smooth WRR interleaves: weights 5,1,1 give a a b a c a a.
func TestWeightedIsSmooth(t *testing.T) {
	w := NewWeighted(targets(5, 1, 1))
	var seq []int
	for i := 0; i < 7; i++ {
		seq = append(seq, w.Pick(0))
	}
	want := []int{0, 0, 1, 0, 2, 0, 0}
	for i := range want {
		if seq[i] != want[i] {
			t.Fatalf("sequence %v, want %v", seq, want)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New("round_robin", nil); err == nil {
		t.Error("no targets accepted")
	}
	if _, err := New("fastest", targets(1)); err == nil {
		t.Error("unknown balancer accepted")
	}
}

func TestInFlight(t *testing.T) {
	tg := &Target{}
	tg.Begin()
	tg.Begin()
	tg.Done()
	if tg.InFlight() != 1 {
		t.Fatalf("in flight = %d", tg.InFlight())
	}
}
