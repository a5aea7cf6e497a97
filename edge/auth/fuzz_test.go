package auth

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify: arbitrary bytes as a token never panic; anything that is
// not a validly signed token is refused with a reason; and nothing is
// accepted whose header or claims repeat a member name (RFC 7519 section
// 4, RFC 7515 section 4) or whose header has crit (RFC 7515 section
// 4.1.11: sluice understands no extension). The seeds include validly
// signed tokens of both kinds, so the seed run alone catches a verifier
// that lets them through.
func FuzzVerify(f *testing.F) {
	v := newVerifier(f)
	exp := strconv.FormatInt(time.Now().Add(24*time.Hour).Unix(), 10)
	const hdr = `{"alg":"HS256","kid":"hs"}`
	const base = `"sub":"alice","iss":"https://idp.example","aud":"api"`
	f.Add([]byte(sign(f, jwt.SigningMethodHS256, "hs", hsSecret, claims(nil))))
	f.Add([]byte(signRaw(f, hdr, `{`+base+`,"exp":`+exp+`}`)))
	f.Add([]byte(signRaw(f, hdr, `{`+base+`,"exp":1,"exp":`+exp+`}`)))
	f.Add([]byte(signRaw(f, hdr, `{`+base+`,"exp":1,"e\u0078p":`+exp+`}`)))
	f.Add([]byte(signRaw(f, hdr, `{`+base+`,"exp":`+exp+`,"r":{"roles":["a"],"roles":["b"]}}`)))
	f.Add([]byte(signRaw(f, `{"alg":"none","alg":"HS256","kid":"hs"}`, `{`+base+`,"exp":`+exp+`}`)))
	f.Add([]byte(signRaw(f, `{"alg":"HS256","kid":"hs","crit":["ext"],"ext":1}`, `{`+base+`,"exp":`+exp+`}`)))
	f.Add([]byte(signRaw(f, `{"alg":"HS256","kid":"hs","\u0063rit":["b64"],"b64":false}`, `{`+base+`,"exp":`+exp+`}`)))
	f.Add([]byte(signRaw(f, `{"alg":"HS256","kid":"hs","crit":[]}`, `{`+base+`,"exp":`+exp+`}`)))
	f.Add([]byte("eyJhbGciOiJub25lIn0.e30."))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(".."))
	f.Fuzz(func(t *testing.T, raw []byte) {
		id, reason := v.Verify(raw)
		if (id == nil) == (reason == "") {
			t.Fatalf("identity %v with reason %q", id, reason)
		}
		if id == nil {
			return
		}
		parts := strings.Split(string(raw), ".")
		header, _ := base64.RawURLEncoding.DecodeString(parts[0])
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		if dup, crit, _ := refMembers(header); dup || crit {
			t.Fatalf("accepted a header with a duplicate name (%v) or crit (%v): %s", dup, crit, header)
		}
		if dup, _, _ := refMembers(payload); dup {
			t.Fatalf("accepted claims with a duplicate name: %s", payload)
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
