// Package testutil starts the real servers sluice's tests talk to (upstream
// stubs, the sluice binary) on 127.0.0.1 with ports the kernel picks, and
// stops them with t.Cleanup.
package testutil

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/sluicegw/sluice/bench/stub"
)

// Listen opens a TCP listener on a free loopback port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Upstream is a running stub with a count of the connections it accepted.
type Upstream struct {
	*stub.Server
	Addr  string // host:port
	URL   string // http://host:port
	conns atomic.Int64
	ln    net.Listener
}

// Conns is how many TCP connections the upstream has accepted.
func (u *Upstream) Conns() int64 { return u.conns.Load() }

// Stop closes the upstream's listener and connections now (a target dying).
func (u *Upstream) Stop() { _ = u.Server.Close() }

// StartUpstream runs a stub on a free loopback port until the test ends.
func StartUpstream(t testing.TB, o stub.Options) *Upstream {
	t.Helper()
	return StartUpstreamAt(t, "127.0.0.1:0", o)
}

// StartUpstreamAt runs a stub on addr (a loopback address; port 0 picks
// one), e.g. to bring a stopped target back on its old port.
func StartUpstreamAt(t testing.TB, addr string, o stub.Options) *Upstream {
	t.Helper()
	ln := ListenRetry(t, addr)
	u := &Upstream{Server: stub.New(o), Addr: ln.Addr().String(), ln: ln}
	u.URL = "http://" + u.Addr
	go func() { _ = u.Serve(countingListener{ln, &u.conns}) }()
	t.Cleanup(func() { _ = u.Server.Close() })
	return u
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// DeadAddr returns a loopback address nothing listens on.
func DeadAddr(t testing.TB) string {
	ln := Listen(t)
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// ModuleRoot finds the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binary builds ./cmd/NAME once per test process and returns its path.
func Binary(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "sluice-bin-")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{"./cmd/sluice", "./bench/upstream"} {
			cmd := exec.Command("go", "build", "-o", buildDir, pkg)
			cmd.Dir = ModuleRoot(t)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

// Sluice is a sluice process started by StartSluice.
type Sluice struct {
	Cmd        *exec.Cmd
	ConfigPath string
	Addr       string // data plane host:port
	AdminAddr  string
	logMu      sync.Mutex
	log        bytes.Buffer
	exited     chan struct{}
	exitErr    error
}

// Log returns what the process has logged so far.
func (s *Sluice) Log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// Wait waits for the process to exit and returns its exit code.
func (s *Sluice) Wait(timeout time.Duration) (int, error) {
	select {
	case <-s.exited:
		if s.exitErr == nil {
			return 0, nil
		}
		if ee, ok := s.exitErr.(*exec.ExitError); ok {
			return ee.ExitCode(), nil
		}
		return -1, s.exitErr
	case <-time.After(timeout):
		return -1, fmt.Errorf("sluice did not exit within %v", timeout)
	}
}

// StartSluice writes config to a file (listen and admin addresses should be
// 127.0.0.1:0), starts the sluice binary on it, and waits until it logs the
// addresses it listens on.
func StartSluice(t testing.TB, config string, env ...string) *Sluice {
	t.Helper()
	bin := Binary(t, "sluice")
	dir := t.TempDir()
	s := &Sluice{ConfigPath: filepath.Join(dir, "sluice.yaml"), exited: make(chan struct{})}
	if err := os.WriteFile(s.ConfigPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Cmd = exec.Command(bin, "serve", "-c", s.ConfigPath)
	s.Cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	s.Cmd.Stderr = pw
	s.Cmd.Stdout = pw
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			s.log.WriteString(line + "\n")
			s.logMu.Unlock()
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "sluice started" {
				s.Addr, _ = m["listen"].(string)
				s.AdminAddr, _ = m["admin"].(string)
				once.Do(func() { close(started) })
			}
		}
	}()
	go func() {
		s.exitErr = s.Cmd.Wait()
		_ = pw.Close()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.Cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Logf("sluice log:\n%s", s.Log())
		}
	})
	select {
	case <-started:
	case <-s.exited:
		<-logDone
		t.Fatalf("sluice exited at start:\n%s", s.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("sluice did not start:\n%s", s.Log())
	}
	return s
}

// Get does an HTTP GET with a 10 s timeout and returns status and body.
func Get(t testing.TB, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// RawExchange writes raw to a new connection to addr and returns
// everything read back until the server closes or 5 s pass.
func RawExchange(t testing.TB, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// Indent is a helper for readable failure messages.
func Indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// Process is a child process started by StartProcess.
type Process struct {
	Cmd    *exec.Cmd
	logMu  sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
}

// Log returns what the process wrote so far.
func (p *Process) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// StartProcess starts the binary built from ./cmd/NAME or ./bench/NAME with
// args, and waits until a line of its output contains ready. It is killed
// when the test ends.
func StartProcess(t testing.TB, name, ready string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(Binary(t, name), args...), exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p.Cmd.Stdout, p.Cmd.Stderr = pw, pw
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan struct{})
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			p.logMu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.logMu.Unlock()
			if strings.Contains(sc.Text(), ready) {
				once.Do(func() { close(seen) })
			}
		}
	}()
	go func() {
		_ = p.Cmd.Wait()
		_ = pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.exited
	})
	select {
	case <-seen:
	case <-p.exited:
		<-logDone
		t.Fatalf("%s exited before %q:\n%s", name, ready, p.Log())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not log %q:\n%s", name, ready, p.Log())
	}
	return p
}

// Redis is a redis-server started by StartRedis.
type Redis struct {
	Addr string
	cmd  *exec.Cmd
	dir  string
}

// StartRedis runs a real redis-server on a free loopback port, without
// persistence, until the test ends (or Stop). `make test` installs
// redis-server when it is missing.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisAt(t, DeadAddr(t))
}

// StartRedisAt runs redis-server on addr (e.g. to restart one on its port).
func StartRedisAt(t testing.TB, addr string) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: `make deps` (or `make test`) installs it")
	}
	_, port, _ := net.SplitHostPort(addr)
	r := &Redis{Addr: addr, dir: t.TempDir()}
	r.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_, _ = io.WriteString(c, "PING\r\n")
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (Redis dying).
func (r *Redis) Stop() {
	if r.cmd.Process != nil && r.cmd.ProcessState == nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}

// WaitFor polls cond every 10ms for up to 15s: for changes made by timers,
// watchers and other processes. It fails the test with what it waited for.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ListenRetry listens on addr, retrying for a second while a just-closed
// listener's port is released (to restart a server on its old port).
func ListenRetry(t testing.TB, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// StartRedisCluster starts a real three-master Redis Cluster on loopback
// (redis-server --cluster-enabled yes, joined with redis-cli --cluster
// create) and returns the masters' addresses. Stopped when the test ends.
func StartRedisCluster(t testing.TB) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed: `make deps` (or `make test`) installs it")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli is not installed (it comes with redis-server)")
	}
	var addrs []string
	for i := 0; i < 3; i++ {
		addr := DeadAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		dir := t.TempDir()
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no", "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addrs = append(addrs, addr)
	}
	for _, a := range addrs {
		WaitFor(t, "redis cluster node "+a, func() bool {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	_, port, _ := net.SplitHostPort(addrs[0])
	WaitFor(t, "the cluster to be ok", func() bool {
		out, _ := exec.Command(cli, "-p", port, "cluster", "info").Output()
		return strings.Contains(string(out), "cluster_state:ok")
	})
	return addrs
}

// StartRedisSentinel starts a Redis master and one sentinel watching it as
// master set "sluice" on loopback, and returns the sentinel's address.
func StartRedisSentinel(t testing.TB) (sentinel string, master *Redis) {
	t.Helper()
	master = StartRedis(t)
	bin, _ := exec.LookPath("redis-server")
	addr := DeadAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	_, masterPort, _ := net.SplitHostPort(master.Addr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := "bind 127.0.0.1\nport " + port + "\ndir " + dir + "\nsentinel monitor sluice 127.0.0.1 " + masterPort + " 1\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	WaitFor(t, "the sentinel to know its master", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_, _ = io.WriteString(c, "SENTINEL get-master-addr-by-name sluice\r\n")
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		b := make([]byte, 256)
		n, _ := c.Read(b)
		return strings.Contains(string(b[:n]), masterPort)
	})
	return addr, master
}

// RedisClient connects a rueidis client (client-side caching on, as sluice
// uses it) to addrs and closes it when the test ends.
func RedisClient(t testing.TB, addrs ...string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
