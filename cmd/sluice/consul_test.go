package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/internal/testutil/fakeconsul"
)

// Two bench/upstream processes register themselves in Consul; sluice
// discovers them and spreads traffic over both. One is stopped (it
// deregisters, then drains): traffic moves to the other within one
// blocking-query round, and no request fails.
func TestConsulDiscoveryEndToEnd(t *testing.T) {
	consul := fakeconsul.Start(t)
	service := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	startUp := func(name string) (*testutil.Process, string) {
		addr := testutil.DeadAddr(t) // a free port for it to take
		p := testutil.StartProcess(t, "upstream", "upstream listening",
			"-addr", addr, "-name", name, "-consul", consul.Addr, "-service", service, "-drain", "1s")
		return p, addr
	}
	u1, _ := startUp("u1")
	startUp("u2")

	s := testutil.StartSluice(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, auth: false }
consul: { address: "%s", wait: 10s }
upstreams:
  svc:
    balancer: round_robin
    discovery: { consul: { service: %s } }
routes:
  - { name: all, match: { prefix: / }, upstream: svc }
`, consul.Addr, service))

	var mu sync.Mutex
	seen := map[string]int{}
	var failed atomic.Int64
	var lastFailure atomic.Pointer[string]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	limit := time.After(60 * time.Second)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-limit:
					return
				default:
				}
				resp, err := http.Get("http://" + s.Addr + "/x")
				if err != nil {
					failed.Add(1)
					msg := err.Error()
					lastFailure.Store(&msg)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				switch {
				case resp.StatusCode != 200:
					failed.Add(1)
					msg := fmt.Sprintf("%d %s", resp.StatusCode, b)
					lastFailure.Store(&msg)
				case bytes.Contains(b, []byte(`"upstream":"u1"`)):
					seen["u1"]++
				case bytes.Contains(b, []byte(`"upstream":"u2"`)):
					seen["u2"]++
				}
				mu.Unlock()
			}
		}()
	}
	count := func(name string) int { mu.Lock(); defer mu.Unlock(); return seen[name] }
	testutil.WaitFor(t, "traffic on both discovered upstreams", func() bool { return count("u1") > 20 && count("u2") > 20 })

	updates := strings.Count(s.Log(), "upstream targets updated from consul")
	if err := u1.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "u1 to deregister", func() bool { return strings.Contains(u1.Log(), "deregistered") })
	testutil.WaitFor(t, "sluice to drop u1", func() bool {
		return strings.Count(s.Log(), "upstream targets updated from consul") > updates
	})
	// From here on u1 gets nothing new; it is still serving (draining) for
	// a second, so requests sluice had already sent it before the swap
	// succeed. They take about a millisecond: let them land first, then
	// count.
	time.Sleep(100 * time.Millisecond)
	before := count("u1")
	time.Sleep(300 * time.Millisecond)
	u2Before := count("u2")
	testutil.WaitFor(t, "more traffic on u2", func() bool { return count("u2") > u2Before+50 })
	if after := count("u1"); after != before {
		t.Errorf("u1 got %d requests after sluice applied its deregistration", after-before)
	}
	<-u1.Exited()
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed; last: %s", n, *lastFailure.Load())
	}
	t.Logf("u1 %d, u2 %d requests", count("u1"), count("u2"))

	// The admin view shows the watcher.
	if _, body := testutil.Get(t, "http://"+s.AdminAddr+"/admin/upstreams"); !strings.Contains(body, `"service": "`+service+`"`) {
		t.Errorf("/admin/upstreams lacks the discovery status:\n%s", body)
	}
}

// sluice takes its whole config from a Consul KV key, pushed with
// `sluice config push` (check-and-set), and follows it.
func TestConsulKVConfigEndToEnd(t *testing.T) {
	consul := fakeconsul.Start(t)
	up := testutil.StartUpstream(t, stubOptions("a"))
	key := fmt.Sprintf("sluice-e2e/%d", time.Now().UnixNano())
	dir := t.TempDir()
	routeConfig := func(route string) string {
		return sluiceConfig(up.URL, fmt.Sprintf("  - { name: %s, match: { prefix: /%s/ }, upstream: up }\n", route, route))
	}
	push := func(content string, extra ...string) (int, string) {
		p := writeFile(t, dir, "push.yaml", content)
		var out, errb bytes.Buffer
		code := run(append([]string{"config", "push", "-c", p, "-key", key, "-consul", consul.Addr}, extra...), &out, &errb)
		return code, out.String() + errb.String()
	}

	if code, out := push(routeConfig("one")); code != 0 || !strings.Contains(out, "ok: "+key+" written") {
		t.Fatalf("first push: %d %s", code, out)
	}
	s := testutil.StartSluice(t, fmt.Sprintf("admin: { listen: \"off\" }\nconsul: { address: %q, config_key: %q, wait: 10s }\n", consul.Addr, key))
	data := "http://" + s.Addr
	if code, _ := testutil.Get(t, data+"/one/x"); code != 200 {
		t.Fatalf("config from consul not serving: %d\n%s", code, s.Log())
	}
	if _, body := testutil.Get(t, "http://"+s.AdminAddr+"/info"); !strings.Contains(body, `"config": "consul:`+key+`"`) {
		t.Errorf("/info does not name the consul source:\n%s", body)
	}

	// A new push is applied without a signal.
	if code, out := push(routeConfig("two")); code != 0 {
		t.Fatalf("second push: %d %s", code, out)
	}
	testutil.WaitFor(t, "the pushed config to apply", func() bool { code, _ := testutil.Get(t, data+"/two/x"); return code == 200 })

	// check-and-set: a push based on a stale index is refused.
	code, out := push(routeConfig("three"), "-index", "1")
	if code != 1 || !strings.Contains(out, "changed since modify index 1") {
		t.Errorf("stale push: %d %s", code, out)
	}
	// An invalid file is not pushed at all.
	code, out = push("routes: [ { name: x } ]\n")
	if code != 1 || !strings.Contains(out, "not pushed") {
		t.Errorf("invalid push: %d %s", code, out)
	}
	// An invalid value written around the tool is refused by the gateway;
	// the last good config keeps serving.
	client, _ := api.NewClient(&api.Config{Address: consul.Addr})
	if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte("routes: [ { name: x } ]\n")}, nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the refusal", func() bool {
		_, body := testutil.Get(t, "http://"+s.AdminAddr+"/info")
		return strings.Contains(body, "consul:"+key+":1: routes[0]")
	})
	if code, _ := testutil.Get(t, data+"/two/x"); code != 200 {
		t.Errorf("last good config stopped serving after an invalid value: %d", code)
	}
	// Deleting the key keeps the config too.
	if _, err := client.KV().Delete(key, nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the deletion to be noticed", func() bool { return strings.Contains(s.Log(), "config key deleted") })
	if code, _ := testutil.Get(t, data+"/two/x"); code != 200 {
		t.Errorf("config stopped serving after the key was deleted: %d", code)
	}
	_ = os.Remove(filepath.Join(dir, "push.yaml"))
}

func stubOptions(name string) stub.Options { return stub.Options{Name: name} }
