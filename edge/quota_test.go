package edge

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/limiter"
)

func TestQuotas(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
limits: { quota_file: %q }
auth: { api_keys: { file: %q } }
upstreams: { up: { targets: [ { url: %q } ] } }
routes:
  - { name: q, match: { prefix: /q/ }, upstream: up, auth: api_key, quota: { limit: 3, per: 24h } }
`, filepath.Join(dir, "quotas.json"), filepath.Join(dir, "keys.json"), up.URL)
	g := startGateway(t, cfg)
	a, rawA, _ := g.KeyStore().Create(context.Background(), auth.KeySpec{Name: "a"})
	_, rawB, _ := g.KeyStore().Create(context.Background(), auth.KeySpec{Name: "b"})
	_, rawSmall, _ := g.KeyStore().Create(context.Background(), auth.KeySpec{Name: "small", Quota: 1})
	call := func(key string) response {
		return g.do(t, request{path: "/q/x", headers: map[string]string{"X-API-Key": key}})
	}
	for i := 0; i < 3; i++ {
		r := call(rawA)
		if r.status != 200 || r.header.Get("X-Quota-Limit") != "3" || r.header.Get("X-Quota-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
	}
	r := call(rawA)
	wantFault(t, r, 429, "quota exceeded")
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > 24*3600 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if call(rawB).status != 200 {
		t.Error("another key's quota was spent")
	}
	if call(rawSmall).status != 200 || call(rawSmall).status != 429 {
		t.Error("a key's own quota (1/day) must replace the route's")
	}
	u, err := g.Quotas().Usage(a.ID)
	if err != nil || u.Used != 3 || u.Per != "24h0m0s" {
		t.Fatalf("usage %+v %v", u, err)
	}

	// A restart keeps spent quotas (the local store is saved on shutdown).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.Shutdown(ctx)
	g2 := startGateway(t, cfg)
	if r := g2.do(t, request{path: "/q/x", headers: map[string]string{"X-API-Key": rawA}}); r.status != 429 {
		t.Fatalf("after a restart a spent quota answered %d", r.status)
	}
	if err := g2.Quotas().Reset(a.ID); err != nil {
		t.Fatal(err)
	}
	if r := g2.do(t, request{path: "/q/x", headers: map[string]string{"X-API-Key": rawA}}); r.status != 200 {
		t.Fatalf("after reset: %d", r.status)
	}
	if err := g2.Quotas().Reset("nobody"); !errors.Is(err, limiter.ErrNoQuota) {
		t.Errorf("reset unknown: %v", err)
	}
}
