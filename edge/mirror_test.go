package edge

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// shadowServer is a mirror's upstream: it reports each copy it gets on
// arrived (path, X-Forwarded-For, body length), blocks until release is
// closed, then answers 500.
type shadowServer struct {
	url     string
	got     atomic.Int64
	arrived chan string
	release chan struct{}
}

func startShadow(t *testing.T) *shadowServer {
	s := &shadowServer{arrived: make(chan string, 10000), release: make(chan struct{})}
	ln := testutil.Listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.got.Add(1)
		s.arrived <- fmt.Sprintf("%s %s xff=%s body=%d", r.Method, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), len(body))
		<-s.release
		w.WriteHeader(500)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		select {
		case <-s.release:
		default:
			close(s.release)
		}
		_ = srv.Close()
	})
	s.url = "http://" + ln.Addr().String()
	return s
}

func routeMirror(t *testing.T, g *testGateway, name string) *mirror {
	for _, rt := range g.Snapshot().routes {
		if rt.name == name {
			return rt.mirror
		}
	}
	t.Fatalf("no route %q", name)
	return nil
}

func mirrorGateway(t *testing.T, shadow *shadowServer, mirrorBlock string) *testGateway {
	up := testutil.StartUpstream(t, stub.Options{Name: "main"})
	return startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
metrics: { data_plane_path: /metrics }
upstreams:
  main: { targets: [ { url: "`+up.URL+`" } ] }
  shadow: { targets: [ { url: "`+shadow.url+`" } ] }
routes:
  - { name: r, match: { prefix: /api/ }, upstream: main, rewrite: { strip_prefix: /api }, mirror: `+mirrorBlock+` }
`)
}

// A shadow that never answers, then answers 500, changes nothing for the
// client: every request is answered by the main upstream at once; copies
// beyond max_concurrent are dropped, not queued; and each copy is the
// request as the upstream gets it (rewritten path, X-Forwarded-For).
func TestMirrorSlowFailingShadowChangesNothing(t *testing.T) {
	shadow := startShadow(t)
	g := mirrorGateway(t, shadow, `{ upstream: shadow, max_concurrent: 2 }`)
	m := routeMirror(t, g, "r")
	for i := range 10 {
		r := g.get(t, fmt.Sprintf("/api/x/%d?q=1", i))
		if r.status != 200 || !strings.Contains(r.body, `"upstream":"main"`) {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	// The client had all 10 answers while the shadow held its first two
	// copies without answering.
	for range 2 {
		if got := <-shadow.arrived; !strings.HasPrefix(got, "GET /x/") || !strings.Contains(got, "xff=127.0.0.1") {
			t.Errorf("copy %q: want the rewritten path and X-Forwarded-For", got)
		}
	}
	if d := m.dropped.Load(); d != 8 {
		t.Errorf("dropped %d copies, want 8 (2 in flight at most)", d)
	}
	close(shadow.release) // from now on the shadow answers 500 at once
	testutil.WaitFor(t, "the held copies to finish", func() bool { return m.sent.Load() == 2 })
	for i := range 5 {
		if r := g.get(t, "/api/y"); r.status != 200 {
			t.Fatalf("request %d with a failing shadow: %d", i, r.status)
		}
	}
	testutil.WaitFor(t, "5 more copies", func() bool { return m.sent.Load() == 7 })
	if n := shadow.got.Load(); n != 7 {
		t.Errorf("shadow got %d copies, want 7", n)
	}
	// The same counts, as an operator sees them.
	fams := scrape(t, g)
	for outcome, want := range map[string]float64{"sent": 7, "dropped": 8, "skipped": 0} {
		if got := sample(fams, "sluice_mirror_requests_total", map[string]string{"route": "r", "outcome": outcome}); got != want {
			t.Errorf("sluice_mirror_requests_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}

// sample copies that share of requests; a body over max_body_bytes is not
// copied, one within is copied whole.
func TestMirrorSampleAndBodyCap(t *testing.T) {
	shadow := startShadow(t)
	close(shadow.release)
	g := mirrorGateway(t, shadow, `{ upstream: shadow, sample: 0.25, max_concurrent: 1000, max_body_bytes: 4KiB }`)
	m := routeMirror(t, g, "r")
	const n = 800
	for range n {
		g.get(t, "/api/s")
	}
	testutil.WaitFor(t, "the copies to finish", func() bool { return m.inflight.Load() == 0 })
	if m.dropped.Load() != 0 {
		t.Fatalf("dropped %d", m.dropped.Load())
	}
	withinSigmas(t, "copies at sample 0.25", int(shadow.got.Load()), n, 0.25)

	g2 := mirrorGateway(t, shadow, `{ upstream: shadow, max_body_bytes: 4KiB }`)
	m2 := routeMirror(t, g2, "r")
	before := shadow.got.Load()
	for len(shadow.arrived) > 0 {
		<-shadow.arrived
	}
	if r := g2.do(t, request{method: "POST", path: "/api/big", body: bytes.NewReader(make([]byte, 5000))}); r.status != 200 {
		t.Fatal(r.status)
	}
	if r := g2.do(t, request{method: "POST", path: "/api/small", body: bytes.NewReader(make([]byte, 3000))}); r.status != 200 {
		t.Fatal(r.status)
	}
	if got := <-shadow.arrived; !strings.HasPrefix(got, "POST /small") || !strings.HasSuffix(got, "body=3000") {
		t.Errorf("copy %q, want the small POST with its 3000-byte body", got)
	}
	testutil.WaitFor(t, "the copy to finish", func() bool { return m2.sent.Load() == 1 })
	if m2.skipped.Load() != 1 || shadow.got.Load() != before+1 {
		t.Errorf("skipped %d, shadow got %d more; want the 5000-byte body skipped", m2.skipped.Load(), shadow.got.Load()-before)
	}
}
