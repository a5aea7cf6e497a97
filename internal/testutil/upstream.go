package testutil

import (
	"net"
	"sync/atomic"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
)

// Upstream is a running stub with a count of the connections it accepted.
type Upstream struct {
	*stub.Server
	Addr  string // host:port
	URL   string // http://host:port
	conns atomic.Int64
	ln    net.Listener
}

// Conns is how many TCP connections the upstream has accepted.
func (u *Upstream) Conns() int64 { return u.conns.Load() }

// Stop closes the upstream's listener and connections now (a target dying).
func (u *Upstream) Stop() { _ = u.Server.Close() }

// StartUpstream runs a stub on a free loopback port until the test ends.
func StartUpstream(t testing.TB, o stub.Options) *Upstream {
	t.Helper()
	return StartUpstreamAt(t, "127.0.0.1:0", o)
}

// StartUpstreamAt runs a stub on addr (a loopback address; port 0 picks
// one), e.g. to bring a stopped target back on its old port.
func StartUpstreamAt(t testing.TB, addr string, o stub.Options) *Upstream {
	t.Helper()
	ln := ListenRetry(t, addr)
	u := &Upstream{Server: stub.New(o), Addr: ln.Addr().String(), ln: ln}
	u.URL = "http://" + u.Addr
	go func() { _ = u.Serve(countingListener{ln, &u.conns}) }()
	t.Cleanup(func() { _ = u.Server.Close() })
	return u
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
