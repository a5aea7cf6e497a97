//go:build !race

package pathnorm

import "testing"

// Normalize runs on every request: it must allocate nothing, on the fast
// path, the slow path and the error paths alike, given a buffer with room.
func TestNormalizeAllocatesNothing(t *testing.T) {
	paths := map[string]Options{
		"/api/users/42":                   {},
		"/api/%7Eusers/./a/../42//x":      {},
		"/files/a%2fb/caf\u00e9":          {EscapedSlashes: Keep},
		"/files/a%2fb%5C":                 {EscapedSlashes: Decode},
		"/api/..%2F__stub/echo":           {},
		"/api/..;/__stub":                 {},
		"/api/%c0%ae%c0%ae/__stub":        {},
		"/..":                             {},
		"":                                {},
		"/api/%252e%252e%252f__stub/echo": {},
	}
	buf := make([]byte, 0, 256)
	for p, o := range paths {
		in := []byte(p)
		var info Info
		allocs := testing.AllocsPerRun(100, func() {
			_, info, _ = Normalize(buf[:0], in, o)
			_ = info.RejectErr()
		})
		if allocs != 0 {
			t.Errorf("Normalize(%q) allocates %v times per call", p, allocs)
		}
	}
}
