package edge

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/internal/testutil/fakeconsul"
)

// Upstreams over TLS (issue #14): https:// targets verified against a
// configured CA, with the target's host or tls.server_name as the name,
// a client certificate for targets that require one, and TLS failures
// answered 502 with kind "tls" in logs and metrics. Before the fix every
// request to an https:// target got 502: the forwarded URI kept the http
// scheme and fasthttp refused to send it over a TLS HostClient.

func tlsUpstreamConfig(url, tlsBlock string) string {
	return `
listen: 127.0.0.1:0
admin: { listen: "off" }
metrics: { data_plane_path: /metrics }
upstreams:
  up:
    targets: [ { url: "` + url + `" } ]
    retry: { attempts: 1 }
` + tlsBlock + `
routes:
` + catchAll
}

func serverTLS(leaf *testutil.Leaf) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12}
}

func TestUpstreamTLSVerifiedAgainstConfiguredCA(t *testing.T) {
	ca := testutil.NewCA(t, "upstream")
	up := testutil.StartTLSUpstream(t, stub.Options{Name: "tls"}, serverTLS(ca.Issue(t, testutil.LeafOptions{Name: "up"})))
	g := startGateway(t, tlsUpstreamConfig(up.URL, "    tls: { ca_file: "+ca.CertFile+" }"))
	for i := 0; i < 5; i++ {
		e, _ := g.echo(t, request{path: "/__stub/echo"})
		if e.Upstream != "tls" {
			t.Fatalf("answered by %q", e.Upstream)
		}
	}
	// The idle check looks at the TCP socket under the tls.Conn: a quiet
	// TLS connection is reused, not redialed (one handshake, not five).
	if n := up.Conns(); n != 1 {
		t.Errorf("%d TLS connections for 5 sequential requests, want 1 (reused)", n)
	}
}

// Each way the target's certificate can fail verification gives 502
// "upstream TLS handshake failed", counted under kind "tls".
func TestUpstreamTLSVerificationFailures(t *testing.T) {
	ca := testutil.NewCA(t, "upstream")
	other := testutil.NewCA(t, "other")
	cases := []struct {
		name string
		leaf *testutil.Leaf
		tls  string
	}{
		{"unknown authority", other.Issue(t, testutil.LeafOptions{Name: "stranger"}), "    tls: { ca_file: " + ca.CertFile + " }"},
		{"system roots do not know a private CA", ca.Issue(t, testutil.LeafOptions{Name: "private"}), ""},
		{"wrong host", ca.Issue(t, testutil.LeafOptions{Name: "wronghost"}), "    tls: { ca_file: " + ca.CertFile + ", server_name: api.example.com }"},
		{"expired", ca.Issue(t, testutil.LeafOptions{Name: "expired", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}),
			"    tls: { ca_file: " + ca.CertFile + " }"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := testutil.StartTLSUpstream(t, stub.Options{}, serverTLS(c.leaf))
			g := startGateway(t, tlsUpstreamConfig(up.URL, c.tls))
			wantFault(t, g.get(t, "/x"), http.StatusBadGateway, "upstream TLS handshake failed")
			if got := sample(scrape(t, g), "sluice_upstream_errors_total", map[string]string{"upstream": "up", "kind": "tls"}); got != 1 {
				t.Errorf(`sluice_upstream_errors_total{kind="tls"} = %v, want 1`, got)
			}
		})
	}
}

func TestUpstreamTLSClientCertificate(t *testing.T) {
	ca := testutil.NewCA(t, "upstream")
	cfg := serverTLS(ca.Issue(t, testutil.LeafOptions{Name: "up"}))
	cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool
	client := ca.Issue(t, testutil.LeafOptions{Name: "sluice-client", Client: true})
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := cfg.Clone()
		cfg.MinVersion, cfg.MaxVersion = v, v
		t.Run(tls.VersionName(v), func(t *testing.T) {
			up := testutil.StartTLSUpstream(t, stub.Options{Name: "mtls"}, cfg)
			presented := startGateway(t, tlsUpstreamConfig(up.URL,
				"    tls: { ca_file: "+ca.CertFile+", cert_file: "+client.CertFile+", key_file: "+client.KeyFile+" }"))
			if e, _ := presented.echo(t, request{path: "/__stub/echo"}); e.Upstream != "mtls" {
				t.Fatalf("answered by %q", e.Upstream)
			}
			// Without one, the target refuses the handshake: 502. Under
			// TLS 1.2 the refusal is part of the handshake (kind tls).
			// Under TLS 1.3 the client's handshake is over before the
			// server checks, and what reaches sluice is the connection
			// closing before an answer (kind reset): a known gap, see
			// pool/tls.go.
			missing := startGateway(t, tlsUpstreamConfig(up.URL, "    tls: { ca_file: "+ca.CertFile+" }"))
			kind, phrase := "tls", "upstream TLS handshake failed"
			if v == tls.VersionTLS13 {
				kind, phrase = "reset", "upstream connection failed"
			}
			wantFault(t, missing.get(t, "/x"), http.StatusBadGateway, phrase)
			if got := sample(scrape(t, missing), "sluice_upstream_errors_total", map[string]string{"upstream": "up", "kind": kind}); got != 1 {
				t.Errorf("sluice_upstream_errors_total{kind=%q} = %v, want 1", kind, got)
			}
		})
	}
}

// A TLS failure is a connect failure for retries: the request goes to the
// next target (retry.on: connect, the default).
func TestUpstreamTLSFailureRetriedOnAnotherTarget(t *testing.T) {
	ca := testutil.NewCA(t, "upstream")
	good := testutil.StartTLSUpstream(t, stub.Options{Name: "good"}, serverTLS(ca.Issue(t, testutil.LeafOptions{Name: "good"})))
	bad := testutil.StartTLSUpstream(t, stub.Options{Name: "bad"},
		serverTLS(testutil.NewCA(t, "other").Issue(t, testutil.LeafOptions{Name: "bad"})))
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up:
    balancer: round_robin
    targets: [ { url: "`+bad.URL+`" }, { url: "`+good.URL+`" } ]
    outlier: { consecutive_failures: 0 }
    retry: { attempts: 2 }
    tls: { ca_file: `+ca.CertFile+` }
routes:
`+catchAll)
	for i := 0; i < 6; i++ {
		if e, _ := g.echo(t, request{path: "/__stub/echo"}); e.Upstream != "good" {
			t.Fatalf("request %d answered by %q", i, e.Upstream)
		}
	}
}

// syncBuffer is a log sink for one test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// insecure_skip_verify accepts a certificate nobody vouches for, and says
// so in the log when the gateway starts.
func TestUpstreamTLSInsecureSkipVerifyIsLogged(t *testing.T) {
	up := testutil.StartTLSUpstream(t, stub.Options{Name: "anyone"},
		serverTLS(testutil.NewCA(t, "nobody").Issue(t, testutil.LeafOptions{Name: "anyone"})))
	var logs syncBuffer
	g := startGatewayLogging(t, tlsUpstreamConfig(up.URL, "    tls: { insecure_skip_verify: true }"),
		slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "insecure_skip_verify") {
		t.Errorf("no warning at start; log:\n%s", logs.String())
	}
	if e, _ := g.echo(t, request{path: "/__stub/echo"}); e.Upstream != "anyone" {
		t.Fatalf("answered by %q", e.Upstream)
	}
}

// A Consul service registered with scheme: https is reached over TLS with
// the upstream's tls block (server_name: the discovered host is an
// address, the certificate names the service).
func TestDiscoveredTLSService(t *testing.T) {
	ca := testutil.NewCA(t, "upstream")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "svc", DNS: []string{"svc.internal"}})
	up := testutil.StartTLSUpstream(t, stub.Options{Name: "discovered-tls"}, serverTLS(leaf))
	consul := fakeconsul.Start(t)
	service := fmt.Sprintf("tls-%d", time.Now().UnixNano())
	host, portStr, _ := net.SplitHostPort(up.Addr)
	port, _ := strconv.Atoi(portStr)
	client, _ := api.NewClient(&api.Config{Address: consul.Addr})
	id := service + "-1"
	if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: service, Address: host, Port: port}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Agent().ServiceDeregister(id) })
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
consul: { address: "%s", wait: 5s }
upstreams:
  svc:
    discovery: { consul: { service: %s, scheme: https, passing_only: false } }
    tls: { ca_file: %s, server_name: svc.internal }
routes:
  - { name: all, match: { prefix: / }, upstream: svc }
`, consul.Addr, service, ca.CertFile))
	testutil.WaitFor(t, "the TLS instance to serve", func() bool { return g.get(t, "/x").status == 200 })
	if e, _ := g.echo(t, request{path: "/__stub/echo"}); e.Upstream != "discovered-tls" {
		t.Fatalf("answered by %q", e.Upstream)
	}
}
