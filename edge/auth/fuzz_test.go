package auth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify: arbitrary bytes as a token never panic, and anything that
// is not a validly signed token is refused with a reason.
func FuzzVerify(f *testing.F) {
	v := newVerifier(f)
	f.Add([]byte(sign(f, jwt.SigningMethodHS256, "hs", hsSecret, claims(nil))))
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(".."))
	f.Fuzz(func(t *testing.T, raw []byte) {
		id, reason := v.Verify(raw)
		if (id == nil) == (reason == "") {
			t.Fatalf("identity %v with reason %q", id, reason)
		}
	})
}

// FuzzParseJWKS: arbitrary JWKS documents never panic.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
	})
}

// FuzzLooksLikeKeyAndLookup: arbitrary API keys never panic a lookup.
func FuzzLookup(f *testing.F) {
	dir := f.TempDir()
	s, err := OpenFileStore(dir + "/k.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("sluice_AAAA"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := s.Lookup(raw, time.Now()); err == nil {
			t.Fatal("an empty store found a key")
		}
		_ = LooksLikeKey(raw)
	})
}
