//go:build !race

package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestCachedVerifyAndKeyLookupAllocateNothing(t *testing.T) {
	v := newVerifier(t)
	tok := []byte(sign(t, jwt.SigningMethodRS256, "rsa", rsaKey, claims(nil)))
	v.Verify(tok)
	if n := testing.AllocsPerRun(1000, func() { v.Verify(tok) }); n != 0 {
		t.Errorf("cached verify: %.1f allocations", n)
	}
	s, _ := OpenFileStore(t.TempDir() + "/k.json")
	_, raw, _ := s.Create(t.Context(), KeySpec{Name: "a"})
	key := []byte(raw)
	if n := testing.AllocsPerRun(1000, func() { s.Lookup(key, time.Now()) }); n != 0 {
		t.Errorf("key lookup: %.1f allocations", n)
	}
}
