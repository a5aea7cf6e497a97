package main

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// servedSerial is the serial of the certificate a new handshake gets.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "site.example"})
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func leafSerial(l *testutil.Leaf) string {
	c, _ := x509.ParseCertificate(l.TLS.Certificate[0])
	return c.SerialNumber.String()
}

// The binary serves listen_tls with the configured certificate (curl
// verifies it against the test CA), and serves a renewed certificate to
// new handshakes when the files change on disk (the certificate files'
// watcher: the config file does not change), without a restart.
func TestServeTLSAndReloadCertificateFiles(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"site.example"}})
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, `
listen: "off"
listen_tls:
  - listen: 127.0.0.1:0
    certificates: [ { cert_file: `+leaf.CertFile+`, key_file: `+leaf.KeyFile+` } ]
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
routes:
  - { name: all, match: { prefix: / }, upstream: up }
`)
	if len(s.TLSAddrs) != 1 || s.Addr != "off" {
		t.Fatalf("listeners: plain %q, TLS %q", s.Addr, s.TLSAddrs)
	}
	addr := s.TLSAddrs[0]
	if got := servedSerial(t, addr, ca.Pool); got != leafSerial(leaf) {
		t.Fatalf("serving %s, want %s", got, leafSerial(leaf))
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		_, port, _ := strings.Cut(addr, ":")
		out, err := exec.Command(curl, "-sS", "--cacert", ca.CertFile, "--resolve", "site.example:"+port+":127.0.0.1",
			"-o", "/dev/null", "-w", "%{http_code} %{http_version}", "https://site.example:"+port+"/__stub/echo").CombinedOutput()
		if err != nil || string(out) != "200 1.1" {
			t.Errorf("curl: %v %s", err, out)
		}
	}

	// A renewal written over the files is served without a signal.
	renewed := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"site.example"}})
	testutil.WaitFor(t, "the renewed certificate after the files changed", func() bool {
		return servedSerial(t, addr, ca.Pool) == leafSerial(renewed)
	})
}

// A certificate file that a reloaded config names for the first time is
// watched from then on: the config moves the listener to a certificate
// in another directory, and a renewal written over that new file is
// served without a signal or another config change.
func TestCertificateFilesAddedByReloadAreWatched(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	first := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"site.example"}})
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	config := func(l *testutil.Leaf) string {
		return `
listen: "off"
listen_tls:
  - listen: 127.0.0.1:0
    certificates: [ { cert_file: ` + l.CertFile + `, key_file: ` + l.KeyFile + ` } ]
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "` + up.URL + `" } ] }
routes:
  - { name: all, match: { prefix: / }, upstream: up }
`
	}
	s := testutil.StartSluice(t, config(first))
	addr := s.TLSAddrs[0]
	if got := servedSerial(t, addr, ca.Pool); got != leafSerial(first) {
		t.Fatalf("serving %s, want %s", got, leafSerial(first))
	}

	// The new certificate lives in a directory no watcher looked at.
	dir := t.TempDir()
	moved := ca.Issue(t, testutil.LeafOptions{Name: "moved", DNS: []string{"site.example"}})
	placed := &testutil.Leaf{CertFile: filepath.Join(dir, "site.pem"), KeyFile: filepath.Join(dir, "site-key.pem")}
	testutil.WriteFile(t, placed.CertFile, moved.CertPEM)
	testutil.WriteFile(t, placed.KeyFile, moved.KeyPEM)
	testutil.WriteFile(t, s.ConfigPath, []byte(config(placed)))
	testutil.WaitFor(t, "the certificate the reloaded config names", func() bool {
		return servedSerial(t, addr, ca.Pool) == leafSerial(moved)
	})

	renewed := ca.Issue(t, testutil.LeafOptions{Name: "renewed", DNS: []string{"site.example"}})
	testutil.WriteFile(t, placed.KeyFile, renewed.KeyPEM)
	testutil.WriteFile(t, placed.CertFile, renewed.CertPEM)
	testutil.WaitFor(t, "the renewal written over the newly named files", func() bool {
		return servedSerial(t, addr, ca.Pool) == leafSerial(renewed)
	})
}

// The binary with examples/acme-pebble.yaml as shipped (addresses and
// the CA from its environment variables): it obtains a certificate from
// pebble once its listeners serve, and a client verifying against
// pebble's root gets it for site.sluice.test.
func TestACMEExampleServes(t *testing.T) {
	plain, tlsAddr := testutil.DeadAddr(t), testutil.DeadAddr(t) // pebble needs the ports first
	_, hp, _ := net.SplitHostPort(plain)
	_, tp, _ := net.SplitHostPort(tlsAddr)
	httpPort, _ := strconv.Atoi(hp)
	tlsPort, _ := strconv.Atoi(tp)
	p := testutil.StartPebble(t, testutil.PebbleOptions{HTTPPort: httpPort, TLSPort: tlsPort})
	up := testutil.StartUpstream(t, stub.Options{Name: "demo"})
	src, err := os.ReadFile(filepath.Join(testutil.ModuleRoot(t), "examples", "acme-pebble.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := testutil.StartSluice(t, string(src), "SLUICE_ADMIN_PASSWORD=example",
		"SLUICE_LISTEN="+plain, "SLUICE_LISTEN_TLS="+tlsAddr, "SLUICE_ADMIN_LISTEN=127.0.0.1:0",
		"ACME_CA="+p.Directory, "ACME_CA_ROOT="+p.ServerCAFile, "ACME_DIR="+testutil.ScratchDir(t), "DEMO_UPSTREAM="+up.Addr)
	roots := p.Roots(t)
	var status int
	testutil.WaitFor(t, "a request over the certificate pebble issued", func() bool {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "site.sluice.test"}}}
		resp, err := c.Get("https://" + s.TLSAddrs[0] + "/__stub/echo")
		if err != nil {
			return false
		}
		resp.Body.Close()
		status = resp.StatusCode
		return true
	})
	if status != 200 {
		t.Errorf("status %d", status)
	}
	if n := p.Orders(); n != 1 {
		t.Errorf("pebble got %d orders, want 1", n)
	}
}

// ticket_keys_file is watched like a certificate: when it changes, new
// tickets are made with its new first key. Checked with a second
// instance that reads only the new key: a session begun on the first
// resumes on the second once the first has reloaded the file.
func TestTicketKeysFileWatched(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"site.example"}})
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	dir := t.TempDir()
	key := func() string {
		var k [32]byte
		_, _ = rand.Read(k[:])
		return base64.StdEncoding.EncodeToString(k[:]) + "\n"
	}
	fileA, fileB := filepath.Join(dir, "a.keys"), filepath.Join(dir, "b.keys")
	newKey := key()
	testutil.WriteFile(t, fileA, []byte(key()))
	testutil.WriteFile(t, fileB, []byte(newKey))
	config := func(file string) string {
		return `
listen: "off"
listen_tls:
  - listen: 127.0.0.1:0
    certificates: [ { cert_file: ` + leaf.CertFile + `, key_file: ` + leaf.KeyFile + ` } ]
    ticket_keys_file: ` + file + `
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "` + up.URL + `" } ] }
routes:
  - { name: all, match: { prefix: / }, upstream: up }
`
	}
	a, b := testutil.StartSluice(t, config(fileA)), testutil.StartSluice(t, config(fileB))
	// hop begins a session on a and reports whether it resumes on b.
	hop := func() bool {
		cache := tls.NewLRUClientSessionCache(2)
		if _, err := ticketRequest(a.TLSAddrs[0], ca.Pool, cache); err != nil {
			t.Fatal(err)
		}
		resumed, err := ticketRequest(b.TLSAddrs[0], ca.Pool, cache)
		if err != nil {
			t.Fatal(err)
		}
		return resumed
	}
	if hop() {
		t.Fatal("a session resumed on an instance with other ticket keys")
	}
	testutil.WriteFile(t, fileA, []byte(newKey))
	testutil.WaitFor(t, "the first instance to make tickets with the key written to its file", hop)
}

// ticketRequest makes one request on a new TLS connection (SNI
// site.example) and reports whether it resumed a session; reading the
// answer also reads a TLS 1.3 ticket into the cache.
func ticketRequest(addr string, roots *x509.CertPool, cache tls.ClientSessionCache) (bool, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "site.example", ClientSessionCache: cache})
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET /__stub/echo HTTP/1.1\r\nHost: site.example\r\n\r\n"); err != nil {
		return false, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return c.ConnectionState().DidResume, nil
}
