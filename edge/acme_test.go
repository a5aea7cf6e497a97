package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
	log        *testLog
	yaml       string // the gateway's config
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// startACMEGateway starts pebble and a gateway on loopback listeners;
// acme is the body of the acme block (ca and ca_root_file are added).
func startACMEGateway(t *testing.T, p *testutil.Pebble, pln, tln net.Listener, acme, extra string, listener ...string) (*Gateway, *testLog, string) {
	t.Helper()
	up := testutil.StartUpstream(t, stub.Options{Name: "up"})
	yaml := fmt.Sprintf(`
listen: %s
listen_tls:
  - listen: %s
    acme_hosts: [site.sluice.test, www.sluice.test]
%s
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
`+catchAll, pln.Addr(), tln.Addr(), strings.Join(listener, "\n"), p.Directory, p.ServerCAFile, acme, extra, up.URL)
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
	return gw, log, yaml
}

func newACMESetup(t *testing.T, o testutil.PebbleOptions, acme, extra string, listener ...string) *acmeSetup {
	t.Helper()
	pln, tln := testutil.Listen(t), testutil.Listen(t)
	o.HTTPPort, o.TLSPort = portOf(pln.Addr().String()), portOf(tln.Addr().String())
	p := testutil.StartPebble(t, o)
	gw, log, yaml := startACMEGateway(t, p, pln, tln, acme, extra, listener...)
	return &acmeSetup{pebble: p, plain: pln.Addr().String(), tls: tln.Addr().String(), gw: gw, log: log, yaml: yaml}
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

// fileStorage is an acme block's challenges and file storage.
func fileStorage(t *testing.T, challenges string) string {
	return "  challenges: [" + challenges + "]\n  storage: { dir: " + t.TempDir() + " }"
}

// HTTP-01 (RFC 8555 section 8.3): pebble fetches the key authorization
// from the gateway's plain listener, issues, and a TLS client verifying
// against pebble's root gets the certificate for the SNI it asks, and its
// requests are proxied. The plain listener redirects everything else to
// HTTPS, but not the challenge.
func TestACMEHTTP01Issuance(t *testing.T) {
	s := newACMESetup(t, testutil.PebbleOptions{}, fileStorage(t, "http-01"), "server: { redirect_https: {} }\nmetrics: { data_plane_path: /metrics }")
	for _, name := range []string{"site.sluice.test", "www.sluice.test"} {
		leaf := waitIssued(t, s.pebble, s.tls, name)
		if err := leaf.VerifyHostname(name); err != nil {
			t.Fatal(err)
		}
		// Its expiry is exported like a PEM certificate's.
		fams := scrape(t, &testGateway{Gateway: s.gw, addr: s.plain, url: "http://" + s.plain})
		if got := sample(fams, "sluice_tls_certificate_expiry_seconds", map[string]string{"listener": s.tls, "name": name}); got != float64(leaf.NotAfter.Unix()) {
			t.Errorf("sluice_tls_certificate_expiry_seconds for %s: %v, want %d", name, got, leaf.NotAfter.Unix())
		}
	}
	if n := s.pebble.Orders(); n != 2 {
		t.Errorf("pebble got %d orders, want 2 (one per name)", n)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.pebble.Roots(t), ServerName: "site.sluice.test"}}}
	resp, err := c.Get("https://" + s.tls + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET over the ACME certificate: %d", resp.StatusCode)
	}
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = plain.Get("http://" + s.plain + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("plain GET /hello: %d, want the 308 to HTTPS", resp.StatusCode)
	}
}

// TLS-ALPN-01 (RFC 8737): pebble validates with a handshake offering
// only acme-tls/1 to the gateway's TLS listener; HTTP-01 is off (and
// pebble's HTTP port is the plain listener, which would not answer).
func TestACMETLSALPN01Issuance(t *testing.T) {
	s := newACMESetup(t, testutil.PebbleOptions{}, fileStorage(t, "tls-alpn-01"), "")
	waitIssued(t, s.pebble, s.tls, "site.sluice.test")
	if !logHas(s.log.String(), `msg="served key authentication certificate"`, "component=acme", "server_name=site.sluice.test", "challenge=tls-alpn-01") {
		t.Errorf("the gateway did not answer a tls-alpn-01 validation")
	}
	// A normal client still gets http/1.1.
	c, err := tls.Dial("tcp", s.tls, &tls.Config{RootCAs: s.pebble.Roots(t), ServerName: "site.sluice.test", NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Errorf("ALPN %q, want http/1.1", p)
	}
}

// ACME and PEM certificates on one listener, chosen by SNI: the ACME
// names get pebble's certificates, any other name the PEM ones (the
// first as the default), and no order is placed for those.
func TestACMEMixedWithPEMCertificates(t *testing.T) {
	ca := testutil.NewCA(t, "pem")
	other := ca.Issue(t, testutil.LeafOptions{Name: "other", DNS: []string{"other.example"}})
	s := newACMESetup(t, testutil.PebbleOptions{}, fileStorage(t, "tls-alpn-01"), "",
		"    certificates: [ { cert_file: "+other.CertFile+", key_file: "+other.KeyFile+" } ]")
	waitIssued(t, s.pebble, s.tls, "site.sluice.test")
	waitIssued(t, s.pebble, s.tls, "www.sluice.test")
	for _, name := range []string{"other.example", "unlisted.sluice.test"} {
		// Verified as other.example: the unlisted name gets the default.
		st, err := handshake(t, s.tls, &tls.Config{RootCAs: ca.Pool, ServerName: name,
			VerifyConnection: func(cs tls.ConnectionState) error {
				return cs.PeerCertificates[0].VerifyHostname("other.example")
			}, InsecureSkipVerify: true})
		if err != nil || st.PeerCertificates[0].Subject.CommonName != "other" {
			t.Errorf("%s: the PEM certificate was not served: %v", name, err)
		}
	}
	if n := s.pebble.Orders(); n != 2 {
		t.Errorf("pebble got %d orders, want 2 (the ACME names only)", n)
	}
}

// Hostile clients: a challenge path with a token nobody ordered, for a
// managed name, is a 404 with the JSON error body, not a key
// authorization or a route; a client naming a host the listener does not
// list (with or without acme-tls/1) gets no certificate, makes no order
// (no on-demand issuance) and no log line. (acme_hostile_test.go checks
// the storage reads.)
func TestACMEHostileClients(t *testing.T) {
	s := newACMESetup(t, testutil.PebbleOptions{}, fileStorage(t, "http-01, tls-alpn-01"), "")
	waitIssued(t, s.pebble, s.tls, "site.sluice.test")
	waitIssued(t, s.pebble, s.tls, "www.sluice.test")
	before := s.pebble.Orders()

	req, _ := http.NewRequest("GET", "http://"+s.plain+"/.well-known/acme-challenge/bogus-token_123", nil)
	req.Host = "site.sluice.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"error":"unknown ACME challenge"`) {
		t.Errorf("unknown token: %d %s", resp.StatusCode, body)
	}

	logged := len(s.log.String())
	for _, protos := range [][]string{nil, {"acme-tls/1"}} {
		_, err := tls.Dial("tcp", s.tls, &tls.Config{InsecureSkipVerify: true, ServerName: "evil.sluice.test", NextProtos: protos})
		if err == nil {
			t.Errorf("a handshake for an unlisted name (ALPN %v) got a certificate", protos)
		}
	}
	// Neither reached certmagic: nothing about them in the log.
	if after := s.log.String()[logged:]; strings.Contains(after, "evil.sluice.test") {
		t.Errorf("handshakes for an unlisted name were logged:\n%s", after)
	}
	// Any order would have been placed by now: the handshakes are over.
	// One more handshake for a listed name shows the gateway is still up.
	waitIssued(t, s.pebble, s.tls, "site.sluice.test")
	if n := s.pebble.Orders(); n != before {
		t.Errorf("pebble got %d orders after the unlisted names, want %d", n, before)
	}
}

// A reload that adds a name to acme_hosts gets it a certificate at once;
// a name the reload removes is no longer served (this listener has no
// PEM certificate to fall back on, so its handshake fails).
func TestACMEReloadAddsAndRemovesNames(t *testing.T) {
	s := newACMESetup(t, testutil.PebbleOptions{}, fileStorage(t, "http-01"), "")
	waitIssued(t, s.pebble, s.tls, "www.sluice.test")
	yaml := strings.Replace(s.yaml, "acme_hosts: [site.sluice.test, www.sluice.test]", "acme_hosts: [site.sluice.test, new.sluice.test]", 1)
	if yaml == s.yaml {
		t.Fatal("the test's config changed shape")
	}
	if err := s.gw.Apply(mustParse(t, yaml)); err != nil {
		t.Fatal(err)
	}
	waitIssued(t, s.pebble, s.tls, "new.sluice.test")
	if leaf := issuedLeaf(s.tls, "www.sluice.test", s.pebble.Roots(t)); leaf != nil {
		t.Errorf("a name removed from acme_hosts is still served (%v)", leaf.DNSNames)
	}
}

// Two gateways sharing Redis storage: one of them orders each certificate
// (under the storage lock), the other loads it, and both serve the same
// certificate. pebble validates against the first gateway's ports while
// the second orders. Both challenge types. (In one process certmagic
// finds the challenge in its own memory; cmd/sluice's
// TestACMEChallengeAnsweredFromRedis has the second gateway in another
// process, so the answer must come from Redis.)
func TestACMERedisStorageSharedByTwoGateways(t *testing.T) {
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) {
			redis := testutil.StartRedis(t)
			acme := "  challenges: [" + challenge + "]\n  storage: { type: redis, prefix: acme-test }"
			extra := `redis: { addrs: ["` + redis.Addr + `"] }`
			pln, tln := testutil.Listen(t), testutil.Listen(t)
			p := testutil.StartPebble(t, testutil.PebbleOptions{HTTPPort: portOf(pln.Addr().String()), TLSPort: portOf(tln.Addr().String())})
			pln2, tln2 := testutil.Listen(t), testutil.Listen(t)
			// The second gateway takes both locks first, so it orders, and
			// pebble validates against the first one, which answers from
			// what the second stored in Redis.
			_, log2, _ := startACMEGateway(t, p, pln2, tln2, acme, extra)
			testutil.WaitFor(t, "the second gateway to hold both locks", func() bool {
				return strings.Count(log2.String(), `msg="lock acquired"`) == 2
			})
			_, log1, _ := startACMEGateway(t, p, pln, tln, acme, extra)
			_ = log1
			for _, name := range []string{"site.sluice.test", "www.sluice.test"} {
				a := waitIssued(t, p, tln.Addr().String(), name)
				b := waitIssued(t, p, tln2.Addr().String(), name)
				if a.SerialNumber.Cmp(b.SerialNumber) != 0 {
					t.Errorf("%s: the gateways serve different certificates (%x, %x)", name, a.SerialNumber, b.SerialNumber)
				}
			}
			if n := p.Orders(); n != 2 {
				t.Errorf("pebble got %d orders, want 2 (one per name)", n)
			}
			if a, b := strings.Count(log1.String(), "certificate obtained successfully"), strings.Count(log2.String(), "certificate obtained successfully"); a != 0 || b != 2 {
				t.Errorf("certificates obtained: %d by the first gateway, %d by the second; want 0 and 2", a, b)
			}
		})
	}
}

// Renewal ahead of expiry: pebble issues certificates valid for 20s;
// with a third of the lifetime left the gateway renews, and new
// handshakes get the new certificate. "Ahead" is read off the
// certificates (pebble's clock), not the test's: the new one was issued
// in the first one's renewal window, before it expired. (renew_check
// matters: certmagic renews at once when less than 5 renew_check
// intervals are left.)
func TestACMERenewsBeforeExpiry(t *testing.T) {
	s := newACMESetup(t, testutil.PebbleOptions{Validity: 20 * time.Second},
		fileStorage(t, "http-01")+"\n  renew_check: 1s", "")
	roots := s.pebble.Roots(t)
	first := waitIssued(t, s.pebble, s.tls, "site.sluice.test")
	var renewed *x509.Certificate
	testutil.WaitForWithin(t, 2*first.NotAfter.Sub(first.NotBefore), "a renewed certificate for site.sluice.test", func() bool {
		renewed = issuedLeaf(s.tls, "site.sluice.test", roots)
		return renewed != nil && renewed.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("the renewed certificate expires at %v, the first at %v", renewed.NotAfter, first.NotAfter)
	}
	if !renewed.NotBefore.Before(first.NotAfter) {
		t.Errorf("renewed only after the first certificate expired: issued %v, the first expired %v", renewed.NotBefore, first.NotAfter)
	}
	// Nor at once: a third of the lifetime left is the window (an order
	// right after the first would be a renewal loop).
	if life := first.NotAfter.Sub(first.NotBefore); renewed.NotBefore.Sub(first.NotBefore) < life/2 {
		t.Errorf("renewed %v after the first was issued, before its renewal window (lifetime %v)", renewed.NotBefore.Sub(first.NotBefore), life)
	}
}

// logHas reports whether a line of log has every one of parts.
func logHas(log string, parts ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// testLog keeps a gateway's log, and shows it when the test fails.
type testLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func newTestLog(t *testing.T) *testLog {
	l := &testLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", l.String())
		}
	})
	return l
}

func (l *testLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
