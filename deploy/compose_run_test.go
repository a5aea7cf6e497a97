package deploy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
	"gopkg.in/yaml.v3"
)

// inNetns marks the child test process that runs inside its own network
// namespace.
const inNetns = "SLUICE_COMPOSE_NETNS"

// The compose stack's own commands, environments and files, run as
// processes instead of containers (no container engine or images here):
// nginx with deploy/nginx/sluice.conf, both sluice instances with
// compose's sluice.yaml and environment, the two demo upstreams and Redis
// with compose's command lines, and Prometheus with compose's
// prometheus.yml and the alert rules. compose.yaml puts them all in one
// network namespace on fixed ports (80, 8080, 8081, 9901, 9902, 9001,
// 9002, 6379, 9090), so the test runs in a new network namespace of its
// own (unshare -n, loopback only): the fixed ports collide with nothing
// and no byte leaves it. Grafana is not run (no Debian package).
func TestComposeStackRuns(t *testing.T) {
	if os.Getenv(inNetns) == "" {
		reexecInNetns(t)
		return
	}
	c := loadCompose(t)
	expand := composeEnv(t)
	// A mounted file's path on this machine, from its path in a container.
	hostPath := func(svc, inContainer string) string {
		for _, v := range c.Services[svc].Volumes {
			if parts := strings.Split(v, ":"); parts[1] == inContainer {
				p, _ := filepath.Abs(filepath.Join("compose", parts[0]))
				return p
			}
		}
		t.Fatalf("%s mounts nothing at %s", svc, inContainer)
		return ""
	}
	start := func(name, bin string, env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				out, _ := os.ReadFile(log.Name())
				t.Logf("%s output:\n%s", name, testutil.Indent(string(out)))
			}
		})
	}
	waitTCP := func(what, addr string) {
		t.Helper()
		testutil.WaitFor(t, what+" to listen on "+addr, func() bool {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = conn.Close()
			}
			return err == nil
		})
	}
	argAfter := func(args []string, flag string) string {
		if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
			return args[i+1]
		}
		t.Fatalf("no %s in %v", flag, args)
		return ""
	}

	for _, svc := range []string{"upstream-a", "upstream-b"} {
		args := c.Services[svc].Command
		start(svc, testutil.Binary(t, "upstream"), nil, args...)
		waitTCP(svc, argAfter(args, "-addr"))
	}
	redisArgs := c.Services["redis"].Command
	start("redis", needTool(t, "redis-server", "Debian package redis-server"), nil,
		append(slices.Clone(redisArgs[1:]), "--dir", t.TempDir())...)
	waitTCP("redis", "127.0.0.1:"+argAfter(redisArgs, "--port"))

	var sluiceListens []string
	for _, svc := range []string{"sluice-a", "sluice-b"} {
		var env []string
		vals := map[string]string{}
		for k, v := range c.Services[svc].Environment {
			vals[k] = expand(v)
		}
		vals["SLUICE_CONFIG"] = hostPath(svc, vals["SLUICE_CONFIG"])
		for k, v := range vals {
			env = append(env, k+"="+v)
		}
		start(svc, testutil.Binary(t, "sluice"), env, "serve")
		sluiceListens = append(sluiceListens, vals["SLUICE_LISTEN"])
		admin := vals["SLUICE_ADMIN_LISTEN"]
		testutil.WaitFor(t, svc+" to be ready", func() bool {
			code, _, _, err := get("http://" + admin + "/ready")
			return err == nil && code == 200
		})
		// What the image's HEALTHCHECK runs, with this environment.
		cmd := exec.Command(testutil.Binary(t, "sluice"), "health")
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: sluice health: %v\n%s", svc, err, out)
		}
	}

	conf, err := os.ReadFile(hostPath("nginx", "/etc/nginx/conf.d/default.conf"))
	if err != nil {
		t.Fatal(err)
	}
	testutil.StartNginx(t, string(conf), "127.0.0.1:80")

	// Prometheus with compose's config: the secret and the rules at
	// their paths here, a 1 s scrape so the test need not wait 15 s.
	dir := t.TempDir()
	pw := filepath.Join(dir, "secret")
	if err := os.WriteFile(pw, []byte(expand("${SLUICE_ADMIN_PASSWORD}")), 0o600); err != nil {
		t.Fatal(err)
	}
	promCfg, err := os.ReadFile(hostPath("prometheus", "/etc/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer(
		"/run/secrets/sluice_admin_password", pw,
		"- sluice-alerts.yml", "- "+hostPath("prometheus", "/etc/prometheus/sluice-alerts.yml"),
		"scrape_interval: 15s", "scrape_interval: 1s",
	).Replace(string(promCfg))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	var promArgs []string
	for _, a := range c.Services["prometheus"].Command {
		if strings.HasPrefix(a, "--config.file=") {
			a = "--config.file=" + filepath.Join(dir, "prometheus.yml")
		}
		promArgs = append(promArgs, a)
	}
	start("prometheus", needTool(t, "prometheus", "Debian package prometheus"), nil,
		append(promArgs, "--storage.tsdb.path="+filepath.Join(dir, "data"))...)

	// Through nginx: both upstreams answer, and both instances serve.
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		code, body, _, err := get(fmt.Sprintf("http://127.0.0.1:80/api/users/%d", i))
		if err != nil || code != 200 {
			t.Fatalf("request %d through nginx: %d %v %s", i, code, err, body)
		}
		for _, u := range []string{"upstream-a", "upstream-b"} {
			if strings.Contains(body, `"`+u+`"`) {
				seen[u] = true
			}
		}
	}
	if !seen["upstream-a"] || !seen["upstream-b"] {
		t.Errorf("upstreams seen through nginx: %v, want both", seen)
	}

	// Prometheus scrapes both instances, and each has served requests.
	testutil.WaitFor(t, "Prometheus to scrape both sluice instances with traffic", func() bool {
		code, body, _, err := get("http://127.0.0.1:9090/api/v1/query?query=" +
			"count(sum%20by%20(instance)%20(sluice_requests_total%7Bjob%3D%22sluice%22%7D)%20%3E%200)")
		return err == nil && code == 200 && strings.Contains(body, `"2"]`)
	})

	// The cluster-scope limit (100/s, burst 20, per client address) is
	// one limit for both instances, kept in Redis: a fast burst through
	// nginx is refused in part, and Redis holds the limiter's keys.
	limited := 0
	for i := 0; i < 300; i++ {
		if code, _, _, err := get("http://127.0.0.1:80/api/users/1"); err == nil && code == 429 {
			limited++
		}
	}
	if limited == 0 {
		t.Error("300 requests at once through nginx: none limited by the cluster-scope rate limit")
	}
	if n := redisDBSize(t, "127.0.0.1:"+argAfter(redisArgs, "--port")); n == 0 {
		t.Error("Redis holds no keys after cluster-scope limited traffic")
	}
	t.Logf("%d of 300 requests limited; sluice instances %v", limited, sluiceListens)
}

// reexecInNetns runs this test again in a new network namespace with
// only loopback up, and reports its result.
func reexecInNetns(t *testing.T) {
	unshare := needTool(t, "unshare", "util-linux")
	needTool(t, "ip", "Debian package iproute2")
	if os.Geteuid() != 0 {
		msg := "a new network namespace needs root (unshare -n)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(unshare, "--net", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		os.Args[0], "-test.run=^TestComposeStackRuns$", "-test.v", "-test.count=1", "-test.timeout=4m")
	cmd.Env = append(os.Environ(), inNetns+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the stack test in its network namespace: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "limited;") || strings.Contains(l, "SKIP") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if !strings.Contains(string(out), "--- PASS: TestComposeStackRuns") {
		t.Fatalf("the stack test did not pass in its namespace:\n%s", out)
	}
}

// redisDBSize asks Redis at addr for DBSIZE over a raw RESP connection.
func redisDBSize(t *testing.T, addr string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("*1\r\n$6\r\nDBSIZE\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(line, ":%d", &n); err != nil {
		t.Fatalf("DBSIZE answered %q", line)
	}
	return n
}

// loadCompose decodes compose.yaml strictly.
func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}
