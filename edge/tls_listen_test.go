package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// startTLSGateway serves yaml's plain listener and its first listen_tls
// listener on loopback ports; it returns the gateway and the TLS address.
func startTLSGateway(t testing.TB, yaml string) (*testGateway, string) {
	t.Helper()
	gw, err := New(mustParse(t, yaml), quietLogger(), "test")
	if err != nil {
		t.Fatal(err)
	}
	ln, tln := testutil.Listen(t), testutil.Listen(t)
	go func() { _ = gw.Serve(ln) }()
	go func() { _ = gw.ServeTLS(tln, 0) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = gw.Shutdown(ctx)
	})
	return &testGateway{Gateway: gw, addr: ln.Addr().String(), url: "http://" + ln.Addr().String()}, tln.Addr().String()
}

func tlsListenerConfig(upURL string, certs ...*testutil.Leaf) string {
	var b strings.Builder
	for _, c := range certs {
		fmt.Fprintf(&b, "      - { cert_file: %s, key_file: %s }\n", c.CertFile, c.KeyFile)
	}
	return `
listen: 127.0.0.1:0
listen_tls:
  - listen: 127.0.0.1:0
    name: public
    certificates:
` + b.String() + `admin: { listen: "off" }
metrics: { data_plane_path: /metrics }
security_headers: { preset: strict }
upstreams:
  up:
    targets: [ { url: "` + upURL + `" } ]
routes:
` + catchAll
}

// handshake dials addr with cfg and returns the connection state.
func handshake(t *testing.T, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}

// The certificate served is the one whose names match the SNI the client
// sends (exactly or by wildcard); the first is served without SNI or for
// an unknown name. ALPN says http/1.1; TLS 1.3 is chosen when offered,
// TLS 1.1 and CBC-only TLS 1.2 clients are refused.
func TestTLSListenerChoosesCertificateBySNI(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	first := ca.Issue(t, testutil.LeafOptions{Name: "first", DNS: []string{"a.example"}})
	second := ca.Issue(t, testutil.LeafOptions{Name: "second", DNS: []string{"b.example", "*.b.example"}})
	up := testutil.StartUpstream(t, stub.Options{})
	_, addr := startTLSGateway(t, tlsListenerConfig(up.URL, first, second))

	for sni, want := range map[string]string{"a.example": "first", "b.example": "second", "x.b.example": "second", "other.example": "first", "": "first"} {
		st, err := handshake(t, addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("SNI %q: %v", sni, err)
		}
		if got := st.PeerCertificates[0].Subject.CommonName; got != want {
			t.Errorf("SNI %q: served %q, want %q", sni, got, want)
		}
		if st.NegotiatedProtocol != "http/1.1" || st.Version != tls.VersionTLS13 {
			t.Errorf("SNI %q: ALPN %q, version %s", sni, st.NegotiatedProtocol, tls.VersionName(st.Version))
		}
	}
	// Verified against the CA, as a browser would.
	if _, err := handshake(t, addr, &tls.Config{ServerName: "x.b.example", RootCAs: ca.Pool}); err != nil {
		t.Errorf("verified handshake for x.b.example: %v", err)
	}
	if _, err := handshake(t, addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
	cbc := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}}
	if _, err := handshake(t, addr, cbc); err == nil {
		t.Error("a TLS 1.2 client offering only CBC suites was served")
	}
	st, err := handshake(t, addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err != nil || st.Version != tls.VersionTLS12 {
		t.Errorf("TLS 1.2 client: %v %x", err, st.Version)
	}
}

// tlsClient trusts ca; keepAlive false makes every request a new TLS
// connection (a full or resumed handshake).
func tlsClient(ca *testutil.CA, keepAlive bool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool, ServerName: "a.example"},
		DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 8, ForceAttemptHTTP2: false,
	}}
}

// A request on a TLS listener is TLS for every step: the upstream (plain
// http) gets X-Forwarded-Proto: https, and the strict security preset adds
// HSTS, which it never sends over plain HTTP.
func TestTLSListenerRequestsAreTLS(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	up := testutil.StartUpstream(t, stub.Options{Name: "plain"})
	g, addr := startTLSGateway(t, tlsListenerConfig(up.URL, leaf))

	resp, err := tlsClient(ca, true).Get("https://" + addr + "/__stub/echo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e stub.Echo
	if resp.StatusCode != 200 || json.Unmarshal(body, &e) != nil {
		t.Fatalf("over TLS: %d %s", resp.StatusCode, body)
	}
	if got := e.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
		t.Errorf("X-Forwarded-Proto %q, want https", got)
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
	plain, r := g.echo(t, request{path: "/__stub/echo"})
	if got := plain.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "http" {
		t.Errorf("plain listener: X-Forwarded-Proto %q", got)
	}
	if r.header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS over plain HTTP")
	}
}

// servedSerial is the serial number of the certificate a new handshake gets.
func servedSerial(t *testing.T, addr string, ca *testutil.CA) string {
	t.Helper()
	st, err := handshake(t, addr, &tls.Config{RootCAs: ca.Pool, ServerName: "a.example"})
	if err != nil {
		t.Fatal(err)
	}
	return st.PeerCertificates[0].SerialNumber.String()
}

func serial(l *testutil.Leaf) string {
	c, _ := x509.ParseCertificate(l.TLS.Certificate[0])
	return c.SerialNumber.String()
}

// The certificate is swapped 20 times (files rewritten, then a reload)
// while clients send requests over keep-alive TLS connections and over a
// new TLS connection each: no request fails, every new handshake after a
// swap gets the new certificate, and the expiry metric follows.
func TestTLSCertificateReloadUnderLoad(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	up := testutil.StartUpstream(t, stub.Options{})
	yaml := tlsListenerConfig(up.URL, leaf)
	g, addr := startTLSGateway(t, yaml)

	var failures, done atomic.Int64
	var firstErr atomic.Pointer[string]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		c := tlsClient(ca, i%2 == 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5000; n++ { // bounded
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("https://" + addr + "/x")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failures.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
				}
				done.Add(1)
			}
		}()
	}
	for swap := 0; swap < 20; swap++ {
		before := done.Load()
		testutil.WaitFor(t, "requests between swaps", func() bool { return done.Load() >= before+5 })
		next := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}, NotAfter: time.Now().Add(time.Duration(48+swap) * time.Hour)})
		if err := g.Apply(mustParse(t, yaml)); err != nil {
			t.Fatalf("swap %d: %v", swap, err)
		}
		if got := servedSerial(t, addr, ca); got != serial(next) {
			t.Fatalf("swap %d: new handshake got serial %s, want %s", swap, got, serial(next))
		}
		leaf = next
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during 20 certificate swaps; first: %s", n, done.Load(), *firstErr.Load())
	}
	want := float64(leaf.NotAfter.Unix())
	if got := sample(scrape(t, g), "sluice_tls_certificate_expiry_seconds", map[string]string{"listener": "public", "name": "a.example"}); got != want {
		t.Errorf("sluice_tls_certificate_expiry_seconds = %v, want %v", got, want)
	}
}

// A renewed pair that is broken (a key that belongs to another
// certificate, an expired certificate, a missing file) is refused with a
// message naming the file; the old certificate keeps being served.
func TestTLSBrokenCertificateRefusedOldKept(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	up := testutil.StartUpstream(t, stub.Options{})
	yaml := tlsListenerConfig(up.URL, leaf)
	g, addr := startTLSGateway(t, yaml)
	good := serial(leaf)
	goodCert, goodKey := leaf.CertPEM, leaf.KeyPEM

	other := testutil.NewCA(t, "other").Issue(t, testutil.LeafOptions{Name: "other", DNS: []string{"a.example"}})
	expired := ca.Issue(t, testutil.LeafOptions{Name: "expired", DNS: []string{"a.example"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	for name, c := range map[string]struct {
		cert, key []byte
		want      string
	}{
		"mismatched key": {goodCert, other.KeyPEM, "private key does not match public key"},
		"expired":        {expired.CertPEM, expired.KeyPEM, "expired at"},
	} {
		testutil.WriteFile(t, leaf.CertFile, c.cert)
		testutil.WriteFile(t, leaf.KeyFile, c.key)
		err := g.Apply(mustParse(t, yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "listen_tls[0].certificates[0]") {
			t.Errorf("%s: reload error %v", name, err)
		}
		if got := servedSerial(t, addr, ca); got != good {
			t.Errorf("%s: serving serial %s after a refused reload, want the old %s", name, got, good)
		}
		if !strings.Contains(g.LastReloadError(), c.want) {
			t.Errorf("%s: last reload error %q", name, g.LastReloadError())
		}
	}
	testutil.WriteFile(t, leaf.CertFile, goodCert)
	testutil.WriteFile(t, leaf.KeyFile, goodKey)
	if err := g.Apply(mustParse(t, yaml)); err != nil {
		t.Fatalf("the repaired pair was refused: %v", err)
	}
}

// An early answer on a TLS listener (a 413 before the body was read) is
// followed by a lingering close of the TCP connection under the TLS one:
// a client still sending its body can finish sending and reads the whole
// answer, instead of a reset (as on the plain listener: conformance_test).
func TestTLSListenerLingersAfterEarlyAnswer(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	up := testutil.StartUpstream(t, stub.Options{})
	_, addr := startTLSGateway(t, strings.Replace(tlsListenerConfig(up.URL, leaf), "admin:", "server: { max_body_bytes: 1024 }\nadmin:", 1))
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "a.example"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	wrote := make(chan error, 1)
	go func() {
		_, err := fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n", 64<<20)
		chunk := make([]byte, 16<<10)
		for i := 0; err == nil && i < 512; i++ { // 8 MiB, well within lingerMaxBytes
			_, err = c.Write(chunk)
		}
		wrote <- err
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the early answer: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, body error %v; want a whole 413", resp.StatusCode, err)
	}
	if err := <-wrote; err != nil {
		t.Errorf("the client could not finish sending (%v): the TLS connection was closed instead of lingering", err)
	}
}

// Session tickets: a client that comes back resumes its session instead
// of a full handshake, and still does after a certificate reload (the
// ticket keys belong to the listener, not to a certificate set).
func TestTLSListenerResumesSessions(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	up := testutil.StartUpstream(t, stub.Options{})
	yaml := tlsListenerConfig(up.URL, leaf)
	g, addr := startTLSGateway(t, yaml)
	cache := tls.NewLRUClientSessionCache(8)
	connect := func() bool { return resumed(t, addr, ca, cache, 0) }
	if connect() {
		t.Fatal("the first connection resumed a session it never had")
	}
	if !connect() {
		t.Error("the second connection did a full handshake: no session ticket")
	}
	ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	if err := g.Apply(mustParse(t, yaml)); err != nil {
		t.Fatal(err)
	}
	if !connect() {
		t.Error("after a certificate reload, a returning client did a full handshake")
	}
}

// resumed makes a request on a new TLS connection to addr (SNI
// a.example, TLS up to version, 0 for the newest) with the client's
// session cache, and reports whether the handshake resumed a session.
func resumed(t *testing.T, addr string, ca *testutil.CA, cache tls.ClientSessionCache, version uint16) bool {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "a.example", ClientSessionCache: cache, MaxVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A request and its answer: TLS 1.3 tickets arrive after the
	// handshake and are read with the answer.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c.ConnectionState().DidResume
}
