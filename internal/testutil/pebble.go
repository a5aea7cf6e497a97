package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Pebble is Let's Encrypt's ACME test server (Debian package pebble,
// installed by `make deps`), started by StartPebble on free loopback
// ports. It validates challenges for real: every name resolves to
// 127.0.0.1 (through a DNS server of the test), HTTP-01 is fetched from
// 127.0.0.1:HTTPPort and TLS-ALPN-01 handshakes with 127.0.0.1:TLSPort.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// ServerCAFile is the CA of pebble's own HTTPS certificate (for
	// acme.ca_root_file).
	ServerCAFile string
	// Proc is the running pebble; its log lists the requests it served.
	Proc   *Process
	mgmt   string
	client *http.Client
}

// PebbleOptions choose where pebble validates and what it issues.
type PebbleOptions struct {
	HTTPPort, TLSPort int
	// Validity of issued certificates. Default pebble's (about 5 years).
	Validity time.Duration
	// OCSPResponderURL is put in issued certificates' Authority
	// Information Access (pebble has no responder of its own; see
	// StartOCSPResponder). Default none.
	OCSPResponderURL string
}

// StartPebble runs pebble until the test ends: no artificial sleeps
// between validation attempts (PEBBLE_VA_NOSLEEP), no nonces refused at
// random (PEBBLE_WFE_NONCEREJECT=0), and authorizations never reused, so
// every order is validated anew.
func StartPebble(t testing.TB, o PebbleOptions) *Pebble {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		t.Fatal("pebble is not installed: `make deps` (or `make test`) installs it")
	}
	ca := NewCA(t, "pebble-server")
	srv := ca.Issue(t, LeafOptions{Name: "pebble", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	listen, mgmt := DeadAddr(t), DeadAddr(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             srv.CertFile,
		"privateKey":              srv.KeyFile,
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
		"ocspResponderURL":        o.OCSPResponderURL,
	}}
	if o.Validity > 0 {
		conf["pebble"].(map[string]any)["certificateValidityPeriod"] = int(o.Validity.Seconds())
	}
	data, _ := json.Marshal(conf)
	file := filepath.Join(t.TempDir(), "pebble.json")
	WriteFile(t, file, data)
	cmd := exec.Command(bin, "-config", file, "-dnsserver", startLoopbackDNS(t), "-strict=false")
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	p := &Pebble{Directory: "https://" + listen + "/dir", ServerCAFile: ca.CertFile, mgmt: mgmt}
	p.Proc = StartCommand(t, "pebble", "ACME directory available", cmd)
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	WaitFor(t, "pebble's management interface", func() bool { // it starts after the directory
		c, err := net.Dial("tcp", mgmt)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// Roots is pebble's issuing root (made anew at every start), to verify
// the certificates it issued.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if resp.StatusCode != 200 || !pool.AppendCertsFromPEM(body) {
		t.Fatalf("pebble roots: %d %s", resp.StatusCode, body)
	}
	return pool
}

// Orders counts the new orders pebble was asked for.
func (p *Pebble) Orders() int {
	return strings.Count(p.Proc.Log(), "POST /order-plz")
}

// ScratchDir is a temporary directory removed when the test ends, without
// failing it if something (a background writer stopping late) still
// wrote there: t.TempDir would fail the test.
func ScratchDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sluice-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// startLoopbackDNS answers every A question with 127.0.0.1 (and every
// other question with no records) until the test ends; it returns its
// UDP address.
func startLoopbackDNS(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return fmt.Sprint(pc.LocalAddr())
}
