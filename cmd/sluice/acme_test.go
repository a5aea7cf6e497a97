package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/edge"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/internal/testutil"
)

// lockedBuffer is a log written by a gateway and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// acmeLeaf waits until addr serves name a certificate that verifies
// against roots, and returns it.
func acmeLeaf(t *testing.T, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	testutil.WaitFor(t, "a certificate for "+name+" on "+addr, func() bool {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			return false
		}
		defer c.Close()
		leaf = c.ConnectionState().PeerCertificates[0]
		return true
	})
	return leaf
}

// Several instances on Redis storage, each in its own process, both
// listing site.sluice.test: B (the binary) takes the lock and orders it,
// and pebble validates against A (in this process), which finds the
// challenge answer in Redis (certmagic's "distributed" solving: A never
// started that challenge). A waits on B's lock, then serves B's
// certificate from Redis without a new order.
func TestACMEChallengeAnsweredFromRedis(t *testing.T) {
	redis := testutil.StartRedis(t)
	up := testutil.StartUpstream(t, stub.Options{Name: "demo"})
	pln, tln := testutil.Listen(t), testutil.Listen(t)
	port := func(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }
	p := testutil.StartPebble(t, testutil.PebbleOptions{HTTPPort: port(pln), TLSPort: port(tln)})
	configFor := func(listen, listenTLS, hosts string) string {
		return fmt.Sprintf(`
listen: %s
listen_tls: [ { listen: %s, acme_hosts: %s } ]
acme:
  ca: %s
  ca_root_file: %s
  agree_terms: true
  challenges: [http-01]
  storage: { type: redis }
redis: { addrs: ["%s"] }
admin: { listen: "off" }
upstreams:
  demo: { targets: [ { url: "%s" } ] }
routes:
  - { name: all, match: { prefix: / }, upstream: demo }
`, listen, listenTLS, hosts, p.Directory, p.ServerCAFile, redis.Addr, up.URL)
	}
	parse := func(src string) *config.Config {
		cfg, err := config.Parse("a.yaml", []byte(src), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// B listens on fixed ports: certmagic looks for its challenge ports
	// in the config (with port 0 it would bind 80 itself). It takes the
	// lock before A starts; its validation waits in A's listen backlog.
	b := testutil.StartSluice(t, configFor(testutil.DeadAddr(t), testutil.DeadAddr(t), "[site.sluice.test]"))
	testutil.WaitFor(t, "B to take the lock for site.sluice.test", func() bool {
		return strings.Contains(b.Log(), "lock acquired")
	})
	logA := &lockedBuffer{}
	a, err := edge.New(parse(configFor(pln.Addr().String(), tln.Addr().String(), "[a.sluice.test, site.sluice.test]")), slog.New(slog.NewTextHandler(logA, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = a.Serve(pln) }()
	go func() { _ = a.ServeTLS(tln, 0) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	roots := p.Roots(t)
	acmeLeaf(t, tln.Addr().String(), "a.sluice.test", roots)

	fromB := acmeLeaf(t, b.TLSAddrs[0], "site.sluice.test", roots)
	answered := false
	for _, line := range strings.Split(logA.String(), "\n") {
		answered = answered || strings.Contains(line, `msg="served key authentication"`) &&
			strings.Contains(line, "distributed=true") && strings.Contains(line, "identifier=site.sluice.test")
	}
	if !answered {
		t.Errorf("A did not answer B's challenge from Redis:\n%s", logA.String())
	}

	fromA := acmeLeaf(t, tln.Addr().String(), "site.sluice.test", roots)
	if fromA.SerialNumber.Cmp(fromB.SerialNumber) != 0 {
		t.Errorf("A serves %x for site.sluice.test, B %x: not the shared certificate", fromA.SerialNumber, fromB.SerialNumber)
	}
	if n := p.Orders(); n != 2 {
		t.Errorf("pebble got %d orders, want 2 (A's name and B's; none for B's name by A)", n)
	}
}
