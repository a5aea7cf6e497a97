package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// Every file in examples/ passes `sluice validate` as shipped, with only
// the admin password from the environment (everything else has a
// default): a new example is covered by being there.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testutil.ModuleRoot(t), "examples", "*.yaml"))
	if err != nil || len(files) < 8 {
		t.Fatalf("examples: %v %v", files, err)
	}
	t.Setenv("SLUICE_ADMIN_PASSWORD", "example")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"validate", "-c", f}, &out, &errb); code != 0 || out.String() != "ok\n" {
				t.Errorf("sluice validate -c %s: exit %d\n%s%s", f, code, out.String(), errb.String())
			}
		})
	}
}

// examples/jwt.yaml works as its comment says: a token minted by `sluice
// token` with the shipped test private key is accepted by a real sluice
// verifying with the shipped public key; roles are enforced. The JWKS URL
// points at a dead loopback port (sluice starts anyway).
func TestJWTExampleServes(t *testing.T) {
	root := testutil.ModuleRoot(t)
	example := filepath.Join(root, "examples", "jwt.yaml")
	priv := filepath.Join(root, "examples", "keys", "test-only-rs256-private.pem")
	src, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	up := testutil.StartUpstream(t, stub.Options{Name: "orders"})
	s := testutil.StartSluice(t, string(src), "SLUICE_ADMIN_PASSWORD=example",
		"SLUICE_LISTEN=127.0.0.1:0", "SLUICE_ADMIN_LISTEN=127.0.0.1:0", "ORDERS_UPSTREAM="+up.Addr,
		"JWKS_URL=http://"+testutil.DeadAddr(t)+"/jwks.json",
		"JWT_PUBLIC_KEY_FILE="+filepath.Join(root, "examples", "keys", "test-only-rs256-public.pem"))

	t.Setenv("SLUICE_ADMIN_PASSWORD", "example") // sluice token reads the same config
	token := func(roles string) string {
		var out, errb bytes.Buffer
		if code := run([]string{"token", "-c", example, "-key", "rs1", "-sub", "alice", "-roles", roles, "-private-key", priv}, &out, &errb); code != 0 {
			t.Fatalf("sluice token: %d %s", code, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	do := func(method, bearer string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+s.Addr+"/api/orders/7", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := do("GET", token("reader")); code != 200 || !strings.Contains(body, `"uri":"/orders/7"`) {
		t.Errorf("GET with a reader token: %d %s", code, body)
	}
	if code, _ := do("GET", ""); code != 401 {
		t.Errorf("GET without a token: %d", code)
	}
	if code, _ := do("POST", token("reader")); code != 403 {
		t.Errorf("POST with only reader: %d, want 403 (roles_match: all)", code)
	}
	if code, body := do("POST", token("reader,writer")); code != 200 {
		t.Errorf("POST with reader and writer: %d %s", code, body)
	}
}

// examples/cache.yaml works as its comment and README "Response cache"
// say, on the real binary with a real redis-server: a second GET is a
// hit (the upstream saw one request), a purge through the admin API
// empties it, and the next GET is a miss again.
func TestCacheExampleServes(t *testing.T) {
	root := testutil.ModuleRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "examples", "cache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rd := testutil.StartRedis(t)
	up := testutil.StartUpstream(t, stub.Options{Name: "catalogue"})
	s := testutil.StartSluice(t, string(src), "SLUICE_ADMIN_PASSWORD=example",
		"SLUICE_LISTEN=127.0.0.1:0", "SLUICE_ADMIN_LISTEN=127.0.0.1:0", "CATALOGUE_UPSTREAM="+up.Addr, "REDIS_ADDR="+rd.Addr)
	get := func() string {
		resp, err := http.Get("http://" + s.Addr + "/api/products/7?utm_source=mail")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
		return resp.Header.Get("Cache-Status")
	}
	if cs := get(); cs != "sluice; fwd=miss; stored" {
		t.Fatalf("first GET: Cache-Status %q", cs)
	}
	if cs := get(); !strings.HasPrefix(cs, "sluice; hit; ttl=") {
		t.Fatalf("second GET: Cache-Status %q, want a hit", cs)
	}
	req, _ := http.NewRequest("POST", "http://"+s.AdminAddr+"/admin/cache/purge", strings.NewReader(`{"prefix": "GET "}`))
	req.SetBasicAuth("admin", "example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(b.String(), `"purged": 1`) {
		t.Fatalf("purge: %d %s", resp.StatusCode, b.String())
	}
	if cs := get(); cs != "sluice; fwd=miss; stored" {
		t.Fatalf("GET after the purge: Cache-Status %q, want a miss", cs)
	}
}
