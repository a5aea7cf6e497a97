package testutil

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Prometheus is a real prometheus server started by StartPrometheus.
type Prometheus struct {
	URL string // http://host:port
	mu  sync.Mutex
	out strings.Builder
}

func (p *Prometheus) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// StartPrometheus runs Debian's prometheus on addr (from DeadAddr, so a
// config can name it before it starts), scraping target's /metrics every
// second with Basic credentials, and waits until it is ready. It is
// stopped when the test ends; its output is logged if the test failed.
func StartPrometheus(t testing.TB, addr, target, user, password string) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: make test installs it (Debian package prometheus)")
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: sluice
    basic_auth: { username: %q, password_file: %q }
    static_configs: [ { targets: [%q] } ]
`, user, pw, target), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{URL: "http://" + addr}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("prometheus output:\n%s", p.out.String())
			p.mu.Unlock()
		}
	})
	WaitForWithin(t, time.Minute, "prometheus to be ready", func() bool {
		resp, err := http.Get(p.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}
