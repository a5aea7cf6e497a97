package edge

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/internal/testutil"
)

// testGateway is a Gateway serving on a loopback port for one test.
type testGateway struct {
	*Gateway
	addr string
	url  string
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

func mustParse(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config:\n%v\n%s", err, yaml)
	}
	return cfg
}

func startGateway(t testing.TB, yaml string) *testGateway {
	t.Helper()
	return startGatewayLogging(t, yaml, quietLogger())
}

// startGatewayLogging is startGateway with the gateway's log going to log.
func startGatewayLogging(t testing.TB, yaml string, log *slog.Logger) *testGateway {
	t.Helper()
	gw, err := New(mustParse(t, yaml), log, "test")
	if err != nil {
		t.Fatal(err)
	}
	ln := testutil.Listen(t)
	go func() { _ = gw.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Shutdown(ctx)
	})
	return &testGateway{Gateway: gw, addr: ln.Addr().String(), url: "http://" + ln.Addr().String()}
}

// request is one client request for do().
type request struct {
	method  string
	path    string
	host    string
	headers map[string]string
	body    io.Reader
}

type response struct {
	status int
	header http.Header
	body   string
}

var client = &http.Client{
	Timeout:   15 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
}

func (g *testGateway) do(t testing.TB, r request) response {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	req, err := http.NewRequest(r.method, g.url+r.path, r.body)
	if err != nil {
		t.Fatal(err)
	}
	if r.host != "" {
		req.Host = r.host
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", r.method, r.path, err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func (g *testGateway) get(t testing.TB, path string) response {
	t.Helper()
	return g.do(t, request{path: path})
}

// echo sends r to a route ending at the stub's /__stub/echo and decodes
// what the upstream saw.
func (g *testGateway) echo(t testing.TB, r request) (stub.Echo, response) {
	t.Helper()
	resp := g.do(t, r)
	var e stub.Echo
	if resp.status != http.StatusOK || json.Unmarshal([]byte(resp.body), &e) != nil {
		t.Fatalf("%s: want an echo, got %d %s", r.path, resp.status, resp.body)
	}
	return e, resp
}

// wantFault checks a sluice error answer: status, JSON body with the
// phrase, and a request id that matches the header.
func wantFault(t testing.TB, r response, status int, phrase string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	var body struct {
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("error body is not JSON: %q", r.body)
	}
	if body.Error != phrase {
		t.Errorf("error %q, want %q", body.Error, phrase)
	}
	if body.RequestID == "" || body.RequestID != r.header.Get("X-Request-Id") {
		t.Errorf("request_id %q vs header %q", body.RequestID, r.header.Get("X-Request-Id"))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content-type %q", ct)
	}
}

// catchAll is a route sending everything to the upstream "up".
const catchAll = "  - { name: all, match: { prefix: / }, upstream: up }\n"

func oneUpstream(url string, routes string) string {
	return `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up:
    targets: [ { url: "` + url + `" } ]
routes:
` + routes
}
