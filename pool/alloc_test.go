//go:build !race

package pool

import (
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
	u, _ := url.Parse(up.URL)
	hc := newHostClient(u, Settings{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxConns: 1,
		BufferBodyBytes: 64 << 10, HeaderBufferBytes: 16 << 10}, nil, nil)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI(up.URL + "/x")
	for i := 0; i < 10; i++ {
		if err := hc.Do(req, resp); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(500, func() {
		if err := hc.Do(req, resp); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("round trip on a reused connection: %.1f allocations, want 0", n)
	}
	if up.Conns() != 1 {
		t.Errorf("%d connections: the connection was not reused", up.Conns())
	}
}
