package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sluicegw/sluice/internal/testutil"
)

// ocspSetup is pebble issuing certificates that name a responder started
// by the test, and a gateway getting its certificates from it.
type ocspSetup struct {
	pebble    *testutil.Pebble
	responder *testutil.OCSPResponder
	pln, tln  net.Listener
	acme      string // the acme block's body (the same storage on a restart)
}

// newOCSPSetup starts the responder and pebble, and the gateway unless
// the test starts it itself (start).
func newOCSPSetup(t *testing.T, gateway bool) *ocspSetup {
	t.Helper()
	s := &ocspSetup{responder: testutil.StartOCSPResponder(t), pln: testutil.Listen(t), tln: testutil.Listen(t)}
	s.pebble = testutil.StartPebble(t, testutil.PebbleOptions{
		HTTPPort:         portOf(s.pln.Addr().String()),
		TLSPort:          portOf(s.tln.Addr().String()),
		OCSPResponderURL: s.responder.URL,
	})
	s.responder.Serve(t, s.pebble) // before any certificate is ordered
	s.acme = fileStorage(t, "http-01")
	if gateway {
		s.start(t)
	}
	return s
}

// start starts a gateway on s's listeners and storage until t ends.
func (s *ocspSetup) start(t *testing.T) {
	t.Helper()
	_, _, _ = startACMEGateway(t, s.pebble, s.pln, s.tln, s.acme, "")
}

// stapled handshakes with addr for name (verifying the chain against
// pebble's root) and returns the certificate served and the OCSP response
// stapled to it (RFC 6066 section 8), checked against the certificate and
// signed by its issuer (RFC 6960 section 3.2); nil while no certificate
// that verifies is served.
func stapled(t *testing.T, addr, name string, roots *x509.CertPool) (*x509.Certificate, *ocsp.Response) {
	t.Helper()
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		return nil, nil
	}
	defer c.Close()
	cs := c.ConnectionState()
	leaf, issuer := cs.VerifiedChains[0][0], cs.VerifiedChains[0][1]
	if len(cs.OCSPResponse) == 0 {
		return leaf, nil
	}
	resp, err := ocsp.ParseResponseForCert(cs.OCSPResponse, leaf, issuer)
	if err != nil {
		t.Fatalf("the OCSP response stapled for %s: %v", name, err)
	}
	return leaf, resp
}

// waitStapled waits until the gateway serves name a certificate from
// pebble that accept takes (which describes it), and returns it with the OCSP response
// stapled to it (failing the test when there is none).
func waitStapled(t *testing.T, s *ocspSetup, name, which string, accept func(*x509.Certificate) bool) (*x509.Certificate, *ocsp.Response) {
	t.Helper()
	roots := s.pebble.Roots(t)
	var leaf *x509.Certificate
	var resp *ocsp.Response
	testutil.WaitFor(t, which+" certificate for "+name+" from pebble", func() bool {
		leaf, resp = stapled(t, s.tls(), name, roots)
		return leaf != nil && accept(leaf)
	})
	// certmagic staples before it caches: the first handshake with the
	// certificate must have the response.
	if resp == nil {
		t.Fatalf("%s: certificate (serial %x) served with no OCSP response stapled", name, leaf.SerialNumber)
	}
	return leaf, resp
}

func (s *ocspSetup) tls() string { return s.tln.Addr().String() }

// opensslStatus runs `openssl s_client -status` against the gateway for
// name, verifying against pebble's root, and returns what it printed.
func opensslStatus(t *testing.T, s *ocspSetup, name string) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is not installed: `make deps` installs it")
	}
	d := &net.Dialer{Timeout: 2 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", s.tls(), &tls.Config{RootCAs: s.pebble.Roots(t), ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	chain := c.ConnectionState().VerifiedChains[0]
	c.Close()
	root := filepath.Join(t.TempDir(), "pebble-root.pem")
	testutil.WriteFile(t, root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[len(chain)-1].Raw}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "s_client", "-connect", s.tls(), "-servername", name,
		"-status", "-CAfile", root, "-verify_return_error").CombinedOutput() // stdin is empty: it quits after the handshake
	if err != nil {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
	return string(out)
}

func anyCert(*x509.Certificate) bool { return true }

// checkGood checks that resp is a Good answer for leaf signed by the
// responder's key (pebble's intermediate, the leaf's issuer).
func checkGood(t *testing.T, s *ocspSetup, leaf *x509.Certificate, resp *ocsp.Response) {
	t.Helper()
	if resp.Status != ocsp.Good {
		t.Errorf("stapled OCSP status for serial %x: %d, want Good (%d)", leaf.SerialNumber, resp.Status, ocsp.Good)
	}
	if resp.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("stapled OCSP response is for serial %x, the certificate's is %x", resp.SerialNumber, leaf.SerialNumber)
	}
	if err := resp.CheckSignatureFrom(s.responder.Issuer()); err != nil {
		t.Errorf("stapled OCSP response not signed by pebble's intermediate: %v", err)
	}
	if len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != s.responder.URL {
		t.Errorf("certificate's OCSP responders: %q, want [%s]", leaf.OCSPServer, s.responder.URL)
	}
	if s.responder.Answered(leaf.SerialNumber) == 0 {
		t.Errorf("the responder was never asked for serial %x", leaf.SerialNumber)
	}
}

// OCSP stapling (RFC 6066 section 8, RFC 6960): the certificates pebble
// issues name the test's responder; the gateway asks it and staples the
// Good answer to every handshake, which a TLS client asking for the
// status (Go's always does) receives and verifies against the issuer.
func TestACMEOCSPStapled(t *testing.T) {
	s := newOCSPSetup(t, true)
	for _, name := range []string{"site.sluice.test", "www.sluice.test"} {
		leaf, resp := waitStapled(t, s, name, "a", anyCert)
		checkGood(t, s, leaf, resp)
	}
	// Another TLS implementation asking for the status gets it too.
	out := opensslStatus(t, s, "site.sluice.test")
	for _, want := range []string{"OCSP Response Status: successful", "Cert Status: good", "Verify return code: 0 (ok)"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl s_client -status: no %q in\n%s", want, out)
		}
	}
	if f := s.responder.Failures(); len(f) > 0 {
		t.Errorf("OCSP responder failures: %q", f)
	}
}

// A certificate whose OCSP status is Revoked (RFC 6960 section 2.2) is
// replaced, not served: on a restart the gateway loads the certificate
// from storage, asks the responder, finds it revoked, orders a new one
// and staples the new one's Good status. The other name keeps its
// certificate. (Each gateway lives in a subtest, whose end shuts it
// down.)
func TestACMEOCSPRevokedIsReplaced(t *testing.T) {
	s := newOCSPSetup(t, false)
	var old, www *x509.Certificate
	if !t.Run("issued", func(t *testing.T) {
		s.start(t)
		var resp *ocsp.Response
		old, resp = waitStapled(t, s, "site.sluice.test", "a", anyCert)
		checkGood(t, s, old, resp)
		www, _ = waitStapled(t, s, "www.sluice.test", "a", anyCert)
		if n := s.pebble.Orders(); n != 2 {
			t.Fatalf("pebble got %d orders, want 2 (one per name)", n)
		}
		s.responder.Revoke(old.SerialNumber)
	}) {
		return
	}
	t.Run("restarted", func(t *testing.T) {
		s.pln, s.tln = testutil.ListenRetry(t, s.pln.Addr().String()), testutil.ListenRetry(t, s.tln.Addr().String())
		s.start(t)
		leaf, resp := waitStapled(t, s, "site.sluice.test", "a new (not the revoked)", func(c *x509.Certificate) bool {
			return c.SerialNumber.Cmp(old.SerialNumber) != 0
		})
		checkGood(t, s, leaf, resp)
		if n := s.responder.Answered(old.SerialNumber); n < 2 {
			t.Errorf("the revoked serial was asked about %d times, want 2 (issuance, restart)", n)
		}
		again, resp := waitStapled(t, s, "www.sluice.test", "a", anyCert)
		if !again.Equal(www) {
			t.Errorf("www.sluice.test's certificate (not revoked) was replaced: serial %x, was %x", again.SerialNumber, www.SerialNumber)
		}
		checkGood(t, s, again, resp)
		if n := s.pebble.Orders(); n != 3 {
			t.Errorf("pebble got %d orders, want 3 (one more for the revoked name)", n)
		}
	})
	if f := s.responder.Failures(); len(f) > 0 {
		t.Errorf("OCSP responder failures: %q", f)
	}
}
