package main

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// Three sluice instances share one strict limit through a real
// redis-server: loaded from all three at once, exactly the limit passes.
func TestStrictLimitAcrossThreeInstances(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	r := testutil.StartRedis(t)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
redis: { addrs: [%q], timeout: 500ms }
limits: { instances: 3 }
upstreams: { up: { targets: [ { url: %q } ] } }
routes:
  - { name: strict, match: { prefix: / }, upstream: up, rate_limit: { rate: 30, per: 1h, key: route, scope: strict } }
`, r.Addr, up.URL)
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
	if ok.Load() != 30 || limited.Load() != 150 || other.Load() != 0 {
		t.Fatalf("180 requests over 3 instances on a strict limit of 30: %d passed, %d limited, %d other", ok.Load(), limited.Load(), other.Load())
	}
}
