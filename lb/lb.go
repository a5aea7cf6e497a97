package lb

import "fmt"

// Pick is one choice to make.
type Pick struct {
	// Key is the request's hash for ip_hash and consistent_hash.
	Key uint64
	// Exclude is a bitmask of target indexes not to choose (targets already
	// tried by this request). Indexes >= 64 can't be excluded.
	Exclude uint64
	// PanicMode ignores health and ejection (the upstream's panic_mode,
	// used when no healthy target is left); open circuits still block.
	PanicMode bool
}

// Picker chooses one of the targets it was built over and returns its
// index, or -1 when none may be used.
type Picker interface {
	Pick(p Pick) int
}

// Options tune the pickers that have knobs.
type Options struct {
	// BoundedLoad, for consistent_hash, caps a target's in-flight requests
	// at BoundedLoad x the average before its keys spill to the next target
	// on the ring (Google's "consistent hashing with bounded loads").
	// 0 disables the cap.
	BoundedLoad float64
	// Names identify targets for the hash ring (their URLs). Ring points
	// depend on names, not positions, so removing one target moves only
	// its keys. Optional: without names, positions are used.
	Names []string
}

// Balancers this package builds.
var Balancers = []string{"round_robin", "weighted", "least_conn", "p2c_ewma", "ip_hash", "consistent_hash", "random"}

// New builds the named picker over targets (len >= 1).
func New(name string, targets []*Target, o Options) (Picker, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("lb: no targets")
	}
	switch name {
	case "round_robin":
		return &roundRobin{targets: targets}, nil
	case "weighted":
		return newWeighted(targets), nil
	case "random":
		return &random{targets: targets}, nil
	case "least_conn":
		return &leastConn{targets: targets}, nil
	case "p2c_ewma", "":
		return &p2c{targets: targets}, nil
	case "ip_hash", "consistent_hash":
		return newRing(targets, o.Names, o.BoundedLoad), nil
	}
	return nil, fmt.Errorf("lb: unknown balancer %q", name)
}

func excluded(p Pick, i int) bool { return i < 64 && p.Exclude&(1<<uint(i)) != 0 }

// candidate: usable, not excluded, and admitted by slow start.
func candidate(t *Target, p Pick, i int) bool {
	return !excluded(p, i) && t.usable(p.PanicMode) && t.admit()
}

// scanFrom returns the first candidate at or after start (wrapping), or -1.
// Slow start is ignored on this fallback path: a warming target is better
// than none.
func scanFrom(targets []*Target, p Pick, start int) int {
	n := len(targets)
	for k := 0; k < n; k++ {
		i := (start + k) % n
		if !excluded(p, i) && targets[i].usable(p.PanicMode) {
			return i
		}
	}
	return -1
}
