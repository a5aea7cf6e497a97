//go:build !race

package submatch

import "testing"

// Once its Scratch has grown, Find allocates nothing: matches, misses and
// unanchored searches.
func TestFindAllocatesNothing(t *testing.T) {
	p, err := Compile(`(?P<id>[0-9]+)(?P<rest>/[a-z]+)?`)
	if err != nil {
		t.Fatal(err)
	}
	var s Scratch
	for _, in := range []string{"/users/123456/posts", "/users/none"} {
		b := []byte(in)
		p.Find(&s, b)
		if n := testing.AllocsPerRun(1000, func() { p.Find(&s, b) }); n != 0 {
			t.Errorf("%q: %.1f allocations per Find, want 0", in, n)
		}
	}
}
