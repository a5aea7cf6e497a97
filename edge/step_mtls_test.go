package edge

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

func mtlsConfig(upURL string, site *testutil.Leaf, clientCA *testutil.CA, mode string) string {
	return `
listen: 127.0.0.1:0
listen_tls:
  - listen: 127.0.0.1:0
    certificates: [ { cert_file: ` + site.CertFile + `, key_file: ` + site.KeyFile + ` } ]
    client_auth: { mode: ` + mode + `, ca_file: ` + clientCA.CertFile + ` }
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "` + upURL + `" } ] }
routes:
  - { name: m, match: { prefix: /m/ }, upstream: up, auth: mtls, rewrite: { strip_prefix: /m } }
  - { name: open, match: { prefix: / }, upstream: up }
`
}

func mtlsGet(t *testing.T, addr, path string, roots *testutil.CA, cert *testutil.Leaf, hdr map[string]string) (int, stub.Echo, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots.Pool, ServerName: "a.example"}
	if cert != nil {
		// Sent whatever CAs the server names (crypto/tls would otherwise
		// send no certificate when its issuer is not among them).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	req, _ := http.NewRequest("GET", "https://"+addr+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, stub.Echo{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e stub.Echo
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e, nil
}

// auth: mtls admits a client whose certificate the listener verified and
// forwards its subject and SHA-256 fingerprint; a client without one gets
// 401 on that route (and is served elsewhere with mode: request), a
// client can't forge the headers, and a certificate from another CA fails
// the handshake.
func TestMTLSRouteForwardsVerifiedClientCertificate(t *testing.T) {
	serverCA, clientCA := testutil.NewCA(t, "edge"), testutil.NewCA(t, "clients")
	site := serverCA.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	alice := clientCA.Issue(t, testutil.LeafOptions{Name: "alice", Client: true})
	mallory := testutil.NewCA(t, "elsewhere").Issue(t, testutil.LeafOptions{Name: "mallory", Client: true})
	up := testutil.StartUpstream(t, stub.Options{})
	g, addr := startTLSGateway(t, mtlsConfig(up.URL, site, clientCA, "request"))

	forged := map[string]string{"X-Client-Subject": "CN=root", "X-Client-Cert-SHA256": "00"}
	code, e, err := mtlsGet(t, addr, "/m/__stub/echo", serverCA, alice, forged)
	if err != nil || code != 200 {
		t.Fatalf("alice on the mtls route: %d %v", code, err)
	}
	sum := sha256.Sum256(alice.TLS.Certificate[0])
	if got := e.Headers["X-Client-Subject"]; len(got) != 1 || got[0] != "CN=alice,O=sluice tests" {
		t.Errorf("X-Client-Subject %q", got)
	}
	if got := e.Headers["X-Client-Cert-Sha256"]; len(got) != 1 || got[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("X-Client-Cert-SHA256 %q, want %s", got, hex.EncodeToString(sum[:]))
	}

	if code, _, err := mtlsGet(t, addr, "/m/__stub/echo", serverCA, nil, nil); err != nil || code != 401 {
		t.Errorf("no certificate on the mtls route: %d %v, want 401", code, err)
	}
	code, e, err = mtlsGet(t, addr, "/__stub/echo", serverCA, nil, forged)
	if err != nil || code != 200 {
		t.Fatalf("no certificate on an open route (mode: request): %d %v", code, err)
	}
	for k := range forged {
		if v, ok := e.Headers[http.CanonicalHeaderKey(k)]; ok {
			t.Errorf("a client forged %s: %q reached the upstream", k, v)
		}
	}
	if code, _, err := mtlsGet(t, addr, "/m/__stub/echo", serverCA, mallory, nil); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("a certificate from an unknown CA: %d %v, want a refused handshake", code, err)
	}
	if r := g.get(t, "/m/__stub/echo"); r.status != 401 {
		t.Errorf("mtls route on the plain listener: %d, want 401", r.status)
	}
}

// mode: require fails the handshake of a client without a certificate.
func TestMTLSRequireRefusesClientsWithoutCertificate(t *testing.T) {
	serverCA, clientCA := testutil.NewCA(t, "edge"), testutil.NewCA(t, "clients")
	site := serverCA.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	alice := clientCA.Issue(t, testutil.LeafOptions{Name: "alice", Client: true})
	up := testutil.StartUpstream(t, stub.Options{})
	_, addr := startTLSGateway(t, mtlsConfig(up.URL, site, clientCA, "require"))
	if code, _, err := mtlsGet(t, addr, "/__stub/echo", serverCA, alice, nil); err != nil || code != 200 {
		t.Fatalf("alice: %d %v", code, err)
	}
	_, _, err := mtlsGet(t, addr, "/__stub/echo", serverCA, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("no certificate with mode: require: %v", err)
	}
}
