package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/internal/testutil"
)

// runHealth runs the real binary's health command, as a container
// HEALTHCHECK does, and returns its exit code and output.
func runHealth(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(testutil.Binary(t, "sluice"), append([]string{"health"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// sluice health finds the admin address in the config (with ${VAR}
// expanded from the environment, a wildcard host asked on loopback) or
// takes -admin, and exits 0 only on a 200.
func TestHealthCommand(t *testing.T) {
	port := strings.TrimPrefix(testutil.DeadAddr(t), "127.0.0.1")
	cfg := `
listen: 127.0.0.1:0
admin: { listen: "${HEALTH_TEST_ADMIN:-127.0.0.1:1}", password: pw }
upstreams: { u: { targets: [ { url: "http://127.0.0.1:9001" } ] } }
routes: [ { name: r, match: { prefix: / }, upstream: u } ]
`
	env := []string{"HEALTH_TEST_ADMIN=" + port} // ":PORT": every interface
	s := testutil.StartSluice(t, cfg, env...)

	code, out, errOut := runHealth(t, env, "-c", s.ConfigPath)
	if code != 0 || !strings.Contains(out, "http://127.0.0.1"+port+"/health: 200") {
		t.Errorf("health from the config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// $SLUICE_CONFIG names the file when -c is absent, as for serve.
	code, out, errOut = runHealth(t, append(env, "SLUICE_CONFIG="+s.ConfigPath), "-ready")
	if code != 0 || !strings.Contains(out, "/ready: 200") || !strings.Contains(out, `"ready"`) {
		t.Errorf("health -ready via SLUICE_CONFIG: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runHealth(t, nil, "-admin", "http://"+s.AdminAddr)
	if code != 0 || !strings.Contains(out, "/health: 200") {
		t.Errorf("health -admin URL: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Nothing listening: exit 1, within the timeout.
	code, _, errOut = runHealth(t, nil, "-admin", testutil.DeadAddr(t), "-timeout", "1s")
	if code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("health of a dead address: exit %d, stderr %q", code, errOut)
	}

	// Anything but 200 (a draining sluice's /ready is 503) is unhealthy.
	ln := testutil.Listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"draining"}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	code, _, errOut = runHealth(t, nil, "-admin", ln.Addr().String(), "-ready")
	if code != 1 || !strings.Contains(errOut, "/ready: 503") || !strings.Contains(errOut, "draining") {
		t.Errorf("health of a 503: exit %d, stderr %q", code, errOut)
	}

	// No admin listener, an unreadable config, bad flags.
	off := writeFile(t, t.TempDir(), "off.yaml", strings.Replace(cfg, `"${HEALTH_TEST_ADMIN:-127.0.0.1:1}"`, "off", 1))
	code, _, errOut = runHealth(t, nil, "-c", off)
	if code != 1 || !strings.Contains(errOut, "admin.listen is off") {
		t.Errorf("health with admin off: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runHealth(t, nil, "-c", "/nonexistent/sluice.yaml")
	if code != 1 || !strings.Contains(errOut, "pass -admin ADDR") {
		t.Errorf("health without a config: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ = runHealth(t, nil, "-admin"); code != 2 {
		t.Errorf("health -admin with no value: exit %d, want 2", code)
	}
	if code, _, _ = runHealth(t, nil, "extra"); code != 2 {
		t.Errorf("health with an argument: exit %d, want 2", code)
	}
}

func TestHealthURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9901":           "http://127.0.0.1:9901/health",
		":9901":                    "http://127.0.0.1:9901/health",
		"0.0.0.0:9901":             "http://127.0.0.1:9901/health",
		"[::]:9901":                "http://[::1]:9901/health",
		"http://10.0.0.5:9901/":    "http://10.0.0.5:9901/health",
		"https://admin.internal:1": "https://admin.internal:1/health",
	} {
		if got, err := adminURL(in, "/health"); err != nil || got != want {
			t.Errorf("adminURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := adminURL("nowhere", "/health"); err == nil {
		t.Error(`adminURL("nowhere") did not fail`)
	}
	if got, _ := adminURL("127.0.0.1:1", "/ready"); !strings.HasSuffix(got, "/ready") {
		t.Errorf("-ready asks %q", got)
	}
}
