package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"gopkg.in/yaml.v3"
)

func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: make test installs it (Debian package prometheus)", name)
	}
	return p
}

func run(t *testing.T, dir, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
}

// promConfig is deploy/prometheus/prometheus.yml pointed at a test sluice:
// its admin address, a password file, a 1 s scrape and the rules by path.
func promConfig(t *testing.T, target, password string) string {
	t.Helper()
	data, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, _ := filepath.Abs("prometheus/sluice-alerts.yml")
	s := string(data)
	for old, repl := range map[string]string{
		"/etc/prometheus/sluice-admin-password": pw,
		`"127.0.0.1:9901"`:                      `"` + target + `"`,
		"- sluice-alerts.yml":                   "- " + rules,
		"scrape_interval: 15s":                  "scrape_interval: 1s",
		"evaluation_interval: 15s":              "evaluation_interval: 1s",
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("prometheus.yml no longer contains %q", old)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrometheusFilesPassPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	run(t, "prometheus", promtool, "check", "rules", "sluice-alerts.yml")
	run(t, "prometheus", promtool, "test", "rules", "sluice-alerts_test.yml")
	run(t, ".", promtool, "check", "config", promConfig(t, "127.0.0.1:9901", "x"))
}

// A real Prometheus scrapes a real sluice with the shipped config: the
// target is up, the request counter rises with traffic, every alert rule
// evaluates cleanly, and every metric the dashboard and the rules name
// is one Prometheus really ingested from sluice.
func TestPrometheusScrapesSluice(t *testing.T) {
	prom := tool(t, "prometheus")
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	redis := testutil.StartRedis(t)
	leaf := testutil.NewCA(t, "deploy").Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"sluice.example"}})
	s := testutil.StartSluice(t, fmt.Sprintf(`
listen: 127.0.0.1:0
listen_tls: [ { listen: 127.0.0.1:0, certificates: [ { cert_file: %s, key_file: %s } ] } ]
admin: { listen: 127.0.0.1:0, password: scrape-me }
redis: { addrs: ["%s"] }
auth: { jwt: { keys: [ { id: k1, algorithm: HS256, secret: "0123456789abcdef0123456789abcdef" } ] } }
upstreams:
  up: { targets: [ { url: "%s" } ], circuit: { failures: 100 } }
  dead: { targets: [ { url: "http://%s" } ] }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: up, rate_limit: { rate: 1000, per: 1s, scope: strict } }
  - { name: limited, match: { prefix: /limited }, upstream: up, rate_limit: { rate: 1, per: 1h, key: [route] }, quota: { limit: 1, per: 24h } }
  - { name: secure, match: { prefix: /secure }, upstream: up, auth: jwt }
  - { name: down, match: { prefix: /down }, upstream: dead }
  - { name: cached, match: { prefix: /cached }, upstream: up, cache: { ttl: 60s } }
`, leaf.CertFile, leaf.KeyFile, redis.Addr, up.URL, testutil.DeadAddr(t)))

	traffic := func(n int) {
		for i := 0; i < n; i++ {
			for _, p := range []string{"/api/x", "/limited", "/secure", "/down", "/nowhere", "/cached"} {
				testutil.Get(t, "http://"+s.Addr+p)
			}
		}
	}
	traffic(3)

	addr := testutil.DeadAddr(t)
	dir := t.TempDir()
	cmd := exec.Command(prom, "--config.file="+promConfig(t, s.AdminAddr, "scrape-me"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	api := func(path string, v any) bool {
		resp, err := http.Get("http://" + addr + "/api/v1/" + path)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && json.Unmarshal(body, v) == nil
	}
	query := func(q string) (float64, bool) {
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if !api("query?query="+url.QueryEscape(q), &r) || len(r.Data.Result) != 1 {
			return 0, false
		}
		var v float64
		_, err := fmt.Sscan(r.Data.Result[0].Value[1].(string), &v)
		return v, err == nil
	}
	testutil.WaitFor(t, "Prometheus to report the sluice target up", func() bool {
		var r struct {
			Data struct {
				ActiveTargets []struct{ Health, LastError string } `json:"activeTargets"`
			} `json:"data"`
		}
		return api("targets", &r) && len(r.Data.ActiveTargets) == 1 && r.Data.ActiveTargets[0].Health == "up"
	})
	var before float64
	testutil.WaitFor(t, "a first sample of sluice_requests_total", func() bool {
		v, ok := query(`sum(sluice_requests_total{job="sluice"})`)
		before = v
		return ok && v >= 15
	})
	traffic(4)
	testutil.WaitFor(t, "the request counter to rise after traffic", func() bool {
		v, ok := query(`sum(sluice_requests_total{job="sluice"})`)
		return ok && v >= before+20
	})

	// Every rule evaluated at least once, without error.
	testutil.WaitFor(t, "every alert rule evaluated cleanly", func() bool {
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name, Health, LastError string
						LastEvaluation          time.Time
					}
				}
			}
		}
		if !api("rules", &r) || len(r.Data.Groups) != 1 {
			return false
		}
		for _, rule := range r.Data.Groups[0].Rules {
			if rule.Health != "ok" {
				return false
			}
		}
		return len(r.Data.Groups[0].Rules) > 0
	})

	var names struct{ Data []string }
	if !api("label/__name__/values", &names) {
		t.Fatal("label values API failed")
	}
	for _, want := range referencedMetrics(t) {
		if want == "up" {
			continue // Prometheus's own
		}
		if !slices.Contains(names.Data, want) {
			t.Errorf("%s is used by the dashboard or the alert rules, but sluice does not export it", want)
		}
	}
}

var metricName = regexp.MustCompile(`\b(?:sluice|process|go)_[a-z0-9_]+\b`)

// referencedMetrics lists the metric names in the dashboard's and the
// alert rules' expressions.
func referencedMetrics(t *testing.T) []string {
	t.Helper()
	var exprs []string
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string }
		}
	}
	data, err := os.ReadFile("grafana/sluice-dashboard.json")
	if err != nil || json.Unmarshal(data, &dash) != nil {
		t.Fatalf("dashboard: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Expr string }
		}
	}
	data, err = os.ReadFile("prometheus/sluice-alerts.yml")
	if err != nil || yaml.Unmarshal(data, &rules) != nil {
		t.Fatalf("rules: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	set := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			set[n] = true
		}
	}
	if len(set) < 15 {
		t.Fatalf("only %d metric names found in %d expressions: the extraction is broken", len(set), len(exprs))
	}
	return slices.Sorted(maps.Keys(set))
}
