package edge

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

func reloadConfig(stableURL, otherURL string, generation int) string {
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  stable: { targets: [ { url: "%s" } ] }
  other: { targets: [ { url: "%s", weight: %d } ], balancer: weighted }
routes:
  - { name: stable, match: { prefix: /stable/ }, upstream: stable }
`, stableURL, otherURL, 1+generation%3)
	if generation%2 == 1 {
		cfg += fmt.Sprintf("  - { name: extra-%d, match: { prefix: /extra/ }, upstream: other }\n", generation)
	}
	return cfg
}

// 32 keep-alive connections keep one route busy while the config is
// reloaded 50 times, adding and removing other routes and changing another
// upstream: no request on the unchanged route fails, no connection drops,
// and the unchanged upstream's connections are reused, not reopened.
func TestReloadUnderLoadDropsNothing(t *testing.T) {
	stable := testutil.StartUpstream(t, stub.Options{Name: "stable"})
	other := testutil.StartUpstream(t, stub.Options{Name: "other"})
	g := startGateway(t, reloadConfig(stable.URL, other.URL, 0))

	const clients = 32
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			defer c.Close()
			br := bufio.NewReader(c)
			var resp fasthttp.Response
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err := io.WriteString(c, "GET /stable/x HTTP/1.1\r\nHost: t\r\n\r\n")
				if err == nil {
					err = resp.Read(br)
				}
				if err == nil && resp.StatusCode() != 200 {
					err = fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
				}
				if err != nil {
					failed.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					return // a broken connection is a dropped connection
				}
				ok.Add(1)
			}
		}(c)
	}

	for gen := 1; gen <= 50; gen++ {
		if err := g.Apply(mustParse(t, reloadConfig(stable.URL, other.URL, gen))); err != nil {
			t.Fatalf("reload %d: %v", gen, err)
		}
		// The new config is live for new requests at once.
		status := g.get(t, "/extra/y").status
		if want := map[bool]int{true: 200, false: 404}[gen%2 == 1]; status != want {
			t.Fatalf("after reload %d, /extra/ answered %d, want %d", gen, status, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if failed.Load() != 0 {
		t.Fatalf("%d client connections failed during reloads; first error: %s", failed.Load(), *firstErr.Load())
	}
	if ok.Load() < clients*10 {
		t.Fatalf("only %d requests completed; the load did not run", ok.Load())
	}
	// Each client connection needs at most one upstream connection.
	if c := stable.Conns(); c > clients {
		t.Errorf("stable upstream accepted %d connections for %d clients: reloads dropped pooled connections", c, clients)
	}
	if g.Reloads() != 50 {
		t.Errorf("reloads = %d", g.Reloads())
	}
	t.Logf("%d requests over %d connections, 50 reloads, %d upstream connections", ok.Load(), clients, stable.Conns())
}

func TestRefusedReloadKeepsServing(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll))
	bad := errors.New("test.yaml:3: routes[0].upstream: no upstream named \"x\"")
	err := g.ReloadFrom(func() (*config.Config, error) { return nil, bad })
	if !errors.Is(err, bad) {
		t.Fatalf("ReloadFrom = %v", err)
	}
	if g.LastReloadError() != bad.Error() {
		t.Errorf("LastReloadError = %q", g.LastReloadError())
	}
	if r := g.get(t, "/x"); r.status != 200 {
		t.Fatalf("old config no longer serving: %d", r.status)
	}
	// A later good reload clears the error.
	if err := g.Apply(mustParse(t, oneUpstream(up.URL, "  - { name: b, match: { prefix: /b/ }, upstream: up }\n"))); err != nil {
		t.Fatal(err)
	}
	if g.LastReloadError() != "" || g.get(t, "/x").status != 404 || g.get(t, "/b/1").status != 200 {
		t.Errorf("good reload after a refused one did not apply")
	}
}

// Reloading an unchanged config must not claim a restart is needed.
func TestRestartOnlyIgnoresReloadableFields(t *testing.T) {
	src := oneUpstream("http://127.0.0.1:1", catchAll) + "server: { services_health: true, max_body_bytes: 1MiB }\n"
	a, b := mustParse(t, src), mustParse(t, strings.Replace(src, "max_body_bytes: 1MiB", "max_body_bytes: 2MiB", 1))
	if got := restartOnly(a, b); len(got) != 0 {
		t.Errorf("restartOnly reports %v for reloadable changes", got)
	}
	c := mustParse(t, strings.Replace(src, "server: {", "server: { read_timeout: 3s,", 1))
	if got := restartOnly(a, c); len(got) != 1 {
		t.Errorf("a changed read_timeout must need a restart: %v", got)
	}
	d := mustParse(t, strings.Replace(src, `admin: { listen: "off" }`, `admin: { listen: "off", session_ttl: 1h }`, 1))
	if got := restartOnly(a, d); len(got) != 1 || got[0] != "admin.session_ttl" {
		t.Errorf("a changed admin.session_ttl must need a restart: %v", got)
	}
	// Stores and clients opened at start: a reload can't move them.
	for _, change := range []string{
		"redis: { addrs: [127.0.0.1:6380] }\n",
		"auth: { api_keys: { file: other.json } }\n",
		"limits: { instances: 3 }\n",
		"consul: { address: 10.0.0.1:8500 }\n",
		"access_log: { enabled: true }\n",
		"access_log: { sample: 0.5 }\n",
		"tracing: { otlp_endpoint: http://127.0.0.1:4318 }\n",
	} {
		if got := restartOnly(a, mustParse(t, src+change)); len(got) != 1 {
			t.Errorf("%q: restartOnly = %v, want it named", change, got)
		}
	}
}
