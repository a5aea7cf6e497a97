package auth

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// go test ./edge/auth -run '^$' -bench Verify -benchmem
func BenchmarkVerifyRS256(b *testing.B) {
	b.Run("uncached", func(b *testing.B) {
		v, _ := NewVerifier(VerifierConfig{Keys: []*Key{must2(NewKey("rsa", "RS256", &rsaKey.PublicKey))}, CacheSize: 1})
		toks := make([][]byte, 64)
		for i := range toks {
			toks[i] = []byte(sign(b, jwt.SigningMethodRS256, "rsa", rsaKey, claims(map[string]any{"n": i})))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			// CacheSize 1 over 64 distinct tokens: (nearly) every call verifies.
			if _, r := v.Verify(toks[i%64]); r != "" {
				b.Fatal(r)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		v, _ := NewVerifier(VerifierConfig{Keys: []*Key{must2(NewKey("rsa", "RS256", &rsaKey.PublicKey))}})
		tok := []byte(sign(b, jwt.SigningMethodRS256, "rsa", rsaKey, claims(nil)))
		v.Verify(tok)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, r := v.Verify(tok); r != "" {
					b.Fatal(r)
				}
			}
		})
	})
}

// BenchmarkCheckShape is the duplicate and crit scan a cache miss adds
// before the signature check: a typical IdP token's header and claims.
func BenchmarkCheckShape(b *testing.B) {
	tok := []byte(sign(b, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{
		"email": "alice@example.com", "realm_access": map[string]any{"roles": []string{"reader", "writer"}},
		"scope": "openid profile email", "azp": "web", "sid": "6f1c2b9e-0d7a-4b1e-9c57-1f0f3a2d9b44",
	})))
	b.ReportAllocs()
	for b.Loop() {
		if r := checkShape(tok); r != "" {
			b.Fatal(r)
		}
	}
}
