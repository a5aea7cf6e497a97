package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// clientIP is the address the test's client connects from: not nginx's
// (127.0.0.1, its address towards sluice), so the headers can tell the
// client from the proxy. All of 127.0.0.0/8 is loopback on Linux.
const clientIP = "127.0.0.2"

// nginxConfig is deploy/nginx/sluice.conf pointed at the test's sluice
// instances and a free loopback port, changing nothing else.
func nginxConfig(t *testing.T, listen string, sluices ...string) string {
	t.Helper()
	data, err := os.ReadFile("nginx/sluice.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for old, repl := range map[string]string{
		"listen 80;":                        "listen " + listen + ";",
		"server 127.0.0.1:8080 max_fails=3": "server " + sluices[0] + " max_fails=3",
		"server 127.0.0.1:8081 max_fails=3": "server " + sluices[1] + " max_fails=3",
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("nginx/sluice.conf no longer contains %q", old)
		}
		s = strings.ReplaceAll(s, old, repl)
	}
	return s
}

// behindNginx is the sluice config of one instance behind that nginx:
// it trusts nginx's address, logs every request to stdout and names
// itself in a response header.
func behindNginx(name, upstream string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, auth: false }
server:
  trusted_proxies: [127.0.0.1]
  shutdown_timeout: 10s
access_log: { enabled: true }
upstreams:
  app: { targets: [ { url: "%s" } ] }
routes:
  - name: all
    match: { prefix: / }
    upstream: app
    response_headers: { set: { X-Sluice-Instance: %s } }
`, upstream, name)
}

// fromClientIP is an HTTP client whose connections come from clientIP.
func fromClientIP() *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 8}}
}

// The shipped nginx config in front of two real sluice processes and a
// stub upstream: the client's address reaches the upstream in
// X-Forwarded-For and X-Real-IP (sluice trusts nginx, so it extends the
// chain and sees the real client, not nginx and not a spoofed entry),
// both instances get traffic, SIGTERM to one of them in the middle of a
// steady request loop costs no client request, and nginx keeps its
// connections to sluice open between requests.
func TestNginxInFrontOfTwoSluices(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "app"})
	a := testutil.StartSluice(t, behindNginx("a", up.URL))
	b := testutil.StartSluice(t, behindNginx("b", up.URL))
	listen := testutil.DeadAddr(t)
	testutil.StartNginx(t, nginxConfig(t, listen, a.Addr, b.Addr), listen)
	client := fromClientIP()
	base := "http://" + listen

	// 1. Forwarding headers, with a client that tries to spoof its address.
	req, _ := http.NewRequest("GET", base+"/__stub/echo", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var echo stub.Echo
	err = json.NewDecoder(resp.Body).Decode(&echo)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("echo through nginx: %d %v", resp.StatusCode, err)
	}
	header := func(name string) string {
		for k, v := range echo.Headers {
			if strings.EqualFold(k, name) {
				return strings.Join(v, ",")
			}
		}
		return ""
	}
	// nginx appends the client it saw, sluice appends nginx (trusted).
	if got, want := header("X-Forwarded-For"), "203.0.113.9, "+clientIP+", 127.0.0.1"; got != want {
		t.Errorf("upstream X-Forwarded-For = %q, want %q", got, want)
	}
	if got := header("X-Real-Ip"); got != clientIP {
		t.Errorf("upstream X-Real-IP = %q, want the client %s", got, clientIP)
	}
	if got := header("X-Request-Id"); len(got) != 32 {
		t.Errorf("upstream X-Request-Id = %q, want nginx's 32-hex $request_id", got)
	}
	if got := header("Connection"); got != "" && !strings.EqualFold(got, "keep-alive") {
		t.Errorf("upstream Connection = %q", got)
	}
	// sluice itself took the client to be the rightmost untrusted address:
	// the real client, neither nginx nor the spoofed entry.
	testutil.WaitFor(t, "the access log line", func() bool {
		return strings.Contains(a.Log()+b.Log(), `"path":"/__stub/echo"`)
	})
	if logs := a.Log() + b.Log(); !strings.Contains(logs, `"client_ip":"`+clientIP+`"`) ||
		strings.Contains(logs, `"client_ip":"127.0.0.1"`) || strings.Contains(logs, `"client_ip":"203.0.113.9"`) {
		t.Errorf("sluice's access log does not name the client %s:\n%s%s", clientIP, a.Log(), b.Log())
	}

	// 2. A steady loop of 2000 GETs from 4 clients; at request 500, SIGTERM
	// to instance a. Every request must succeed; b must carry at least
	// the last 500 on its own, after a has exited.
	const total, stopAt, workers = 2000, 500, 4
	var (
		done, failed atomic.Int64
		served       sync.Map // instance -> *atomic.Int64
		afterExit    atomic.Int64
		aExited      atomic.Bool
		firstFailure atomic.Pointer[string]
		stopOnce     sync.Once
		aExit        = make(chan int, 1)
	)
	count := func(name string) int64 {
		v, _ := served.LoadOrStore(name, new(atomic.Int64))
		return v.(*atomic.Int64).Load()
	}
	var beforeStop [2]int64
	stopA := func() {
		beforeStop = [2]int64{count("a"), count("b")}
		if err := a.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
		go func() {
			code, err := a.Wait(30 * time.Second)
			if err != nil {
				code = -1
			}
			aExited.Store(true)
			aExit <- code
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > total {
					return
				}
				if n == stopAt {
					stopOnce.Do(stopA)
				}
				exitedBefore := aExited.Load()
				req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/items/%d", base, n), nil)
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					msg := err.Error()
					firstFailure.CompareAndSwap(nil, &msg)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					msg := fmt.Sprintf("request %d: status %d from %q", n, resp.StatusCode, resp.Header.Get("X-Sluice-Instance"))
					firstFailure.CompareAndSwap(nil, &msg)
					continue
				}
				inst := resp.Header.Get("X-Sluice-Instance")
				v, _ := served.LoadOrStore(inst, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
				if exitedBefore {
					afterExit.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()

	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed while instance a drained; first: %s", n, total, *firstFailure.Load())
	}
	if beforeStop[0] == 0 || beforeStop[1] == 0 {
		t.Errorf("before the stop, a served %d and b %d: traffic must reach both", beforeStop[0], beforeStop[1])
	}
	select {
	case code := <-aExit:
		if code != 0 {
			t.Errorf("instance a exited %d after SIGTERM, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("instance a did not exit after SIGTERM")
	}
	if afterExit.Load() == 0 {
		t.Errorf("no request was sent after instance a exited: the loop did not cover the failover")
	}
	t.Logf("a %d, b %d (%d after a exited), %d ok", count("a"), count("b"), afterExit.Load(), done.Load())

	// 3. Keep-alive: after the loop, nginx still holds idle connections to
	// b (HTTP/1.1, no "Connection: close", the keepalive pool). Without
	// them it would have opened a connection per request and closed it.
	_, body := testutil.Get(t, "http://"+b.AdminAddr+"/info")
	var info struct {
		OpenConnections int64 `json:"open_connections"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.OpenConnections < 1 || info.OpenConnections > workers*2 {
		t.Errorf("nginx holds %d idle connections to sluice after the loop (%v), want 1..%d: upstream keep-alive is not working", info.OpenConnections, err, workers*2)
	}
}
