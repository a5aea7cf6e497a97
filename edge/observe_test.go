package edge

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"

	dto "github.com/prometheus/client_model/go"
)

// scrape fetches the data-plane /metrics and returns the families by name.
func scrape(t *testing.T, g *testGateway) map[string]*dto.MetricFamily {
	t.Helper()
	r := g.get(t, "/metrics")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// sample returns the value of the series of name whose labels include
// want, or -1 when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// Traffic of every kind a user would watch for, then one scrape: each
// figure is the count of what was sent.
func TestMetricsCountWhatHappened(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	dead := "http://" + testutil.DeadAddr(t) // nothing listens here
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
metrics: { data_plane_path: /metrics }
auth: { jwt: { keys: [ { id: k1, algorithm: HS256, secret: "`+testSecret+`" } ], issuer: https://idp.test, audience: [api] } }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ], circuit: { failures: 50 } }
  dead: { targets: [ { url: "`+dead+`" } ], retry: { attempts: 2, on: [connect] }, outlier: { consecutive_failures: 1000 } }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: up }
  - { name: limited, match: { prefix: /limited }, upstream: up, rate_limit: { rate: 1, per: 1h, key: [route] } }
  - { name: secure, match: { prefix: /secure }, upstream: up, auth: jwt }
  - { name: down, match: { prefix: /down }, upstream: dead }
`)
	for i := 0; i < 3; i++ {
		g.get(t, "/api/ok")
	}
	g.do(t, request{method: http.MethodPost, path: "/api/ok", body: strings.NewReader("x")})
	g.get(t, "/nothing")
	g.get(t, "/limited")
	g.get(t, "/limited")
	g.get(t, "/secure")
	g.do(t, request{path: "/secure", headers: map[string]string{"Authorization": "Bearer " + hsToken(t, "bob", nil, -60e9)}})
	g.get(t, "/down")

	fams := scrape(t, g)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sluice_requests_total", map[string]string{"route": "api", "method": "GET", "code": "200"}, 3},
		{"sluice_requests_total", map[string]string{"route": "api", "method": "POST", "code": "200"}, 1},
		{"sluice_requests_total", map[string]string{"route": "", "method": "GET", "code": "404"}, 1},
		{"sluice_requests_total", map[string]string{"route": "limited", "code": "429"}, 1},
		{"sluice_requests_total", map[string]string{"route": "secure", "code": "401"}, 2},
		{"sluice_requests_total", map[string]string{"route": "down", "code": "502"}, 1},
		{"sluice_request_duration_seconds", map[string]string{"route": "api"}, 4},
		{"sluice_rate_limited_total", map[string]string{"route": "limited"}, 1},
		{"sluice_auth_failures_total", map[string]string{"reason": "missing_token"}, 1},
		{"sluice_auth_failures_total", map[string]string{"reason": "token_expired"}, 1},
		{"sluice_upstream_errors_total", map[string]string{"upstream": "dead", "kind": "connect"}, 2},
		{"sluice_upstream_retries_total", map[string]string{"upstream": "dead"}, 1},
		{"sluice_upstream_request_duration_seconds", map[string]string{"upstream": "up"}, 5}, // 4 to api, 1 to limited
		{"sluice_target_up", map[string]string{"upstream": "up", "target": up.URL}, 1},
		{"sluice_circuit_state", map[string]string{"upstream": "up", "target": up.URL}, 0},
		{"sluice_requests_in_flight", nil, 1}, // the scrape itself
	} {
		if got := sample(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"sluice_build_info", "sluice_uptime_seconds", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	// Labels are config names: no request path appears as a label value.
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "/ok") || strings.Contains(l.GetValue(), "/nothing") {
					t.Errorf("%s carries a request path in label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}

	// The JSON variant carries the same figures.
	r := g.do(t, request{path: "/metrics", headers: map[string]string{"Accept": "application/json"}})
	var doc struct {
		Metrics []struct {
			Name    string
			Samples []struct {
				Labels map[string]string
				Value  *float64
			}
		}
	}
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON metrics: %v (%s)", err, r.header.Get("Content-Type"))
	}
	found := false
	for _, f := range doc.Metrics {
		for _, s := range f.Samples {
			if f.Name == "sluice_requests_total" && s.Labels["route"] == "api" && s.Labels["method"] == "GET" && s.Labels["code"] == "200" {
				found = s.Value != nil && *s.Value == 3
			}
		}
	}
	if !found {
		t.Error("JSON metrics: sluice_requests_total{api,GET,200} is not 3")
	}
}

// A reload is counted by result, and a route removed by a reload leaves
// the scrape.
func TestMetricsFollowReloads(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	base := `
listen: 127.0.0.1:0
admin: { listen: "off" }
metrics: { data_plane_path: /metrics }
upstreams:
  up: { targets: [ { url: "` + up.URL + `" } ] }
routes:
  - { name: keep, match: { prefix: /keep }, upstream: up }
`
	g := startGateway(t, base+"  - { name: old, match: { prefix: /old }, upstream: up }\n")
	g.get(t, "/old")
	g.get(t, "/keep")
	if err := g.Apply(mustParse(t, base)); err != nil {
		t.Fatal(err)
	}
	bad := mustParse(t, base)
	bad.Routes[0].Upstream = "missing" // passes parsing, fails the build
	if err := g.Apply(bad); err == nil {
		t.Fatal("a route to a missing upstream was applied")
	}
	fams := scrape(t, g)
	if v := sample(fams, "sluice_requests_total", map[string]string{"route": "old"}); v != -1 {
		t.Errorf("route old still exported after it was removed (%v)", v)
	}
	if v := sample(fams, "sluice_requests_total", map[string]string{"route": "keep"}); v != 1 {
		t.Errorf("route keep = %v, want 1", v)
	}
	if v := sample(fams, "sluice_config_reloads_total", map[string]string{"result": "success"}); v != 1 {
		t.Errorf("successful reloads = %v, want 1", v)
	}
	if v := sample(fams, "sluice_config_reloads_total", map[string]string{"result": "failure"}); v != 1 {
		t.Errorf("failed reloads = %v, want 1", v)
	}
}

// metrics.enabled: false keeps request metrics out, state metrics in.
func TestMetricsOff(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, "metrics: { enabled: false, data_plane_path: /metrics }\n"+oneUpstream(up.URL, catchAll))
	g.get(t, "/x")
	fams := scrape(t, g)
	if fams["sluice_requests_total"] != nil && len(fams["sluice_requests_total"].GetMetric()) > 0 {
		t.Error("request metrics recorded with metrics.enabled: false")
	}
	if sample(fams, "sluice_target_up", map[string]string{"upstream": "up"}) != 1 {
		t.Error("target state missing with request metrics off")
	}
}
