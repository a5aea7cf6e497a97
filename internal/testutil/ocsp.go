package testutil

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPResponder is an OCSP responder (RFC 6960) on 127.0.0.1 for the
// certificates a Pebble issues: pebble has none of its own, but puts the
// URL of one in what it issues (PebbleOptions.OCSPResponderURL). Its
// responses are signed by pebble's intermediate, the issuer itself (RFC
// 6960 section 4.2.2.2: no delegated responder certificate needed), and
// say what pebble says of the serial (cert-status-by-serial on its
// management interface): Good, Revoked, or Unknown for a serial pebble
// never issued; a test can also mark a serial revoked (Revoke) without
// the ACME revocation, which would delete the certificate from the
// client's storage as well.
type OCSPResponder struct {
	// URL is where it answers (POST, and GET with the request in the
	// path: RFC 6960 appendix A.1).
	URL string

	mu       sync.Mutex
	pebble   *Pebble
	issuer   *x509.Certificate
	key      crypto.Signer
	revoked  map[string]time.Time // serial (hex) -> revocation time
	answered map[string]int       // serial (hex) -> responses sent
	failures []string
}

// StartOCSPResponder listens until the test ends. It answers
// "unauthorized" (RFC 6960 section 2.3) until Serve gives it the pebble
// to answer for: the URL must be known before pebble starts.
func StartOCSPResponder(t testing.TB) *OCSPResponder {
	t.Helper()
	ln := Listen(t)
	r := &OCSPResponder{URL: "http://" + ln.Addr().String(), revoked: map[string]time.Time{}, answered: map[string]int{}}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

// Serve answers for p's certificates from now on, signing with its
// intermediate's key.
func (r *OCSPResponder) Serve(t testing.TB, p *Pebble) {
	t.Helper()
	certPEM, keyPEM := p.mgmtGet(t, "/intermediates/0"), p.mgmtGet(t, "/intermediate-keys/0")
	cb, _ := pem.Decode(certPEM)
	if cb == nil {
		t.Fatalf("pebble's intermediate is not PEM: %q", certPEM)
	}
	issuer, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatalf("pebble's intermediate: %v", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		t.Fatalf("pebble's intermediate key: %v", err)
	}
	r.mu.Lock()
	r.pebble, r.issuer, r.key = p, issuer, key
	r.mu.Unlock()
}

// Issuer is the certificate the responses are signed with.
func (r *OCSPResponder) Issuer() *x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issuer
}

// Revoke makes the responder answer Revoked for serial from now on.
func (r *OCSPResponder) Revoke(serial *big.Int) {
	r.mu.Lock()
	r.revoked[serial.Text(16)] = time.Now().Add(-time.Minute).Truncate(time.Second)
	r.mu.Unlock()
}

// Answered counts the responses sent for serial.
func (r *OCSPResponder) Answered(serial *big.Int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answered[serial.Text(16)]
}

// Failures lists the requests it could not answer properly (a bad
// request, pebble not answering), for the test to report.
func (r *OCSPResponder) Failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failures...)
}

func (r *OCSPResponder) fail(w http.ResponseWriter, resp []byte, format string, args ...any) {
	r.mu.Lock()
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp)
}

func (r *OCSPResponder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	p, issuer, key := r.pebble, r.issuer, r.key
	r.mu.Unlock()
	if p == nil {
		r.fail(w, ocsp.UnauthorizedErrorResponse, "asked before Serve")
		return
	}
	var der []byte
	var err error
	switch req.Method {
	case http.MethodPost:
		der, err = io.ReadAll(io.LimitReader(req.Body, 64<<10))
	case http.MethodGet:
		der, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(req.URL.Path, "/"))
	default:
		http.Error(w, "OCSP is GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		r.fail(w, ocsp.MalformedRequestErrorResponse, "reading the request: %v", err)
		return
	}
	q, err := ocsp.ParseRequest(der)
	if err != nil {
		r.fail(w, ocsp.MalformedRequestErrorResponse, "parsing the request: %v", err)
		return
	}
	r.mu.Lock()
	revokedAt, revoked := r.revoked[q.SerialNumber.Text(16)]
	r.mu.Unlock()
	status, err := p.certStatus(q.SerialNumber)
	if err != nil {
		r.fail(w, ocsp.InternalErrorErrorResponse, "%v", err)
		return
	}
	if revoked {
		status.status, status.revokedAt = ocsp.Revoked, revokedAt
	}
	// Valid for an hour still, but issued two hours ago: past the middle
	// of its validity, so a client caching it (certmagic) asks again
	// whenever it loads the certificate rather than trusting its copy.
	now := time.Now().Truncate(time.Second)
	tmpl := ocsp.Response{
		Status:       status.status,
		SerialNumber: q.SerialNumber,
		ThisUpdate:   now.Add(-2 * time.Hour),
		NextUpdate:   now.Add(time.Hour),
		RevokedAt:    status.revokedAt,
	}
	resp, err := ocsp.CreateResponse(issuer, issuer, tmpl, key)
	if err != nil {
		r.fail(w, ocsp.InternalErrorErrorResponse, "signing: %v", err)
		return
	}
	r.mu.Lock()
	r.answered[q.SerialNumber.Text(16)]++
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/ocsp-response")
	_, _ = w.Write(resp)
}

type pebbleStatus struct {
	status    int // ocsp.Good, Revoked or Unknown
	revokedAt time.Time
}

// certStatus is what pebble says of serial: Unknown when it never issued
// it.
func (p *Pebble) certStatus(serial *big.Int) (pebbleStatus, error) {
	resp, err := p.client.Get("https://" + p.mgmt + "/cert-status-by-serial/" + serial.Text(16))
	if err != nil {
		return pebbleStatus{}, fmt.Errorf("asking pebble the status of %x: %w", serial, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return pebbleStatus{status: ocsp.Unknown}, nil
	}
	var st struct {
		Status    string
		RevokedAt time.Time
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		return pebbleStatus{}, fmt.Errorf("pebble's status of %x: %d %v", serial, resp.StatusCode, err)
	}
	if st.Status == "Revoked" {
		return pebbleStatus{status: ocsp.Revoked, revokedAt: st.RevokedAt}, nil
	}
	return pebbleStatus{status: ocsp.Good}, nil
}

// mgmtGet fetches path from pebble's management interface.
func (p *Pebble) mgmtGet(t testing.TB, path string) []byte {
	t.Helper()
	resp, err := p.client.Get("https://" + p.mgmt + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble %s: %d %s", path, resp.StatusCode, body)
	}
	return body
}

// parseKeyPEM reads a PEM private key in any of the usual encodings.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("not PEM: %q", data)
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Type, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T cannot sign", b.Type, k)
	}
	return s, nil
}
