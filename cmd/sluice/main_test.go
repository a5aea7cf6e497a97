package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateAndVersion(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", `
admin: { password: "${ADMIN_PW:-x}" }
upstreams: { u: { targets: [ { url: "http://127.0.0.1:9001" } ] } }
routes: [ { name: r, match: { prefix: / }, upstream: u } ]
`)
	bad := writeFile(t, dir, "bad.yaml", `
listen: nowhere
admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ], balancer: best }
routes:
  - { name: r, match: { prefix: / }, upstream: v, colour: blue }
`)
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "-c", good}, &out, &errb); code != 0 || out.String() != "ok\n" {
		t.Errorf("validate good: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	// Every problem in one run: the unknown field does not hide the rest.
	code := run([]string{"validate", "-c", bad}, &out, &errb)
	want := bad + `:2: listen: "nowhere" is not host:port (e.g. ":8080" or "127.0.0.1:9901")
` + bad + `:5: upstreams.u.balancer: unknown balancer "best" (want one of round_robin, weighted, least_conn, p2c_ewma, ip_hash, consistent_hash, random)
` + bad + `:7: routes[0].colour: unknown field
` + bad + `:7: routes[0].upstream: no upstream named "v"
`
	if code != 1 || errb.String() != want || out.Len() != 0 {
		t.Errorf("validate bad: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out.String(), errb.String(), want)
	}

	// SLUICE_CONFIG names the file when -c is absent.
	t.Setenv("SLUICE_CONFIG", good)
	out.Reset()
	if code := run([]string{"validate"}, &out, &errb); code != 0 || out.String() != "ok\n" {
		t.Errorf("validate via SLUICE_CONFIG: exit %d %q", code, out.String())
	}

	out.Reset()
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "sluice ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errb.String())
	}
}

// Regression: -h and --help fell through to serve's flag parsing, which
// printed only -c and exited 2.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}, {"serve", "-h"}, {"validate", "--help"}} {
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		if code != 0 || errb.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
		for _, w := range []string{"sluice validate -c FILE", "sluice config push", "sluice token", "sluice keys", "sluice version"} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: usage lacks %q:\n%s", args, w, out.String())
			}
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-x"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage:") {
		t.Errorf("unknown flag: exit %d, stderr %q", code, errb.String())
	}
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServeRefusesBadConfigAtStart(t *testing.T) {
	bin := testutil.Binary(t, "sluice")
	p := writeFile(t, t.TempDir(), "c.yaml", "listen: [\n")
	out, err := exec.Command(bin, "-c", p).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v", err)
	}
	if !strings.Contains(string(out), p+":") || !strings.Contains(string(out), "(syntax)") {
		t.Errorf("output does not name the file and line:\n%s", out)
	}
}

func sluiceConfig(upstreamURL, routes string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, auth: false }
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
%s`, upstreamURL, routes)
}

func post(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAndReloadTriggers(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: one, match: { prefix: /one/ }, upstream: up }\n"))
	data, admin := "http://"+s.Addr, "http://"+s.AdminAddr

	for _, p := range []string{"/health", "/ready", "/info"} {
		if code, body := testutil.Get(t, admin+p); code != 200 {
			t.Errorf("admin %s: %d %s", p, code, body)
		}
	}
	if _, body := testutil.Get(t, admin+"/info"); !strings.Contains(body, `"name": "one"`) || !strings.Contains(body, up.URL) {
		t.Errorf("/info lacks routes/upstreams:\n%s", body)
	}
	if _, body := testutil.Get(t, admin+"/admin/upstreams"); !strings.Contains(body, `"state": "healthy"`) || !strings.Contains(body, up.URL) {
		t.Errorf("/admin/upstreams:\n%s", body)
	}
	if code, body := post(t, admin+"/admin/circuit-breakers/reset"); code != 200 || !strings.Contains(body, `"reset": 0`) {
		t.Errorf("reset with no breakers configured: %d %s", code, body)
	}
	// Regression: no breakers was answered null, not an empty list.
	if code, body := testutil.Get(t, admin+"/admin/circuit-breakers"); code != 200 || body != "[]\n" {
		t.Errorf("/admin/circuit-breakers with none configured: %d %q, want []", code, body)
	}
	// The effective config shows the defaults of optional booleans.
	if _, body := testutil.Get(t, admin+"/admin/config"); !strings.Contains(body, `"services_health": true`) || !strings.Contains(body, `"enabled": true`) {
		t.Errorf("/admin/config lacks services_health and metrics.enabled:\n%s", body)
	}
	// The data plane serves no admin routes.
	if code, _ := testutil.Get(t, data+"/health"); code != 404 {
		t.Errorf("data plane /health: %d", code)
	}
	if code, _ := testutil.Get(t, data+"/one/x"); code != 200 {
		t.Fatalf("route one: %d", code)
	}

	routeUp := func(name string) func() bool {
		return func() bool { code, _ := testutil.Get(t, data+"/"+name+"/x"); return code == 200 }
	}

	// 1. File change, picked up by the watcher.
	writeFile(t, filepath.Dir(s.ConfigPath), filepath.Base(s.ConfigPath),
		sluiceConfig(up.URL, "  - { name: two, match: { prefix: /two/ }, upstream: up }\n"))
	testutil.WaitFor(t, "file-watch reload", routeUp("two"))
	if code, _ := testutil.Get(t, data+"/one/x"); code != 404 {
		t.Errorf("route one still served after it was removed: %d", code)
	}

	// 2. A bad file is refused; the last good config keeps serving, and
	// /info says why.
	writeFile(t, filepath.Dir(s.ConfigPath), filepath.Base(s.ConfigPath), "routes: [ { name: x } ]\n")
	testutil.WaitFor(t, "refused reload to show in /info", func() bool {
		_, body := testutil.Get(t, admin+"/info")
		return strings.Contains(body, "routes[0].match: one of prefix, path or regex is required")
	})
	if code, _ := testutil.Get(t, data+"/two/x"); code != 200 {
		t.Errorf("old config stopped serving after a refused reload: %d", code)
	}
	code, body := post(t, admin+"/admin/reload")
	if code != 400 || !strings.Contains(body, s.ConfigPath+":1: routes[0]") {
		t.Errorf("POST /admin/reload with a bad file: %d %s", code, body)
	}

	// 3. SIGHUP. Write the file while... the watcher would also see it, so
	// check the log line that only SIGHUP writes.
	writeFile(t, filepath.Dir(s.ConfigPath), filepath.Base(s.ConfigPath),
		sluiceConfig(up.URL, "  - { name: three, match: { prefix: /three/ }, upstream: up }\n"))
	if err := s.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "SIGHUP reload", routeUp("three"))
	testutil.WaitFor(t, "SIGHUP log line", func() bool { return strings.Contains(s.Log(), "SIGHUP: reloading config") })

	// 4. POST /admin/reload.
	writeFile(t, filepath.Dir(s.ConfigPath), filepath.Base(s.ConfigPath),
		sluiceConfig(up.URL, "  - { name: four, match: { prefix: /four/ }, upstream: up }\n"))
	if code, body := post(t, admin+"/admin/reload"); code != 200 {
		t.Fatalf("POST /admin/reload: %d %s", code, body)
	}
	if code, _ := testutil.Get(t, data+"/four/x"); code != 200 {
		t.Errorf("route four not served right after /admin/reload: %d", code)
	}
	if _, body := testutil.Get(t, admin+"/admin/config"); !strings.Contains(body, `"name": "four"`) {
		t.Errorf("/admin/config does not show the applied config:\n%s", body)
	}
}

// A request in flight when SIGTERM arrives still completes; new
// connections are refused; the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"))

	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr + "/__stub/sleep?d=2s")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{code: resp.StatusCode, body: string(b)}
	}()
	// Wait until the slow request has reached the upstream.
	testutil.WaitFor(t, "the slow request to reach the upstream", func() bool { return up.Requests() >= 1 })
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "draining to start", func() bool { return strings.Contains(s.Log(), "shutting down") })
	if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		// The listener is closed: a connection, if the kernel accepted one
		// at all, gets no answer.
		_ = c.SetDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		_ = c.Close()
		if strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Errorf("a new request was served after SIGTERM")
		}
	}
	r := <-done
	if r.err != nil || r.code != 200 {
		t.Fatalf("in-flight request: %v %d %s", r.err, r.code, r.body)
	}
	code, err := s.Wait(20 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("exit code %d, %v\n%s", code, err, s.Log())
	}
}

// 200 MiB up and 200 MiB down stream through sluice while its peak RSS
// stays under 64 MiB.
func TestLargeBodiesStreamWithBoundedRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 400 MiB")
	}
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n")+
		"server: { max_body_bytes: 1GiB }\n")
	const size = 200 << 20

	// Upload with a declared length, then chunked.
	for _, chunked := range []bool{false, true} {
		var body io.Reader = io.LimitReader(&stub.Pattern{}, size)
		req, _ := http.NewRequest("POST", "http://"+s.Addr+"/__stub/echo", body)
		if !chunked {
			req.ContentLength = size
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"body_bytes":`+strconv.Itoa(size)) {
			t.Fatalf("upload (chunked %v): %d %s", chunked, resp.StatusCode, b)
		}
	}
	// Download, fixed length and chunked; every byte checked.
	for _, path := range []string{"/__stub/bytes", "/__stub/stream"} {
		resp, err := http.Get(fmt.Sprintf("http://%s%s?n=%d", s.Addr, path, size))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(&stub.PatternChecker{}, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("download %s: %d bytes, %v", path, n, err)
		}
	}
	hwm := peakRSS(t, s.Cmd.Process.Pid)
	t.Logf("sluice peak RSS after 800 MiB streamed: %d MiB", hwm>>20)
	if hwm > 64<<20 {
		t.Errorf("peak RSS %d MiB, want < 64 MiB: bodies are being buffered", hwm>>20)
	}
}

// peakRSS reads VmHWM (the resident set's high-water mark) of pid.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

func TestAdminRequiresCredentials(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	cfg := strings.Replace(sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"),
		"auth: false", `password: "${TEST_ADMIN_PW}"`, 1)
	s := testutil.StartSluice(t, cfg, "TEST_ADMIN_PW=pa55")
	admin := "http://" + s.AdminAddr
	if code, _ := post(t, admin+"/admin/reload"); code != 401 {
		t.Errorf("reload without credentials: %d", code)
	}
	req, _ := http.NewRequest("POST", admin+"/admin/reload", nil)
	req.SetBasicAuth("admin", "pa55")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reload with credentials: %v %v", err, resp)
	}
	resp.Body.Close()
	if code, _ := testutil.Get(t, admin+"/ready"); code != 200 {
		t.Errorf("/ready must stay open for probes: %d", code)
	}
	testutil.WaitFor(t, "the failed attempt in the log", func() bool { return strings.Contains(s.Log(), "admin authentication failed") })
}

// pprof is on the admin listener, behind admin auth.
func TestPprofBehindAdminAuth(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	cfg := strings.Replace(sluiceConfig(up.URL, "  - { name: all, match: { prefix: / }, upstream: up }\n"),
		"auth: false", `password: "pp"`, 1)
	s := testutil.StartSluice(t, cfg)
	base := "http://" + s.AdminAddr + "/debug/pprof/"
	if code, _ := testutil.Get(t, base); code != 401 {
		t.Errorf("pprof without credentials: %d", code)
	}
	get := func(path string) (int, []byte) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.SetBasicAuth("admin", "pp")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	for _, p := range []string{"", "goroutine?debug=1", "heap?debug=1", "cmdline"} {
		code, body := get(p)
		if code != 200 || len(body) == 0 {
			t.Errorf("%s: %d, %d bytes", p, code, len(body))
		}
		if p == "goroutine?debug=1" && !strings.Contains(string(body), "goroutine profile:") {
			t.Errorf("not a goroutine profile:\n%.200s", body)
		}
	}
	// A CPU profile is served as a profile (binary pprof data).
	code, body := get("profile?seconds=1")
	if code != 200 || len(body) < 10 || body[0] != 0x1f || body[1] != 0x8b { // gzip, as pprof writes it
		t.Errorf("cpu profile: %d, %d bytes", code, len(body))
	}
}
