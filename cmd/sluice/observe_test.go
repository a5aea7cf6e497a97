package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// /metrics is on the admin listener behind admin auth, in the text format
// Prometheus scrapes and as JSON.
func TestAdminMetrics(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	cfg := strings.Replace(sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"),
		"auth: false", `password: "mm"`, 1)
	s := testutil.StartSluice(t, cfg)
	for i := 0; i < 3; i++ {
		if code, _ := testutil.Get(t, "http://"+s.Addr+"/x"); code != 200 {
			t.Fatalf("proxied request: %d", code)
		}
	}
	url := "http://" + s.AdminAddr + "/metrics"
	if code, _ := testutil.Get(t, url); code != 401 {
		t.Errorf("/metrics without credentials: %d, want 401", code)
	}
	get := func(accept string) (string, string) {
		req, _ := http.NewRequest("GET", url, nil)
		req.SetBasicAuth("admin", "mm")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
		}
		return resp.Header.Get("Content-Type"), string(body)
	}
	ct, text := get("")
	if !strings.HasPrefix(ct, "text/plain") || !strings.Contains(text, `sluice_requests_total{code="200",method="GET",route="all"} 3`) {
		t.Errorf("text metrics (%s) lack the 3 requests:\n%.2000s", ct, text)
	}
	if !strings.Contains(text, `sluice_build_info{goversion="go`) || !strings.Contains(text, "process_resident_memory_bytes") {
		t.Error("build info or process metrics missing")
	}
	ct, js := get("application/json")
	var doc struct{ Metrics []struct{ Name string } }
	if ct != "application/json" || json.Unmarshal([]byte(js), &doc) != nil || len(doc.Metrics) < 20 {
		t.Errorf("JSON metrics: %s, %d families", ct, len(doc.Metrics))
	}
	// Not on the data plane unless configured.
	if code, _ := testutil.Get(t, "http://"+s.Addr+"/metrics"); code != 200 {
		// the catch-all route proxies it: the upstream answers, not sluice
		t.Errorf("data-plane /metrics went to %d", code)
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s line %d is not JSON: %v", path, n+1, err)
		}
		n++
	}
	return n
}

// logrotate's dance: move the file, send SIGUSR1, and sluice writes to a
// new file at the old path. No line is lost and none lands in the wrong
// file.
func TestAccessLogReopenOnSIGUSR1(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	logPath := filepath.Join(t.TempDir(), "access.log")
	s := testutil.StartSluice(t, "access_log: { enabled: true, output: "+logPath+" }\n"+
		sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"))
	get := func(n int) {
		for i := 0; i < n; i++ {
			if code, _ := testutil.Get(t, "http://"+s.Addr+"/x"); code != 200 {
				t.Fatalf("status %d", code)
			}
		}
	}
	get(20)
	testutil.WaitFor(t, "20 lines in the log", func() bool { return countLines(t, logPath) == 20 })
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the reopen in sluice's log", func() bool { return strings.Contains(s.Log(), "access log reopened") })
	get(7)
	testutil.WaitFor(t, "7 lines in the new file", func() bool {
		_, err := os.Stat(logPath)
		return err == nil && countLines(t, logPath) == 7
	})
	if n := countLines(t, logPath+".1"); n != 20 {
		t.Errorf("rotated file has %d lines, want 20", n)
	}
	// SIGTERM flushes what is queued.
	get(3)
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	if code, err := s.Wait(20e9); err != nil || code != 0 {
		t.Fatalf("exit %d %v", code, err)
	}
	if n := countLines(t, logPath); n != 10 {
		t.Errorf("after shutdown the file has %d lines, want 10", n)
	}
}

// output: stdout (the default) writes to the process's stdout, whatever
// directory the config file is in.
func TestAccessLogToStdout(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, "access_log: { enabled: true }\n"+
		sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"))
	if code, _ := testutil.Get(t, "http://"+s.Addr+"/hello"); code != 200 {
		t.Fatalf("status %d", code)
	}
	testutil.WaitFor(t, "the access log line on stdout", func() bool {
		return strings.Contains(s.Log(), `"path":"/hello","route":"all","upstream":"up"`)
	})
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.ConfigPath), "stdout")); err == nil {
		t.Error("a file named stdout was created next to the config")
	}
}
