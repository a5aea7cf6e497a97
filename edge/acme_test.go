package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// acmeSetup is a gateway whose TLS listener gets certificates from a
// pebble started for the test, which validates against the gateway's own
// listeners.
type acmeSetup struct {
	pebble     *testutil.Pebble
	plain, tls string // the gateway's listener addresses
	gw         *Gateway
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// startACMEGateway starts pebble and a gateway on loopback listeners;
// acme is the body of the acme block (ca and ca_root_file are added).
func startACMEGateway(t *testing.T, p *testutil.Pebble, pln, tln net.Listener, acme, extra string) *Gateway {
	t.Helper()
	up := testutil.StartUpstream(t, stub.Options{Name: "up"})
	yaml := fmt.Sprintf(`
listen: %s
listen_tls:
  - listen: %s
    acme_hosts: [site.sluice.test, www.sluice.test]
acme:
  ca: %s
  ca_root_file: %s
  agree_terms: true
  email: ops@sluice.test
%s
admin: { listen: "off" }
%s
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
`+catchAll, pln.Addr(), tln.Addr(), p.Directory, p.ServerCAFile, acme, extra, up.URL)
	gw, err := New(mustParse(t, yaml), slog.New(slog.NewTextHandler(testWriter{t}, nil)), "test")
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
	return gw
}

func newACMESetup(t *testing.T, o testutil.PebbleOptions, acme, extra string) *acmeSetup {
	t.Helper()
	pln, tln := testutil.Listen(t), testutil.Listen(t)
	o.HTTPPort, o.TLSPort = portOf(pln.Addr().String()), portOf(tln.Addr().String())
	p := testutil.StartPebble(t, o)
	gw := startACMEGateway(t, p, pln, tln, acme, extra)
	return &acmeSetup{pebble: p, plain: pln.Addr().String(), tls: tln.Addr().String(), gw: gw}
}

// issuedLeaf handshakes with addr for name, verifying against roots, and
// returns the certificate served (nil while there is none that verifies).
func issuedLeaf(addr, name string, roots *x509.CertPool) *x509.Certificate {
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		return nil
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// waitIssued waits until addr serves name a certificate that verifies
// against pebble's root.
func waitIssued(t *testing.T, p *testutil.Pebble, addr, name string) *x509.Certificate {
	t.Helper()
	roots := p.Roots(t)
	var leaf *x509.Certificate
	testutil.WaitFor(t, "a certificate for "+name+" issued by pebble", func() bool {
		leaf = issuedLeaf(addr, name, roots)
		return leaf != nil
	})
	return leaf
}

// HTTP-01 (RFC 8555 section 8.3): pebble fetches the key authorization
// from the gateway's plain listener, issues, and a TLS client verifying
// against pebble's root gets the certificate for the SNI it asks.
func TestACMEHTTP01Issuance(t *testing.T) {
	s := newACMESetup(t, testutil.PebbleOptions{}, "  challenges: [http-01]\n  storage: { dir: "+t.TempDir()+" }", "")
	leaf := waitIssued(t, s.pebble, s.tls, "site.sluice.test")
	if err := leaf.VerifyHostname("site.sluice.test"); err != nil {
		t.Fatal(err)
	}
	waitIssued(t, s.pebble, s.tls, "www.sluice.test")
}

// testWriter sends the gateway's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }
