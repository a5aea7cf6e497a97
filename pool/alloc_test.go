//go:build !race

package pool

import (
	"crypto/tls"
	"net/url"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

// The idle check runs on every request sent on a reused connection, so it
// must allocate nothing; nor may a whole exchange on a reused connection.
// Skipped under -race, which allocates on its own.
func TestIdleCheckAllocatesNothing(t *testing.T) {
	c := quietConn(t)
	if n := testing.AllocsPerRun(1000, func() { _ = checkIdle(c) }); n != 0 {
		t.Errorf("idle check: %.1f allocations, want 0", n)
	}

	up := testutil.StartUpstream(t, stub.Options{Name: "a", BodySize: 1 << 10})
	if n := reusedRoundTripAllocs(t, up.URL, nil); n != 0 {
		t.Errorf("round trip on a reused connection: %.1f allocations, want 0", n)
	}
	if up.Conns() != 1 {
		t.Errorf("%d connections: the connection was not reused", up.Conns())
	}
}

// An exchange on a reused TLS connection to an https:// target: sluice's
// own path (transport, idle check under the tls.Conn) adds nothing, but
// crypto/tls allocates one small object per TLS record it reads
// (readFromUntil's &atLeastReader{} escapes into bytes.Buffer.ReadFrom,
// Go 1.26), two per exchange here. The test pins that: more is sluice's
// doing. The handshake allocates too, once per connection.
const tlsRecordReadAllocs = 2

func TestTLSRoundTripAllocations(t *testing.T) {
	ca := testutil.NewCA(t, "upstream")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "up"})
	up := testutil.StartTLSUpstream(t, stub.Options{Name: "a", BodySize: 1 << 10}, &tls.Config{Certificates: []tls.Certificate{leaf.TLS}})
	conf, err := (&ClientTLS{CAPEM: ca.PEM}).Config()
	if err != nil {
		t.Fatal(err)
	}
	if n := reusedRoundTripAllocs(t, up.URL, conf); n > tlsRecordReadAllocs {
		t.Errorf("round trip on a reused TLS connection: %.1f allocations, want at most %d (crypto/tls's record reads)", n, tlsRecordReadAllocs)
	}
	if up.Conns() != 1 {
		t.Errorf("%d TLS connections: the connection was not reused", up.Conns())
	}
}

// reusedRoundTripAllocs is the allocations per exchange with target, on
// the one connection of a HostClient (conf: TLS, or nil), after 10 to
// warm its pools.
func reusedRoundTripAllocs(t *testing.T, target string, conf *tls.Config) float64 {
	t.Helper()
	u, _ := url.Parse(target)
	hc := newHostClient(u, Settings{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxConns: 1,
		BufferBodyBytes: 64 << 10, HeaderBufferBytes: 16 << 10}, nil, conf)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(target + "/x")
	do := func() {
		if err := hc.Do(req, resp); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		do()
	}
	return testing.AllocsPerRun(500, do)
}
