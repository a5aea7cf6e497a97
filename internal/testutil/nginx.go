package testutil

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Nginx is a real nginx started by StartNginx.
type Nginx struct {
	Dir string // its prefix: nginx.conf, error.log, temp paths
	cmd *exec.Cmd
}

// ErrorLog returns what nginx logged so far.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "error.log"))
	return string(b)
}

// StartNginx runs a real nginx (Debian's package; `make test` installs it)
// with one worker and httpConf included in its http block, after `nginx
// -t` accepted it, and waits until listen (the address httpConf listens
// on) accepts connections. Everything nginx writes stays in a temporary
// directory; it is stopped when the test ends.
func StartNginx(t testing.TB, httpConf, listen string) *Nginx {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx" // Debian's, outside a non-root user's PATH
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("nginx is not installed: `make deps` (or `make test`) installs it")
		}
	}
	n := &Nginx{Dir: t.TempDir()}
	inc := filepath.Join(n.Dir, "http.conf")
	conf := filepath.Join(n.Dir, "nginx.conf")
	main := strings.NewReplacer("DIR", n.Dir, "INCLUDE", inc).Replace(`daemon off;
master_process on;
worker_processes 1;
pid DIR/nginx.pid;
error_log DIR/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path DIR/body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
    include INCLUDE;
}
`)
	for p, body := range map[string]string{inc: httpConf, conf: main} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-p", n.Dir, "-c", conf, "-e", filepath.Join(n.Dir, "error.log")}
	if out, err := exec.Command(bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t refused the config: %v\n%s\n%s", err, out, httpConf)
	}
	n.cmd = exec.Command(bin, args...)
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM: the master stops its workers, then exits (a killed
		// master would leave them running).
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx error log:\n%s", n.ErrorLog())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			return n
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited at start:\n%s", n.ErrorLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s:\n%s", listen, n.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
