package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	hsSecret         = []byte("0123456789abcdef0123456789abcdef")
	rsaKey           = mustRSA()
	ecKey, _         = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ = ed25519.GenerateKey(rand.Reader)
)

func mustRSA() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

func sign(t testing.TB, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(extra map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "alice", "iss": "https://idp.example", "aud": "api", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"roles": []string{"reader"}}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func newVerifier(t testing.TB) *Verifier {
	hs, _ := NewKey("hs", "HS256", hsSecret)
	rs, _ := NewKey("rsa", "", &rsaKey.PublicKey)
	es, _ := NewKey("ec", "ES256", &ecKey.PublicKey)
	ed, _ := NewKey("ed", "EdDSA", edPub)
	v, err := NewVerifier(VerifierConfig{
		Keys: []*Key{hs, rs, es, ed}, Issuer: "https://idp.example", Audience: []string{"api", "api2"},
		Leeway: 5 * time.Second, RequiredClaims: []string{"sub"}, RolesClaim: "roles",
		Forward: map[string]string{"sub": "X-User-ID", "email": "X-User-Email"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyTable(t *testing.T) {
	v := newVerifier(t)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rsaKey.PublicKey))})
	good := sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(nil))
	parts := strings.Split(good, ".")
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","iss":"https://idp.example","aud":"api","exp":9999999999,"roles":["admin"]}`))
	cases := []struct {
		name  string
		token string
		want  Reason
	}{
		{"HS256", good, ""},
		{"RS256", sign(t, jwt.SigningMethodRS256, "rsa", rsaKey, claims(nil)), ""},
		{"PS256", sign(t, jwt.SigningMethodPS256, "rsa", rsaKey, claims(nil)), ""},
		{"ES256", sign(t, jwt.SigningMethodES256, "ec", ecKey, claims(nil)), ""},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, "ed", edPriv, claims(nil)), ""},
		{"audience in a list", sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"aud": []string{"other", "api2"}})), ""},
		{"alg none", sign(t, jwt.SigningMethodNone, "hs", jwt.UnsafeAllowNoneSignatureType, claims(nil)), ReasonAlgorithm},
		{"HS256 signed with the RSA public key (key confusion)", sign(t, jwt.SigningMethodHS256, "rsa", rsaPEM, claims(nil)), ReasonAlgorithm},
		{"ES256 token naming the RSA key", sign(t, jwt.SigningMethodES256, "rsa", ecKey, claims(nil)), ReasonAlgorithm},
		{"expired", sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()})), ReasonExpired},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"exp": time.Now().Add(-2 * time.Second).Unix()})), ""},
		{"nbf in the future", sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"nbf": time.Now().Add(time.Minute).Unix()})), ReasonNotYet},
		{"iat in the future", sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"iat": time.Now().Add(time.Minute).Unix()})), ReasonIssuedLater},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"iss": "https://evil"})), ReasonIssuer},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"aud": "other"})), ReasonAudience},
		{"missing sub", sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"sub": nil})), ReasonClaim},
		{"tampered payload", parts[0] + "." + tamperedPayload + "." + parts[2], ReasonSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), ReasonSignature},
		{"non-canonical base64 in the signature", parts[0] + "." + parts[1] + "." + noncanonical(parts[2]), ReasonMalformed},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, "nope", hsSecret, claims(nil)), ReasonUnknownKey},
		{"kid with path traversal", sign(t, jwt.SigningMethodHS256, "../../../../etc/passwd", hsSecret, claims(nil)), ReasonUnknownKey},
		{"no kid and no kid-less key", sign(t, jwt.SigningMethodHS256, "", hsSecret, claims(nil)), ReasonUnknownKey},
		{"16 KiB token", good + strings.Repeat("A", 16<<10), ReasonTooLarge},
		{"malformed base64", "eyJ!!!.e30.sig", ReasonMalformed},
		{"not a jwt", "hello", ReasonMalformed},
		{"empty", "", ReasonMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, reason := v.Verify([]byte(c.token))
			if reason != c.want {
				t.Fatalf("reason %q, want %q", reason, c.want)
			}
			if c.want == "" && (id == nil || id.Subject != "alice") {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

// signRaw signs header and payload exactly as written with the "hs" key,
// so a test can put into a validly signed token what no JSON encoder
// would produce (duplicate names, escapes, crit).
func signRaw(t testing.TB, header, payload string) string {
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(in, hsSecret)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Tokens whose signature is good but whose JSON is ambiguous, or whose
// header demands an extension sluice does not implement. Before the fix
// the last duplicate won and crit was ignored, so most of these verified.
func TestVerifyRefusesDuplicateMembersAndCriticalExtensions(t *testing.T) {
	v := newVerifier(t)
	exp := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	const hdr = `{"alg":"HS256","kid":"hs","typ":"JWT"}`
	const base = `"sub":"alice","iss":"https://idp.example","aud":"api"`
	body := func(extra string) string { return `{` + base + `,"exp":` + exp + extra + `}` }
	nested := func(depth int) string {
		return `{` + base + `,"exp":` + exp + `,"n":` + strings.Repeat(`[`, depth-1) + strings.Repeat(`]`, depth-1) + `}`
	}
	many := func(n int, dup bool) string {
		var b strings.Builder
		b.WriteString(`{` + base + `,"exp":` + exp)
		for i := range n {
			fmt.Fprintf(&b, `,"m%d":0`, i)
		}
		if dup {
			b.WriteString(`,"m7":1`)
		}
		b.WriteString(`}`)
		return b.String()
	}
	cases := []struct {
		name            string
		header, payload string
		want            Reason
	}{
		{"control: the same token without duplicates verifies", hdr, body(""), ""},

		// RFC 7519 section 4: claim names MUST be unique; sluice rejects.
		{"RFC 7519 4: exp twice, the last one far in the future", hdr, `{` + base + `,"exp":1,"exp":9999999999}`, ReasonMalformed},
		{"RFC 7519 4: exp twice, the last one long past", hdr, `{` + base + `,"exp":9999999999,"exp":1}`, ReasonMalformed},
		{"RFC 7519 4: sub twice", hdr, body(`,"sub":"admin"`), ReasonMalformed},
		{"RFC 7519 4: roles twice", hdr, body(`,"roles":["reader"],"roles":["admin"]`), ReasonMalformed},
		{`RFC 7519 4 / RFC 8259 7: "e\u0078p" is exp`, hdr, `{` + base + `,"exp":1,"e\u0078p":9999999999}`, ReasonMalformed},
		{`RFC 8259 7: "\u0073\u0075\u0062" is sub`, hdr, body(`,"\u0073\u0075\u0062":"admin"`), ReasonMalformed},
		{"RFC 8259 7: lone surrogates read as the same name (U+FFFD) by encoding/json", hdr, body(`,"\ud800":1,"\udbff":2`), ReasonMalformed},
		{"RFC 8259 7: a surrogate pair is one character, distinct from U+FFFD", hdr, body(`,"\ud83d\ude00":1,"\ufffd":2`), ""},
		{"RFC 7519 4: duplicates in a nested object (read by services upstream)", hdr, body(`,"realm_access":{"roles":["reader"],"roles":["admin"]}`), ReasonMalformed},
		{"RFC 7519 4: duplicates in an object inside an array", hdr, body(`,"orgs":[{"id":1},{"id":2,"id":3}]`), ReasonMalformed},
		{"RFC 7519 4: one name in two different objects is fine", hdr, body(`,"a":{"n":1},"b":{"n":2,"m":{"n":3}}`), ""},
		{"RFC 7519 4: claims differing in case are distinct names", hdr, body(`,"EXP":1`), ""},
		{"RFC 7519 4: 300 distinct claims verify", hdr, many(300, false), ""},
		{"RFC 7519 4: 300 claims with one duplicate", hdr, many(300, true), ReasonMalformed},
		{"RFC 7515 4 / RFC 8259 4: alg twice, none then HS256", `{"alg":"none","alg":"HS256","kid":"hs"}`, body(""), ReasonMalformed},
		{"RFC 7515 4: kid twice", `{"alg":"HS256","kid":"nope","kid":"hs"}`, body(""), ReasonMalformed},
		{`RFC 7515 4: "\u0061lg" is alg`, `{"alg":"HS256","\u0061lg":"HS256","kid":"hs"}`, body(""), ReasonMalformed},
		{"RFC 7519 7.2 step 10 / RFC 8259 8.1: invalid UTF-8 in a claim", hdr, body(",\"n\xff\":1"), ReasonMalformed},
		{"claims nested 32 deep verify", hdr, nested(32), ""},
		{"claims nested 33 deep are refused", hdr, nested(33), ReasonMalformed},

		// RFC 7515 section 4.1.11: an extension in crit that the recipient
		// does not understand makes the JWS invalid; sluice understands none.
		{"RFC 7515 4.1.11: crit names a private extension", `{"alg":"HS256","kid":"hs","crit":["exp.example"],"exp.example":1}`, body(""), ReasonCritical},
		{"RFC 7515 4.1.11 / RFC 7797 6: crit names b64 (unencoded payload)", `{"alg":"HS256","kid":"hs","b64":false,"crit":["b64"]}`, body(""), ReasonCritical},
		{`RFC 7515 4.1.11: "\u0063rit" is crit`, `{"alg":"HS256","kid":"hs","\u0063rit":["ext"],"ext":1}`, body(""), ReasonCritical},
		{"RFC 7515 4.1.11: crit must not be empty", `{"alg":"HS256","kid":"hs","crit":[]}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit must be an array", `{"alg":"HS256","kid":"hs","crit":"ext","ext":1}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit must not be null", `{"alg":"HS256","kid":"hs","crit":null}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit members must be strings", `{"alg":"HS256","kid":"hs","crit":[1]}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit must not name a registered parameter", `{"alg":"HS256","kid":"hs","crit":["alg"]}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit must not name itself", `{"alg":"HS256","kid":"hs","crit":["crit"]}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit must not repeat a name", `{"alg":"HS256","kid":"hs","crit":["ext","ext"],"ext":1}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit must name parameters the header carries", `{"alg":"HS256","kid":"hs","crit":["ext"]}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit twice", `{"alg":"HS256","kid":"hs","crit":["ext"],"crit":["ext"],"ext":1}`, body(""), ReasonMalformed},
		{"RFC 7515 4.1.11: crit is a header parameter; a claim named crit means nothing", hdr, body(`,"crit":["ext"]`), ""},
		{"RFC 7515 4.1.11: crit inside a nested header object means nothing", `{"alg":"HS256","kid":"hs","x":{"crit":["ext"]}}`, body(""), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, reason := v.Verify([]byte(signRaw(t, c.header, c.payload)))
			if reason != c.want {
				t.Fatalf("reason %q, want %q", reason, c.want)
			}
			if c.want == "" && (id == nil || id.Subject != "alice") {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

// The checks run before the signature's (RFC 7515 section 5.2 steps 3 to
// 5 before step 8): a forged token with duplicate claims is refused as
// malformed, not verified, and a crit one as unsupported.
func TestShapeChecksComeBeforeTheSignature(t *testing.T) {
	v := newVerifier(t)
	tok := signRaw(t, `{"alg":"HS256","kid":"hs"}`, `{"sub":"a","sub":"b"}`)
	forged := tok[:strings.LastIndexByte(tok, '.')+1] + strings.Repeat("A", 43)
	if _, r := v.Verify([]byte(forged)); r != ReasonMalformed {
		t.Errorf("duplicate claims with a bad signature: %q", r)
	}
	tok = signRaw(t, `{"alg":"HS256","kid":"hs","crit":["ext"],"ext":1}`, `{"sub":"a"}`)
	forged = tok[:strings.LastIndexByte(tok, '.')+1] + strings.Repeat("A", 43)
	if _, r := v.Verify([]byte(forged)); r != ReasonCritical {
		t.Errorf("crit with a bad signature: %q", r)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestIdentityRolesAndForwardedClaims(t *testing.T) {
	v := newVerifier(t)
	tok := sign(t, jwt.SigningMethodHS256, "hs", hsSecret, claims(map[string]any{"roles": []string{"reader", "writer"}, "email": "a@x\r\nX-Admin: 1"}))
	id, reason := v.Verify([]byte(tok))
	if reason != "" {
		t.Fatal(reason)
	}
	if !id.HasRoles([]string{"writer", "admin"}, false) || id.HasRoles([]string{"writer", "admin"}, true) || !id.HasRoles([]string{"reader", "writer"}, true) {
		t.Errorf("roles %v", id.Roles)
	}
	headers := map[string]string{}
	for _, kv := range id.Headers {
		headers[string(kv[0])] = string(kv[1])
	}
	if headers["X-User-ID"] != "alice" || headers["X-User-Email"] != "a@xX-Admin: 1" {
		t.Errorf("forwarded headers %q (control characters must be dropped)", headers)
	}
	// "scope" as a space-separated string.
	sv, _ := NewVerifier(VerifierConfig{Keys: []*Key{must2(NewKey("", "HS256", hsSecret))}, RolesClaim: "scope"})
	id, _ = sv.Verify([]byte(sign(t, jwt.SigningMethodHS256, "", hsSecret, jwt.MapClaims{"scope": "read write", "exp": time.Now().Add(time.Hour).Unix()})))
	if id == nil || len(id.Roles) != 2 || id.Roles[1] != "write" {
		t.Errorf("scope roles %+v", id)
	}
}

func must2(k *Key, err error) *Key {
	if err != nil {
		panic(err)
	}
	return k
}

func TestNewKeyPinsTheFamily(t *testing.T) {
	if _, err := NewKey("x", "RS256", hsSecret); err == nil {
		t.Error("RS256 accepted for a secret")
	}
	if _, err := NewKey("x", "HS256", &rsaKey.PublicKey); err == nil {
		t.Error("HS256 accepted for an RSA key")
	}
	if _, err := NewKey("x", "ES384", &ecKey.PublicKey); err == nil {
		t.Error("ES384 accepted for a P-256 key")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewKey("x", "RS256", &small.PublicKey); err == nil {
		t.Error("a 1024-bit RSA key accepted")
	}
	if _, err := NewVerifier(VerifierConfig{Keys: []*Key{must2(NewKey("", "HS256", hsSecret))}, Algorithms: []string{"none"}}); err == nil {
		t.Error(`"none" accepted in the allow-list`)
	}
}

func TestCacheKeepsTokensUntilTheyExpire(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	v, _ := NewVerifier(VerifierConfig{Keys: []*Key{must2(NewKey("", "HS256", hsSecret))}, Now: clock})
	tok := []byte(sign(t, jwt.SigningMethodHS256, "", hsSecret, jwt.MapClaims{"sub": "a", "exp": now.Add(time.Minute).Unix()}))
	first, _ := v.Verify(tok)
	second, _ := v.Verify(tok)
	if first == nil || first != second {
		t.Fatal("second verify of the same token was not served from the cache")
	}
	// A token differing in one byte of its payload must not verify.
	other := append([]byte(nil), tok...)
	dot := strings.IndexByte(string(other), '.')
	other[dot+3] ^= 1
	if id, _ := v.Verify(other); id != nil {
		t.Fatal("a modified token verified")
	}
	now = now.Add(2 * time.Minute)
	if id, reason := v.Verify(tok); id != nil || reason != ReasonExpired {
		t.Fatalf("expired token served from the cache: %v %q", id, reason)
	}
}

func jwksJSON(t *testing.T, keys map[string]*rsa.PublicKey) []byte {
	var list []map[string]string
	for kid, k := range keys {
		list = append(list, map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
	}
	b, _ := json.Marshal(map[string]any{"keys": list})
	return b
}

func TestJWKSRotationFailureAndRateLimit(t *testing.T) {
	k1, k2 := rsaKey, mustRSA()
	var body atomic.Pointer[[]byte]
	var failing atomic.Bool
	var hits atomic.Int32
	b := jwksJSON(t, map[string]*rsa.PublicKey{"k1": &k1.PublicKey})
	body.Store(&b)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			http.Error(w, "down", 500)
			return
		}
		_, _ = w.Write(*body.Load())
	}))
	defer srv.Close()
	j := &JWKS{URL: srv.URL, Refresh: time.Hour, MinInterval: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	j.Start()
	defer j.Stop()
	v, err := NewVerifier(VerifierConfig{JWKS: j})
	if err != nil {
		t.Fatal(err)
	}
	if _, r := v.Verify([]byte(sign(t, jwt.SigningMethodRS256, "k1", k1, claims(nil)))); r != "" {
		t.Fatalf("k1: %q", r)
	}
	// The provider rotates to k2: a token with the new kid triggers a refresh.
	b2 := jwksJSON(t, map[string]*rsa.PublicKey{"k2": &k2.PublicKey})
	body.Store(&b2)
	time.Sleep(250 * time.Millisecond)
	tok2 := []byte(sign(t, jwt.SigningMethodRS256, "k2", k2, claims(nil)))
	if _, r := v.Verify(tok2); r != "" {
		t.Fatalf("k2 after rotation: %q", r)
	}
	// Unknown kids don't hammer the provider: at most one refresh per interval.
	before := hits.Load()
	for i := 0; i < 20; i++ {
		v.Verify([]byte(sign(t, jwt.SigningMethodRS256, "ghost", k2, claims(map[string]any{"n": i}))))
	}
	if n := hits.Load() - before; n > 1 {
		t.Errorf("20 unknown kids caused %d fetches", n)
	}
	// The provider fails: the last good keys stay.
	failing.Store(true)
	time.Sleep(250 * time.Millisecond)
	v.Verify([]byte(sign(t, jwt.SigningMethodRS256, "ghost2", k2, claims(nil)))) // forces a (failing) refresh
	if _, r := v.Verify([]byte(sign(t, jwt.SigningMethodRS256, "k2", k2, claims(map[string]any{"jti": "fresh"})))); r != "" {
		t.Fatalf("after a failed refresh the last good keys must stay: %q", r)
	}
}

func TestParseJWKSSkipsWhatItCantUse(t *testing.T) {
	x := base64.RawURLEncoding.EncodeToString(edPub)
	data := `{"keys":[
	  {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"` + x + `"},
	  {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
	  {"kty":"oct","kid":"sym","k":"c2VjcmV0"},
	  {"kty":"EC","kid":"bad","crv":"P-256","x":"AA","y":"AA"}
	]}`
	keys, err := ParseJWKS([]byte(data))
	if err != nil || len(keys) != 1 || keys["ed"] == nil {
		t.Fatalf("keys %v, %v", keys, err)
	}
	for _, bad := range []string{"", "{", `{"keys":[]}`, `{"keys":[{"kty":"RSA","kid":"x","n":"!!","e":"AQAB"}]}`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// noncanonical sets the unused low bits of the last base64url character,
// which lenient decoders ignore.
func noncanonical(sig string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	return sig[:len(sig)-1] + string(alphabet[last|1])
}
