package edge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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

// The watcher must see the three ways a config file changes in practice.
func TestWatchFileSeesEveryKindOfSave(t *testing.T) {
	type setup struct {
		name   string
		path   func(dir string) string // the path sluice is given
		change func(t *testing.T, dir string, content string)
	}
	write := func(t *testing.T, p, content string) {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []setup{
		{"in-place write", func(d string) string { return filepath.Join(d, "c.yaml") },
			func(t *testing.T, d, content string) { write(t, filepath.Join(d, "c.yaml"), content) }},
		{"editor rename-on-save", func(d string) string { return filepath.Join(d, "c.yaml") },
			func(t *testing.T, d, content string) {
				tmp := filepath.Join(d, ".c.yaml.swp")
				write(t, tmp, content)
				if err := os.Rename(tmp, filepath.Join(d, "c.yaml")); err != nil {
					t.Fatal(err)
				}
			}},
		{"kubernetes configmap symlink swap", func(d string) string { return filepath.Join(d, "c.yaml") },
			func(t *testing.T, d, content string) {
				// ..data -> ..v1 ; c.yaml -> ..data/c.yaml. A swap writes
				// ..vN, points ..data_tmp at it and renames it over ..data.
				v := filepath.Join(d, fmt.Sprintf("..v%d", time.Now().UnixNano()))
				if err := os.Mkdir(v, 0o755); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(v, "c.yaml"), content)
				tmp := filepath.Join(d, "..data_tmp")
				if err := os.Symlink(filepath.Base(v), tmp); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, filepath.Join(d, "..data")); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if strings.HasPrefix(tc.name, "kubernetes") {
				if err := os.Mkdir(filepath.Join(dir, "..v0"), 0o755); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "..v0", "c.yaml"), "generation: 0")
				if err := os.Symlink("..v0", filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("..data/c.yaml", filepath.Join(dir, "c.yaml")); err != nil {
					t.Fatal(err)
				}
			} else {
				write(t, filepath.Join(dir, "c.yaml"), "generation: 0")
			}
			changes := make(chan struct{}, 10)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := WatchFile(ctx, tc.path(dir), quietLogger(), func() { changes <- struct{}{} }); err != nil {
				t.Fatal(err)
			}
			for gen := 1; gen <= 3; gen++ {
				// Noise first: an unrelated file, and a save of the same
				// content the file already has.
				write(t, filepath.Join(dir, "unrelated.txt"), fmt.Sprint(gen))
				tc.change(t, dir, fmt.Sprintf("generation: %d", gen-1))
				tc.change(t, dir, fmt.Sprintf("generation: %d", gen))
				select {
				case <-changes:
				case <-time.After(10 * time.Second):
					t.Fatalf("change %d not seen", gen)
				}
				// Exactly one notification per real change.
				select {
				case <-changes:
					t.Fatalf("change %d reported twice (noise or unchanged content counted)", gen)
				case <-time.After(400 * time.Millisecond):
				}
			}
		})
	}
}
