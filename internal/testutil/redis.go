package testutil

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

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
	// Every node must say ok, not only the first: a node that has not yet
	// heard of the others' slots answers CLUSTERDOWN, and a limiter
	// falls back to its local limits (a strict test then admits more
	// than its limit).
	for _, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		WaitFor(t, "the cluster to be ok on "+a, func() bool {
			out, _ := exec.Command(cli, "-p", port, "cluster", "info").Output()
			return strings.Contains(string(out), "cluster_state:ok")
		})
	}
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
