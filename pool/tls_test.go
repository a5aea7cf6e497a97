package pool

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/lb"
)

// Active health checks of an https:// target go over TLS with the
// upstream's settings: they pass against a target the CA vouches for (the
// check's URI carries https, or fasthttp refuses to send it), and a
// target whose certificate does not verify becomes unhealthy with the
// verification error as its last health error.
func TestHealthCheckOverTLS(t *testing.T) {
	ca := testutil.NewCA(t, "upstream")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "up"})
	up := testutil.StartTLSUpstream(t, stub.Options{}, &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
	hs := &HealthSettings{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: time.Second, StatusLo: 200, StatusHi: 399, Healthy: 1, Unhealthy: 2}
	base := Settings{Health: hs, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxConns: 4, BufferBodyBytes: 1 << 20, HeaderBufferBytes: 8192}

	good := base
	good.TLS = &ClientTLS{CAPEM: ca.PEM}
	tg := buildPool(t, []string{up.URL}, good, "round_robin", false).Targets[0]
	testutil.WaitFor(t, "three checks", func() bool { return up.Requests() >= 3 })
	if tg.State()&lb.Unhealthy != 0 || tg.LastHealthError() != "" {
		t.Fatalf("verified TLS target unhealthy: %q", tg.LastHealthError())
	}

	bad := base
	bad.TLS = &ClientTLS{CAPEM: testutil.NewCA(t, "other").PEM}
	tb := buildPool(t, []string{up.URL}, bad, "round_robin", false).Targets[0]
	testutil.WaitFor(t, "unhealthy", func() bool { return tb.State()&lb.Unhealthy != 0 })
	if e := tb.LastHealthError(); !strings.Contains(e, "certificate signed by unknown authority") {
		t.Errorf("last health error %q", e)
	}
}

// Targets with equal TLS settings share a HostClient across reloads; a
// changed CA bundle or client certificate makes a new one.
func TestRegistryKeysTLSByContent(t *testing.T) {
	reg := NewRegistry(quiet())
	s := Settings{MaxConns: 1}
	s.TLS = &ClientTLS{ServerName: "a", CAPEM: []byte("x")}
	if _, err := reg.target("u", "https://127.0.0.1:1", 1, s); err == nil {
		t.Fatal("a CA bundle without a certificate was accepted")
	}
	ca := testutil.NewCA(t, "c")
	s.TLS = &ClientTLS{ServerName: "a", CAPEM: ca.PEM}
	t1, err := reg.target("u", "https://127.0.0.1:1", 1, s)
	if err != nil {
		t.Fatal(err)
	}
	s.TLS = &ClientTLS{ServerName: "a", CAPEM: append([]byte(nil), ca.PEM...)} // another pointer, same content
	if t2, _ := reg.target("u", "https://127.0.0.1:1", 1, s); t2 != t1 {
		t.Error("same TLS settings made a new target")
	}
	s.TLS = &ClientTLS{ServerName: "b", CAPEM: ca.PEM}
	if t3, _ := reg.target("u", "https://127.0.0.1:1", 1, s); t3 == t1 {
		t.Error("a changed server name kept the old target")
	}
}
