package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// Three sluice instances share one limit through a real redis-server:
// loaded from all three at once, strict (every request asks Redis) admits
// exactly the limit, and cluster (instances spend leased tokens) never more
// than the limit and at most instances x batch fewer.
func TestSharedLimitsAcrossThreeInstances(t *testing.T) {
	for _, scope := range []string{"strict", "cluster"} {
		t.Run(scope, func(t *testing.T) { sharedLimit(t, scope) })
	}
}

func sharedLimit(t *testing.T, scope string) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	r := testutil.StartRedis(t)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, auth: false }
redis: { addrs: [%q], timeout: 500ms }
limits: { instances: 3 }
upstreams: { up: { targets: [ { url: %q } ] } }
routes:
  - { name: shared, match: { prefix: / }, upstream: up, rate_limit: { rate: 30, per: 1h, key: route, scope: %s } }
`, r.Addr, up.URL, scope)
	var instances []*testutil.Sluice
	for i := 0; i < 3; i++ {
		instances = append(instances, testutil.StartSluice(t, cfg))
	}
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	for _, s := range instances {
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func(addr string) {
				defer wg.Done()
				for i := 0; i < 20; i++ {
					resp, err := http.Get("http://" + addr + "/x")
					if err != nil {
						other.Add(1)
						continue
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case 200:
						ok.Add(1)
					case 429:
						limited.Add(1)
					default:
						other.Add(1)
					}
				}
			}(s.Addr)
		}
	}
	wg.Wait()
	// strict is exact; cluster never exceeds the limit and may leave up to
	// instances x batch (3 x 1 here) leased tokens unspent when load stops.
	lo := int64(30)
	if scope == "cluster" {
		lo = 30 - 3
	}
	if ok.Load() > 30 || ok.Load() < lo || ok.Load()+limited.Load() != 180 || other.Load() != 0 {
		t.Fatalf("180 requests over 3 instances on a %s limit of 30: %d passed (want %d..30), %d limited, %d other", scope, ok.Load(), lo, limited.Load(), other.Load())
	}

	// Redis dies: sluice keeps answering (limited locally) and says so.
	r.Stop()
	resp, err := http.Get("http://" + instances[0].Addr + "/x")
	if err != nil {
		t.Fatalf("with Redis down: %v", err)
	}
	resp.Body.Close()
	if scope == "cluster" {
		// The key is spent: the instance knows it is blocked until the
		// window ends and answers without asking Redis at all.
		if resp.StatusCode != 429 {
			t.Errorf("a spent cluster limit with Redis down: %d, want 429 from the cached block", resp.StatusCode)
		}
		return
	}
	if resp.StatusCode != 200 && resp.StatusCode != 429 {
		t.Errorf("with Redis down: %d", resp.StatusCode)
	}
	if _, body := testutil.Get(t, "http://"+instances[0].AdminAddr+"/info"); !strings.Contains(body, `"strict": true`) {
		t.Errorf("/info does not show the strict fallback:\n%s", body)
	}
}
