package edge

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/internal/testutil"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func hsToken(t testing.TB, sub string, roles []string, ttl time.Duration) string {
	return signHS(t, map[string]any{"sub": sub, "roles": roles, "exp": time.Now().Add(ttl).Unix()})
}

func authGateway(t *testing.T) (*testGateway, *testutil.Upstream) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	keys := filepath.Join(t.TempDir(), "keys.json")
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
auth:
  jwt:
    keys: [ { id: k1, algorithm: HS256, secret: "%s" } ]
    issuer: https://idp.test
    audience: [api]
    forward_claims: { sub: X-User-ID }
  api_keys: { file: "%s" }
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
  - { name: public, match: { prefix: /public/ }, upstream: up, rewrite: { replace_path: /__stub/echo } }
  - { name: jwt, match: { prefix: /jwt/ }, upstream: up, auth: jwt, roles: [reader], rewrite: { replace_path: /__stub/echo } }
  - { name: admin, match: { prefix: /admin-only/ }, upstream: up, auth: jwt, roles: [admin, ops], roles_match: all }
  - { name: key, match: { prefix: /key/ }, upstream: up, auth: api_key, roles: [reader], rewrite: { replace_path: /__stub/echo } }
  - { name: any, match: { prefix: /any/ }, upstream: up, auth: any, rewrite: { replace_path: /__stub/echo } }
`, testSecret, keys, up.URL))
	return g, up
}

func TestAuthOnRoutes(t *testing.T) {
	g, _ := authGateway(t)
	reader := hsToken(t, "alice", []string{"reader"}, time.Hour)

	// Public: no credentials needed, and a client can't forge identity headers.
	e, _ := g.echo(t, request{path: "/public/x", headers: map[string]string{"X-User-ID": "mallory", "X-API-Key-ID": "forged"}})
	if e.Headers["X-User-Id"] != nil || e.Headers["X-Api-Key-Id"] != nil {
		t.Errorf("client-sent identity headers reached the upstream: %v", e.Headers)
	}

	// JWT.
	r := g.get(t, "/jwt/x")
	wantFault(t, r, 401, "missing token")
	if r.header.Get("WWW-Authenticate") != `Bearer realm="sluice"` {
		t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	expired := hsToken(t, "alice", []string{"reader"}, -time.Hour)
	r = g.do(t, request{path: "/jwt/x", headers: map[string]string{"Authorization": "Bearer " + expired}})
	wantFault(t, r, 401, "token expired")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token", error_description="token expired"`) {
		t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	if strings.Contains(r.body, expired) || strings.Contains(r.body, expired[:20]) {
		t.Error("the token was echoed in the error")
	}
	e, _ = g.echo(t, request{path: "/jwt/x", headers: map[string]string{"Authorization": "Bearer " + reader, "X-User-ID": "mallory"}})
	if got := e.Headers["X-User-Id"]; len(got) != 1 || got[0] != "alice" {
		t.Errorf("X-User-ID upstream %v, want [alice] (the client's copy replaced)", got)
	}
	r = g.do(t, request{path: "/admin-only/x", headers: map[string]string{"Authorization": "Bearer " + reader}})
	wantFault(t, r, 403, "insufficient role")
	if !strings.Contains(r.header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("403 WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	both := hsToken(t, "root", []string{"admin", "ops"}, time.Hour)
	if r := g.do(t, request{path: "/admin-only/x", headers: map[string]string{"Authorization": "Bearer " + both}}); r.status != 200 {
		t.Errorf("token with all roles: %d", r.status)
	}

	// API keys.
	rec, raw, err := g.KeyStore().Create(context.Background(), auth.KeySpec{Name: "svc", Roles: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	wantFault(t, g.get(t, "/key/x"), 401, "missing credentials")
	wantFault(t, g.do(t, request{path: "/key/x", headers: map[string]string{"X-API-Key": "sluice_nope"}}), 401, "invalid api key")
	for _, hdr := range []map[string]string{{"X-API-Key": raw}, {"Authorization": "Bearer " + raw}} {
		e, _ := g.echo(t, request{path: "/key/x", headers: hdr})
		if e.Headers["X-Api-Key"] != nil || e.Headers["Authorization"] != nil {
			t.Errorf("the api key was forwarded upstream: %v", e.Headers)
		}
		if got := e.Headers["X-Api-Key-Id"]; len(got) != 1 || got[0] != rec.ID {
			t.Errorf("X-API-Key-ID %v, want %s", got, rec.ID)
		}
	}
	// An API key and a bearer token together: the gateway checks one, the
	// upstream might believe the other (a forged JWT reached the upstream
	// on api_key and any routes before). Refused on every authenticated route.
	forged := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290Iiwicm9sZXMiOlsiYWRtaW4iXX0."
	for _, path := range []string{"/key/x", "/any/x", "/jwt/x"} {
		bearer := forged
		if path == "/jwt/x" {
			bearer = reader // a valid JWT with an unverified key beside it
		}
		r := g.do(t, request{path: path, headers: map[string]string{"X-API-Key": raw, "Authorization": "Bearer " + bearer}})
		wantFault(t, r, 400, "more than one credential header")
	}
	// RFC 9110 7.6.1 lets a client name headers in Connection for removal;
	// the identity headers sluice sets after auth are not among those it
	// can remove (found in review), on any of the Connection lines.
	rawResp := testutil.RawExchange(t, g.addr, "GET /key/__stub/echo HTTP/1.1\r\nHost: x\r\nX-API-Key: "+raw+
		"\r\nConnection: keep-alive\r\nConnection: X-API-Key-ID, X-Gone\r\nX-Gone: 1\r\n\r\n")
	if !strings.Contains(rawResp, `"X-Api-Key-Id":["`+rec.ID+`"]`) || strings.Contains(rawResp, "X-Gone") {
		t.Errorf("want X-API-Key-ID kept and X-Gone (named on the second Connection line) removed:\n%s", rawResp)
	}
	_, norole, _ := g.KeyStore().Create(context.Background(), auth.KeySpec{Name: "other"})
	wantFault(t, g.do(t, request{path: "/key/x", headers: map[string]string{"X-API-Key": norole}}), 403, "insufficient role")
	if _, err := g.KeyStore().Revoke(context.Background(), rec.ID); err != nil {
		t.Fatal(err)
	}
	wantFault(t, g.do(t, request{path: "/key/x", headers: map[string]string{"X-API-Key": raw}}), 401, "invalid api key")

	// any: either works, nothing doesn't.
	if r := g.do(t, request{path: "/any/x", headers: map[string]string{"Authorization": "Bearer " + reader}}); r.status != 200 {
		t.Errorf("any with a JWT: %d", r.status)
	}
	if r := g.do(t, request{path: "/any/x", headers: map[string]string{"X-API-Key": norole}}); r.status != 200 {
		t.Errorf("any with an api key: %d", r.status)
	}
	wantFault(t, g.get(t, "/any/x"), 401, "missing token")

	// Two credentials of a kind: refused.
	raw2 := testutil.RawExchange(t, g.addr, "GET /jwt/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+reader+
		"\r\nAuthorization: Bearer "+both+"\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(raw2, "HTTP/1.1 400") || !strings.Contains(raw2, "more than one credential header") {
		t.Errorf("duplicate Authorization:\n%s", raw2)
	}
}

func signHS(t testing.TB, extra map[string]any) string {
	c := jwt.MapClaims{"sub": "alice", "iss": "https://idp.test", "aud": "api", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
