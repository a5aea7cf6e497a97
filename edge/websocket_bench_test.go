package edge

import (
	"runtime"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/sluicegw/sluice/internal/testutil"
)

// BenchmarkWebSocketRoundTrip: one 64-byte text message echoed, straight
// to the upstream and through a sluice tunnel.
func BenchmarkWebSocketRoundTrip(b *testing.B) {
	up := testutil.StartWSUpstream(b)
	g := startGateway(b, wsConfig(up.URL, "{ enabled: true }"))
	msg := make([]byte, 64)
	for _, bc := range []struct{ name, url string }{
		{"direct", "ws://" + up.Addr + "/echo"},
		{"tunnel", "ws://" + g.addr + "/ws/echo"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, _, err := wsDialer.Dial(bc.url, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ReportAllocs()
			for b.Loop() {
				if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
					b.Fatal(err)
				}
				if _, _, err := c.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWebSocketIdleMemory reports what 1,000 idle tunnels cost the
// process beyond 1,000 direct connections to the same upstream (both ends
// run in this process, so the direct run is the baseline): heap and
// goroutine stacks per tunnel, after a GC.
func BenchmarkWebSocketIdleMemory(b *testing.B) {
	const n = 1000
	up := testutil.StartWSUpstream(b)
	g := startGateway(b, wsConfig(up.URL, "{ max_tunnels: 1000 }"))
	inUse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	open := func(url string) (uint64, func()) {
		before := inUse()
		conns := make([]*websocket.Conn, n)
		for i := range conns {
			c, _, err := wsDialer.Dial(url, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
				b.Fatal(err)
			}
			if _, _, err := c.ReadMessage(); err != nil {
				b.Fatal(err)
			}
			conns[i] = c
		}
		after := inUse()
		return after - before, func() {
			for _, c := range conns {
				c.Close()
			}
		}
	}
	for b.Loop() {
		direct, closeDirect := open("ws://" + up.Addr + "/echo")
		closeDirect()
		testutil.WaitFor(b, "direct connections to close", func() bool { return up.Open() == 0 })
		tunnel, closeTunnel := open("ws://" + g.addr + "/ws/echo")
		b.ReportMetric(float64(direct)/n, "B/direct-conn")
		b.ReportMetric(float64(tunnel)/n, "B/tunnel-conn")
		b.ReportMetric((float64(tunnel)-float64(direct))/n, "B/tunnel")
		closeTunnel()
		testutil.WaitFor(b, "tunnels to close", func() bool { return g.res.tunnels.Len() == 0 })
	}
}
