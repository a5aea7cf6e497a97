package edge

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// deadCAGateway is a gateway whose acme block points at a CA that is not
// there (nothing is ever issued), acme_hosts [a.example.com] beside a PEM
// certificate for other.example, and a route for everything else. It
// returns the gateway, its log and its plain and TLS addresses.
func deadCAGateway(t *testing.T, challenges, storage, extra string) (*Gateway, *testLog, string, string) {
	t.Helper()
	ca := testutil.NewCA(t, "pem")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "other", DNS: []string{"other.example"}})
	up := testutil.StartUpstream(t, stub.Options{Name: "up"})
	pln, tln := testutil.Listen(t), testutil.Listen(t)
	yaml := fmt.Sprintf(`
listen: %s
listen_tls:
  - listen: %s
    acme_hosts: [a.example.com]
    certificates: [ { cert_file: %s, key_file: %s } ]
acme:
  ca: https://%s/dir
  agree_terms: true
  challenges: [%s]
  storage: %s
admin: { listen: "off" }
%s
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
`+catchAll, pln.Addr(), tln.Addr(), leaf.CertFile, leaf.KeyFile, testutil.DeadAddr(t), challenges, storage, extra, up.URL)
	log := newTestLog(t)
	gw, err := New(mustParse(t, yaml), slog.New(slog.NewTextHandler(log, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gw.Serve(pln) }()
	go func() { _ = gw.ServeTLS(tln, 0) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Shutdown(ctx)
	})
	return gw, log, pln.Addr().String(), tln.Addr().String()
}

// redisCommandCount is how many times redis at addr ran cmd (INFO
// commandstats).
func redisCommandCount(t *testing.T, addr, cmd string) string {
	t.Helper()
	rc := testutil.RedisClient(t, addr)
	s, err := rc.Do(context.Background(), rc.B().Info().Section("commandstats").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(l, "cmdstat_"+cmd+":calls="); ok {
			n, _, _ := strings.Cut(rest, ",")
			return n
		}
	}
	return "0"
}

// waitObtainFailed waits until the gateway's first order against the
// dead CA failed: certmagic then waits (a minute) before trying again,
// and reads nothing from the storage meanwhile.
func waitObtainFailed(t *testing.T, log *testLog) {
	t.Helper()
	testutil.WaitFor(t, "the order against the dead CA to fail", func() bool {
		return strings.Contains(log.String(), `msg="will retry"`)
	})
}

// A TLS-ALPN-01 validation handshake (RFC 8737 section 3: ALPN
// acme-tls/1 alone) for a name the gateway does not manage fails in the
// gateway, without reaching certmagic: no storage read, no log line per
// handshake, so a client can't make the gateway read Redis and write an
// ERROR line at will.
func TestACMEALPNHandshakeForUnlistedName(t *testing.T) {
	redis := testutil.StartRedis(t)
	_, log, _, tlsAddr := deadCAGateway(t, "http-01, tls-alpn-01", "{ type: redis }", `redis: { addrs: ["`+redis.Addr+`"] }`)
	waitObtainFailed(t, log)
	hgets := redisCommandCount(t, redis.Addr, "hget")
	logged := log.String()
	for i := range 20 {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", tlsAddr, &tls.Config{
			InsecureSkipVerify: true, ServerName: fmt.Sprintf("x%d.attacker.example", i), NextProtos: []string{"acme-tls/1"}})
		if err == nil {
			c.Close()
			t.Errorf("an acme-tls/1 handshake for an unlisted name succeeded")
		}
	}
	if n := redisCommandCount(t, redis.Addr, "hget"); n != hgets {
		t.Errorf("the handshakes read the storage: HGET calls %s -> %s", hgets, n)
	}
	if after := log.String()[len(logged):]; strings.Contains(after, "attacker.example") {
		t.Errorf("the handshakes were logged:\n%s", after)
	}
}

// HTTP-01 (RFC 8555 section 8.3) takes over the challenge path only for
// the names the gateway manages: for any other Host the path is routed
// (an upstream may answer its own challenges) and reads no storage; for
// a managed name an unknown token is the JSON 404.
func TestACMEHTTP01OnlyForManagedNames(t *testing.T) {
	redis := testutil.StartRedis(t)
	_, log, plain, _ := deadCAGateway(t, "http-01", "{ type: redis }", `redis: { addrs: ["`+redis.Addr+`"] }`)
	waitObtainFailed(t, log)
	get := func(host string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+plain+"/.well-known/acme-challenge/sometoken", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	hgets := redisCommandCount(t, redis.Addr, "hget")
	for _, host := range []string{"legacy.example.org", "legacy.example.org:80", "a.example.com.evil"} {
		if code, body := get(host); code != 200 || !strings.Contains(body, `"upstream":"up"`) {
			t.Errorf("Host %s: the challenge path did not reach the route: %d %s", host, code, body)
		}
	}
	if n := redisCommandCount(t, redis.Addr, "hget"); n != hgets {
		t.Errorf("challenge requests for unmanaged names read the storage: HGET calls %s -> %s", hgets, n)
	}
	for _, host := range []string{"a.example.com", "A.Example.COM:80"} {
		if code, body := get(host); code != 404 || !strings.Contains(body, `"error":"unknown ACME challenge"`) {
			t.Errorf("Host %s, unknown token: %d %s", host, code, body)
		}
	}
}

// Shutdown twice (a signal during a shutdown, say) returns, without a
// panic from the ACME manager's second stop.
func TestACMEShutdownTwice(t *testing.T) {
	gw, _, _, _ := deadCAGateway(t, "http-01", "{ dir: "+t.TempDir()+" }", "")
	for i := range 2 {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("Shutdown %d panicked: %v", i+1, r)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = gw.Shutdown(ctx)
		}()
	}
}

// Shutdown during an order waits for it to end and release its Redis
// lock before the Redis client closes: the next process (after sluice
// upgrade, say) takes the lock at once instead of waiting for it to
// expire, and nothing of certmagic runs on after Shutdown returned.
func TestACMEShutdownReleasesRedisLock(t *testing.T) {
	redis := testutil.StartRedis(t)
	gw, log, _, _ := deadCAGateway(t, "http-01", "{ type: redis }", `redis: { addrs: ["`+redis.Addr+`"] }`)
	rc := testutil.RedisClient(t, redis.Addr)
	locks := func() []string {
		ks, err := rc.Do(context.Background(), rc.B().Keys().Pattern("*:lock:*").Build()).AsStrSlice()
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	waitObtainFailed(t, log) // holding the lock while it waits to retry
	if l := locks(); len(l) != 1 {
		t.Fatalf("locks while ordering: %q, want one", l)
	}
	// The unlock is slow: Redis holds writes back for a while (not a
	// timing assumption: Shutdown must wait for the unlock however long
	// it takes, within its context).
	if err := rc.Do(context.Background(), rc.B().ClientPause().Timeout(700).Write().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if l := locks(); len(l) != 0 {
		t.Errorf("Shutdown returned with the order's lock still in Redis: %q", l)
	}
	if g := certmagicGoroutines(); g != "" {
		t.Errorf("certmagic still at work after Shutdown returned:\n%s", g)
	}
}

// certmagicGoroutines are the stacks of the goroutines running certmagic
// code (other than a test's). Left out: the maintenance loop (Cache.Stop
// returns when it signalled it is done, a few instructions before its
// goroutine ends), and the file storage's lock file keeper of an earlier
// test (it sleeps 5s before it sees its lock file gone).
func certmagicGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "caddyserver/certmagic") && !strings.Contains(g, "_test.go") &&
			!strings.Contains(g, "maintainAssets") && !strings.Contains(g, "keepLockfileFresh") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// A reload that adds the acme block to a gateway started without one
// says that ACME starts with the process: refused for a listener with
// only acme_hosts (it would have no certificate), and a warning when PEM
// certificates serve meanwhile.
func TestACMEBlockAddedByReload(t *testing.T) {
	ca := testutil.NewCA(t, "pem")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "a", DNS: []string{"a.example"}})
	up := testutil.StartUpstream(t, stub.Options{Name: "up"})
	plain, tlsAddr := testutil.DeadAddr(t), testutil.DeadAddr(t)
	config := func(listener, acme string) string {
		return fmt.Sprintf(`
listen: %s
listen_tls:
  - listen: %s
    name: public
%s
admin: { listen: "off" }
%s
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
`+catchAll, plain, tlsAddr, listener, acme, up.URL)
	}
	pem := "    certificates: [ { cert_file: " + leaf.CertFile + ", key_file: " + leaf.KeyFile + " } ]"
	acme := "acme: { agree_terms: true, ca: \"https://" + testutil.DeadAddr(t) + "/dir\", storage: { dir: " + testutil.ScratchDir(t) + " } }"
	log := newTestLog(t)
	gw, err := New(mustParse(t, config(pem, "")), slog.New(slog.NewTextHandler(log, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Shutdown(context.Background()) })

	err = gw.Apply(mustParse(t, config("    acme_hosts: [a.example.com]", acme)))
	if err == nil || !strings.Contains(err.Error(), "listen_tls[0].acme_hosts: the acme block was added after start") || !strings.Contains(err.Error(), "sluice upgrade") {
		t.Errorf("reload adding acme, only acme_hosts: %v", err)
	}
	if err := gw.Apply(mustParse(t, config(pem+"\n    acme_hosts: [a.example.com]", acme))); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), `level=WARN msg="the acme block was added after start: acme_hosts get no ACME certificate`) {
		t.Errorf("reload adding acme beside PEM certificates: no warning")
	}
}

// A Redis that may lose the ACME storage's keys is named at start: an
// allkeys-* eviction policy, and no persistence at all. A Redis set up
// to keep them gets no warning.
func TestACMERedisStorageWarnsAboutLossyRedis(t *testing.T) {
	for _, c := range []struct {
		policy, save string
		warns        []string
	}{
		{"allkeys-lru", "", []string{"Redis may evict certificates", "Redis persists nothing"}},
		{"noeviction", "3600 1", nil},
	} {
		t.Run(c.policy, func(t *testing.T) {
			redis := testutil.StartRedis(t)
			rc := testutil.RedisClient(t, redis.Addr)
			for _, kv := range [][2]string{{"maxmemory-policy", c.policy}, {"save", c.save}} {
				if err := rc.Do(context.Background(), rc.B().ConfigSet().ParameterValue().ParameterValue(kv[0], kv[1]).Build()).Error(); err != nil {
					t.Fatal(err)
				}
			}
			_, log, _, _ := deadCAGateway(t, "http-01", "{ type: redis }", `redis: { addrs: ["`+redis.Addr+`"] }`)
			got := strings.Count(log.String(), "level=WARN msg=\"acme redis storage: Redis")
			for _, w := range c.warns {
				if !strings.Contains(log.String(), w) {
					t.Errorf("no warning %q", w)
				}
			}
			if got != len(c.warns) {
				t.Errorf("%d warnings about Redis, want %d", got, len(c.warns))
			}
		})
	}
}
