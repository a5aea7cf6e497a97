package main

import (
	"crypto/tls"
	"crypto/x509"
	"os/exec"
	"strings"
	"testing"

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
