package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

func authedGet(t *testing.T, url, header, value string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A key created through the admin API (here with `sluice keys`) is on disk
// before the API answers: kill -9 right after, restart, and it still works.
// Revoking and deleting through the CLI take effect at once.
func TestKeysCommandAndKill9(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, password: "${TEST_PW}" }
auth: { api_keys: { file: %q } }
upstreams: { up: { targets: [ { url: %q } ] } }
routes: [ { name: k, match: { prefix: /k/ }, upstream: up, auth: api_key } ]
`, keyFile, up.URL)
	s := testutil.StartSluice(t, cfg, "TEST_PW=pw")
	t.Setenv("SLUICE_ADMIN_PASSWORD", "pw")
	admin := "-admin=http://" + s.AdminAddr
	var out, errb bytes.Buffer
	if code := run([]string{"keys", "create", admin, "-name", "ci", "-roles", "reader", "-rate-limit", "5"}, &out, &errb); code != 0 {
		t.Fatalf("keys create: %d %s", code, errb.String())
	}
	_ = s.Cmd.Process.Signal(syscall.SIGKILL) // at once, no chance to flush anything
	if _, err := s.Wait(10e9); err != nil {
		t.Fatal(err)
	}
	var created struct {
		APIKey struct{ ID string } `json:"api_key"`
		RawKey string              `json:"raw_key"`
	}
	if err := json.Unmarshal(out.Bytes(), &created); err != nil || created.RawKey == "" {
		t.Fatalf("create output: %s", out.String())
	}
	if strings.Count(out.String(), created.RawKey) != 1 {
		t.Error("raw key shown more than once")
	}

	s2 := testutil.StartSluice(t, cfg, "TEST_PW=pw")
	data := "http://" + s2.Addr + "/k/x"
	if code := authedGet(t, data, "X-API-Key", created.RawKey); code != 200 {
		t.Fatalf("key created before kill -9: %d after restart", code)
	}
	admin = "-admin=http://" + s2.AdminAddr
	out.Reset()
	if code := run([]string{"keys", "list", admin}, &out, &errb); code != 0 || !strings.Contains(out.String(), `"name": "ci"`) ||
		strings.Contains(out.String(), created.RawKey) || strings.Contains(out.String(), "sha256") {
		t.Fatalf("keys list (%d) must show the key and never raw keys or hashes:\n%s", code, out.String())
	}
	if code := run([]string{"keys", "revoke", admin, created.APIKey.ID}, &out, &errb); code != 0 {
		t.Fatalf("revoke: %s", errb.String())
	}
	if code := authedGet(t, data, "X-API-Key", created.RawKey); code != 401 {
		t.Errorf("revoked key: %d", code)
	}
	if code := run([]string{"keys", "delete", admin, created.APIKey.ID}, &out, &errb); code != 0 {
		t.Fatalf("delete: %s", errb.String())
	}
	errb.Reset()
	if code := run([]string{"keys", "delete", admin, created.APIKey.ID}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "404") {
		t.Errorf("deleting twice: %d %s", code, errb.String())
	}
	t.Setenv("SLUICE_ADMIN_PASSWORD", "wrong")
	errb.Reset()
	if code := run([]string{"keys", "list", admin}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "401") {
		t.Errorf("wrong password: %d %s", code, errb.String())
	}
}

func TestTokenCommand(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	dir := t.TempDir()
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: mustBytes(x509.MarshalPKCS8PrivateKey(priv))})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustBytes(x509.MarshalPKIXPublicKey(&priv.PublicKey))})
	privFile := writeFile(t, dir, "priv.pem", string(privPEM))
	pubFile := writeFile(t, dir, "pub.pem", string(pubPEM))
	cfgPath := writeFile(t, dir, "sluice.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
auth:
  jwt:
    keys:
      - { id: hs, algorithm: HS256, secret: "0123456789abcdef0123456789abcdef" }
      - { id: rs, algorithm: RS256, public_key_file: %q }
    issuer: https://sluice.test
    audience: [api]
upstreams: { up: { targets: [ { url: %q } ] } }
routes: [ { name: j, match: { prefix: /j/ }, upstream: up, auth: jwt, roles: [reader] } ]
`, pubFile, up.URL))
	s := testutil.StartSluice(t, readFile(t, cfgPath))
	mint := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := run(append([]string{"token", "-c", cfgPath}, args...), &out, &errb); code != 0 {
			t.Fatalf("token %v: %d %s", args, code, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	for _, tok := range []string{
		mint("-sub", "bob", "-roles", "reader"),
		mint("-key", "rs", "-private-key", privFile, "-sub", "bob", "-roles", "reader,writer"),
	} {
		if code := authedGet(t, "http://"+s.Addr+"/j/x", "Authorization", "Bearer "+tok); code != 200 {
			t.Errorf("minted token refused: %d", code)
		}
	}
	if code := authedGet(t, "http://"+s.Addr+"/j/x", "Authorization", "Bearer "+mint("-sub", "bob", "-roles", "guest")); code != 403 {
		t.Errorf("token without the role: %d", code)
	}
	var errb bytes.Buffer
	if code := run([]string{"token", "-c", cfgPath, "-key", "rs"}, &bytes.Buffer{}, &errb); code != 1 || !strings.Contains(errb.String(), "-private-key") {
		t.Errorf("RS key without a private key: %d %s", code, errb.String())
	}
}

func mustBytes(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// Two sluice instances share a Redis key store: a key created through one
// works on the other; revoked through one, the other refuses it within a
// second; with Redis gone, the answer is 503, not 200 and not 401.
func TestRedisKeysAcrossInstances(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	r := testutil.StartRedis(t)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, password: pw }
redis: { addrs: [%q], timeout: 200ms }
auth: { api_keys: { store: redis } }
upstreams: { up: { targets: [ { url: %q } ] } }
routes: [ { name: k, match: { prefix: /k/ }, upstream: up, auth: api_key } ]
`, r.Addr, up.URL)
	a := testutil.StartSluice(t, cfg)
	b := testutil.StartSluice(t, cfg)
	t.Setenv("SLUICE_ADMIN_PASSWORD", "pw")
	var out, errb bytes.Buffer
	if code := run([]string{"keys", "create", "-admin=http://" + a.AdminAddr, "-name", "shared"}, &out, &errb); code != 0 {
		t.Fatalf("create: %s", errb.String())
	}
	var created struct {
		APIKey struct{ ID string } `json:"api_key"`
		RawKey string              `json:"raw_key"`
	}
	_ = json.Unmarshal(out.Bytes(), &created)
	onB := "http://" + b.Addr + "/k/x"
	if code := authedGet(t, onB, "X-API-Key", created.RawKey); code != 200 {
		t.Fatalf("key created on A, used on B: %d", code)
	}
	if code := run([]string{"keys", "revoke", "-admin=http://" + a.AdminAddr, created.APIKey.ID}, &out, &errb); code != 0 {
		t.Fatalf("revoke: %s", errb.String())
	}
	deadline := time.Now().Add(time.Second)
	for authedGet(t, onB, "X-API-Key", created.RawKey) != 401 {
		if time.Now().After(deadline) {
			t.Fatal("B still accepts the key 1s after A revoked it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Stop()
	if code := authedGet(t, onB, "X-API-Key", created.RawKey+"other"); code != 503 {
		t.Errorf("with Redis down: %d, want 503", code)
	}
}
