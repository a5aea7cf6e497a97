package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sluicegw/sluice/internal/testutil"
)

// wsConfig is a gateway with a websocket route /ws/ (the prefix is
// stripped) and a plain route /plain/ to the same upstream.
func wsConfig(upURL, wsBlock string) string {
	return oneUpstream(upURL, `
  - name: ws
    match: { prefix: /ws/ }
    upstream: up
    rewrite: { strip_prefix: /ws }
    request_headers: { set: { X-Via-Route: ws } }
    websocket: `+wsBlock+`
  - { name: plain, match: { prefix: /plain/ }, upstream: up, rewrite: { strip_prefix: /plain } }
`)
}

var wsDialer = &websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}

func dialWS(t testing.TB, g *testGateway, path string) *websocket.Conn {
	t.Helper()
	c, resp, err := wsDialer.Dial("ws://"+g.addr+path, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(t testing.TB, c *websocket.Conn, kind int, msg []byte) {
	t.Helper()
	if err := c.WriteMessage(kind, msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if k != kind || !bytes.Equal(got, msg) {
		t.Fatalf("echo: kind %d len %d, want kind %d len %d", k, len(got), kind, len(msg))
	}
}

// RFC 6455 5.6 (text and binary data frames), 5.4 (fragmentation), 5.5.2-3
// (ping and pong): all pass through the tunnel unchanged, and the upgrade
// request went through the route's steps (rewrite, header ops, forwarding
// headers) with Upgrade and Connection kept.
func TestWebSocketEcho(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "true"))
	c := dialWS(t, g, "/ws/echo")

	roundTrip(t, c, websocket.TextMessage, []byte("hello"))
	roundTrip(t, c, websocket.BinaryMessage, []byte{0, 1, 2, 0xff})
	large := make([]byte, 1<<20)
	_, _ = rand.Read(large)
	roundTrip(t, c, websocket.BinaryMessage, large) // 64-bit length frames

	// Fragmented: each write through NextWriter beyond its 1 KiB buffer
	// goes out as a frame of one message (FIN clear).
	w, err := c.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("fragment ", 2000)
	for i := 0; i < len(want); i += 700 {
		_, _ = io.WriteString(w, want[i:min(i+700, len(want))])
	}
	_ = w.Close()
	_, got, err := c.ReadMessage()
	if err != nil || string(got) != want {
		t.Fatalf("fragmented echo: %v, %d bytes want %d", err, len(got), len(want))
	}

	// Ping: gorilla's upstream answers with a pong carrying the data.
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = c.ReadMessage() }() // pong handlers run inside reads
	select {
	case d := <-pong:
		if d != "are you there" {
			t.Errorf("pong %q", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}

	seen := up.Seen()
	if len(seen) != 1 {
		t.Fatalf("upstream saw %d upgrades", len(seen))
	}
	h := seen[0]
	if h.Get("X-Via-Route") != "ws" || h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Request-Id") == "" {
		t.Errorf("route steps did not run on the upgrade: %v", h)
	}
	if !strings.EqualFold(h.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(h.Get("Connection")), "upgrade") {
		t.Errorf("Upgrade/Connection not forwarded: %v", h)
	}
}

// A route without websocket refuses an upgrade with a JSON 400, and
// RFC 6455 4.1/4.4 upgrades that are malformed get 400 (426 and the
// supported version for an unknown Sec-WebSocket-Version).
func TestWebSocketRefusedUpgrades(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "true"))
	valid := map[string]string{
		"Upgrade": "websocket", "Connection": "Upgrade",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
	}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for a, b := range valid {
			h[a] = b
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	wantFault(t, g.do(t, request{path: "/plain/echo", headers: valid}), 400, "websocket upgrades are not enabled on this route")
	wantFault(t, g.do(t, request{path: "/ws/echo", headers: with("Sec-WebSocket-Key", "")}), 400, "malformed websocket upgrade")
	wantFault(t, g.do(t, request{path: "/ws/echo", headers: with("Sec-WebSocket-Key", "c2hvcnQ=")}), 400, "malformed websocket upgrade")
	wantFault(t, g.do(t, request{path: "/ws/echo", headers: with("Connection", "keep-alive")}), 400, "malformed websocket upgrade")
	wantFault(t, g.do(t, request{method: "POST", path: "/ws/echo", headers: valid}), 400, "malformed websocket upgrade")
	r := g.do(t, request{path: "/ws/echo", headers: with("Sec-WebSocket-Version", "8")})
	wantFault(t, r, 426, "unsupported websocket version")
	if r.header.Get("Sec-WebSocket-Version") != "13" {
		t.Errorf("426 without Sec-WebSocket-Version: 13: %v", r.header)
	}
	if n := up.Upgrades(); n != 0 {
		t.Errorf("%d refused upgrades reached the upstream", n)
	}
}

// An upstream that answers the upgrade with something other than 101:
// the client gets that answer as it is (RFC 6455 4.1: the client handles
// a non-101 as an HTTP answer).
func TestWebSocketUpstreamRefuses(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "true"))
	_, resp, err := wsDialer.Dial("ws://"+g.addr+"/ws/refuse", nil)
	if err == nil {
		t.Fatal("upgrade succeeded")
	}
	if resp == nil || resp.StatusCode != 403 {
		t.Fatalf("want the upstream's 403, got %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != `{"refused":"by upstream"}` {
		t.Errorf("body %q", b)
	}
	if g.res.tunnels.Len() != 0 || g.Snapshot().routes[0].ws.count.Open() != 0 {
		t.Error("a refused upgrade left a tunnel counted")
	}
}

// The upstream dies mid-stream (connections reset, no close frame): the
// client's connection ends too, and the tunnel is gone.
func TestWebSocketUpstreamDies(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "true"))
	c := dialWS(t, g, "/ws/echo")
	roundTrip(t, c, websocket.TextMessage, []byte("before"))
	up.Kill()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("read after the upstream died succeeded")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the client connection stayed open after the upstream died")
	}
	testutil.WaitFor(t, "the tunnel to close", func() bool { return g.res.tunnels.Len() == 0 })
}

// A client close (RFC 6455 7.1.2: close frame, then the TCP close) reaches
// the upstream, and the tunnel ends without leaking either side.
func TestWebSocketClientCloses(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "true"))
	c := dialWS(t, g, "/ws/echo")
	roundTrip(t, c, websocket.TextMessage, []byte("hi"))
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(5*time.Second))
	c.Close()
	testutil.WaitFor(t, "the upstream to see the close", func() bool {
		cl := up.Closes()
		return len(cl) == 1 && cl[0] == websocket.CloseNormalClosure
	})
	testutil.WaitFor(t, "both sides to be released", func() bool { return g.res.tunnels.Len() == 0 && up.Open() == 0 })
}

// max_tunnels caps a route's open tunnels: one more upgrade gets 503, and
// a slot freed by a close is usable again.
func TestWebSocketTunnelCap(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "{ max_tunnels: 2 }"))
	a := dialWS(t, g, "/ws/echo")
	dialWS(t, g, "/ws/echo")
	_, resp, err := wsDialer.Dial("ws://"+g.addr+"/ws/echo", nil)
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("third tunnel: want 503, got %v %v", resp, err)
	}
	a.Close()
	testutil.WaitFor(t, "a slot to free", func() bool { return g.res.tunnels.Len() == 1 })
	c := dialWS(t, g, "/ws/echo")
	roundTrip(t, c, websocket.TextMessage, []byte("in"))
}

// idle_timeout closes a tunnel with no traffic either way, with a close
// frame 1001 to each side; traffic in one direction only keeps it open.
func TestWebSocketIdleTimeout(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "{ idle_timeout: 1s, max_lifetime: 1h }"))
	busy := dialWS(t, g, "/ws/echo")
	idle := dialWS(t, g, "/ws/echo")
	start := time.Now()
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() { _, _, err := idle.ReadMessage(); done <- err }()
	// busy talks every 200ms until idle is closed.
	for {
		select {
		case err := <-done:
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the idle tunnel was never closed")
			}
			if d := time.Since(start); d < time.Second {
				t.Fatalf("closed after %v, before the idle timeout", d)
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("idle tunnel: want close 1001, got %v", err)
			}
			testutil.WaitFor(t, "the upstream to see 1001", func() bool {
				cl := up.Closes()
				return len(cl) == 1 && cl[0] == websocket.CloseGoingAway
			})
			roundTrip(t, busy, websocket.TextMessage, []byte("still here"))
			return
		case <-time.After(200 * time.Millisecond):
			roundTrip(t, busy, websocket.TextMessage, []byte("tick"))
		}
	}
}

// max_lifetime closes even a busy tunnel, with a close frame 1001 to each
// side.
func TestWebSocketMaxLifetime(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "{ idle_timeout: 1s, max_lifetime: 1s }"))
	c := dialWS(t, g, "/ws/echo")
	start := time.Now()
	for {
		if err := c.WriteMessage(websocket.TextMessage, []byte("busy")); err != nil {
			t.Fatalf("write failed before a close frame came: %v", err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("tunnel not closed at max_lifetime")
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("want close 1001, got %v", err)
			}
			break
		}
	}
	testutil.WaitFor(t, "the upstream to see 1001", func() bool {
		cl := up.Closes()
		return len(cl) == 1 && cl[0] == websocket.CloseGoingAway
	})
	// start was taken just after the tunnel opened.
	if d := time.Since(start); d < 900*time.Millisecond || d > 5*time.Second {
		t.Fatalf("closed after %v, want about 1s", d)
	}
}

// 1,000 tunnels at once, each echoing a few messages.
func TestWebSocketThousandTunnels(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 connections")
	}
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, wsConfig(up.URL, "{ max_tunnels: 1000 }"))
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	conns := make([]*websocket.Conn, n)
	sem := make(chan struct{}, 64) // bounded dialing
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, _, err := wsDialer.Dial("ws://"+g.addr+"/ws/echo", nil)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if got := g.res.tunnels.Len(); got != n {
		t.Fatalf("%d tunnels open, want %d", got, n)
	}
	errs = make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Appendf(nil, "tunnel %d", i)
			for range 3 {
				if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
					errs <- err
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("tunnel %d: %q %v", i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Twenty reloads while tunnels stream: no tunnel drops a message or
// closes, since tunnels hold their own connections (no pool retain or
// idle sweep reaches them), and the route's tunnel count carries over.
func TestWebSocketSurvivesReloads(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	cfgA := wsConfig(up.URL, "{ max_tunnels: 20 }")
	g := startGateway(t, cfgA)
	const n = 20
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialWS(t, g, "/ws/echo")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var sent sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		sent.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for seq := 0; ; seq++ {
				msg := fmt.Appendf(nil, "%d/%d", i, seq)
				if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
					errs <- err
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("tunnel %d seq %d: %q %v", i, seq, got, err)
					return
				}
				if first {
					sent.Done()
					first = false
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	sent.Wait()
	for i := range 20 {
		// Alternate configs that change the upstream pool's settings, so
		// the pool is rebuilt, and then restored.
		cfg := cfgA
		if i%2 == 0 {
			cfg = strings.Replace(cfgA, "targets:", "max_connections: 7\n    targets:", 1)
		}
		if err := g.Apply(mustParse(t, cfg)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if g.Reloads() != 20 || g.res.tunnels.Len() != n || up.Upgrades() != n {
		t.Fatalf("reloads %d, tunnels %d, upstream upgrades %d", g.Reloads(), g.res.tunnels.Len(), up.Upgrades())
	}
	if got := g.Snapshot().routes[0].ws.count.Open(); got != n {
		t.Errorf("route count %d after reloads, want %d", got, n)
	}
}

// Shutdown sends each side of each tunnel a close frame with 1001 "going
// away" (RFC 6455 7.4.1) and returns once they have closed.
func TestWebSocketShutdownGoingAway(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	gw, err := New(mustParse(t, wsConfig(up.URL, "true")), quietLogger(), "test")
	if err != nil {
		t.Fatal(err)
	}
	ln := testutil.Listen(t)
	go func() { _ = gw.Serve(ln) }()
	g := &testGateway{Gateway: gw, addr: ln.Addr().String()}
	c := dialWS(t, g, "/ws/echo")
	roundTrip(t, c, websocket.TextMessage, []byte("hi"))
	got := make(chan error, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := c.ReadMessage()
		got <- err // gorilla answers the close frame before returning
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	if err := <-got; !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("client: want close 1001, got %v", err)
	}
	testutil.WaitFor(t, "the upstream to see 1001", func() bool {
		cl := up.Closes()
		return len(cl) == 1 && cl[0] == websocket.CloseGoingAway
	})
	if gw.res.tunnels.Len() != 0 {
		t.Error("tunnel still registered after shutdown")
	}
}

// A reload that removes a route (by name) leaves its tunnels open until
// server.websocket_drain has passed, then sends each side 1001; a tunnel
// of a route the reload kept goes on.
func TestWebSocketRemovedRouteDrains(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	kept := `  - { name: kept, match: { prefix: /kept/ }, upstream: up, rewrite: { strip_prefix: /kept }, websocket: true }
`
	g := startGateway(t, wsConfig(up.URL, "true")+kept)
	gone := dialWS(t, g, "/ws/echo")
	stay := dialWS(t, g, "/kept/echo")
	roundTrip(t, gone, websocket.TextMessage, []byte("hi"))
	roundTrip(t, stay, websocket.TextMessage, []byte("hi"))
	got := make(chan error, 1)
	go func() {
		_ = gone.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := gone.ReadMessage()
		got <- err
	}()
	start := time.Now()
	if err := g.Apply(mustParse(t, oneUpstream(up.URL, kept)+"server: { websocket_drain: 200ms }\n")); err != nil {
		t.Fatal(err)
	}
	err := <-got
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("tunnel of the removed route: want close 1001, got %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("closed after %v, before the drain deadline", d)
	}
	testutil.WaitFor(t, "the upstream to see 1001", func() bool {
		cl := up.Closes()
		return len(cl) == 1 && cl[0] == websocket.CloseGoingAway
	})
	testutil.WaitFor(t, "the removed route's tunnel to be gone", func() bool { return g.res.tunnels.Len() == 1 })
	roundTrip(t, stay, websocket.TextMessage, []byte("still here"))
}

// A reload that brings a removed route back before its drain deadline
// cancels the drain: its tunnel goes on after another route's tunnel,
// removed later with the same drain, got its 1001.
func TestWebSocketRouteBackCancelsDrain(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	other := `  - { name: other, match: { prefix: /other/ }, upstream: up, rewrite: { strip_prefix: /other }, websocket: true }
`
	drain := "server: { websocket_drain: 200ms }\n"
	g := startGateway(t, wsConfig(up.URL, "true")+other)
	back := dialWS(t, g, "/ws/echo")
	gone := dialWS(t, g, "/other/echo")
	roundTrip(t, back, websocket.TextMessage, []byte("hi"))
	roundTrip(t, gone, websocket.TextMessage, []byte("hi"))
	got := make(chan error, 1)
	go func() {
		_ = gone.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := gone.ReadMessage()
		got <- err
	}()
	if err := g.Apply(mustParse(t, oneUpstream(up.URL, other)+drain)); err != nil { // removes ws
		t.Fatal(err)
	}
	if err := g.Apply(mustParse(t, wsConfig(up.URL, "true")+drain)); err != nil { // ws back, other removed
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	if err := <-got; !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("tunnel of the removed route: want close 1001, got %v", err)
	}
	testutil.WaitFor(t, "the removed route's tunnel to be gone", func() bool { return g.res.tunnels.Len() == 1 })
	roundTrip(t, back, websocket.TextMessage, []byte("still here"))
}

// The route's response_headers apply to the 101 (and to an upstream's
// refusal) like to any answer; the handshake's own headers stay.
func TestWebSocketResponseHeaders(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	cfg := strings.Replace(wsConfig(up.URL, "true"), "    websocket: true",
		"    response_headers: { set: { X-Frame-Options: DENY, Sec-WebSocket-Accept: bogus }, remove: [X-Upstream] }\n    websocket: true", 1)
	g := startGateway(t, cfg)
	c, resp, err := wsDialer.Dial("ws://"+g.addr+"/ws/echo", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Upstream") != "" {
		t.Errorf("101 headers: %v", resp.Header)
	}
	if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 {
		t.Errorf("X-Request-Id %q, want one", ids)
	}
	roundTrip(t, c, websocket.TextMessage, []byte("hi"))
	_, resp, _ = wsDialer.Dial("ws://"+g.addr+"/ws/refuse", nil)
	if resp == nil || resp.StatusCode != 403 || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("refusal: %v", resp)
	}
}

// The access log line of a closed tunnel: bytes each way and who closed.
func TestWebSocketAccessLog(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	dir := t.TempDir()
	g := startGateway(t, strings.Replace(wsConfig(up.URL, "true"), "routes:",
		"access_log: { enabled: true, output: "+dir+"/access.log }\nroutes:", 1))
	c := dialWS(t, g, "/ws/echo")
	roundTrip(t, c, websocket.TextMessage, []byte("12345"))
	c.Close()
	var line map[string]any
	testutil.WaitFor(t, "the tunnel's log line", func() bool {
		b, _ := os.ReadFile(dir + "/access.log")
		for _, l := range bytes.Split(b, []byte("\n")) {
			if bytes.Contains(l, []byte("tunnel_closed_by")) {
				return json.Unmarshal(l, &line) == nil
			}
		}
		return false
	})
	if line["tunnel_closed_by"] != "client" || line["status"] != float64(101) || line["route"] != "ws" {
		t.Errorf("log line %v", line)
	}
	// A 5-byte masked text frame is 11 bytes on the wire; its echo 7.
	if line["bytes_in"] != float64(11) || line["bytes_out"] != float64(7) {
		t.Errorf("bytes in/out %v/%v, want 11/7", line["bytes_in"], line["bytes_out"])
	}
}

// The tunnel metrics: open tunnels while open, then the duration and the
// bytes each way once closed.
func TestWebSocketMetrics(t *testing.T) {
	up := testutil.StartWSUpstream(t)
	g := startGateway(t, strings.Replace(wsConfig(up.URL, "true"), "routes:", "metrics: { data_plane_path: /metrics }\nroutes:", 1))
	c := dialWS(t, g, "/ws/echo")
	roundTrip(t, c, websocket.TextMessage, []byte("12345"))
	route := map[string]string{"route": "ws"}
	if v := sample(scrape(t, g), "sluice_websocket_tunnels_open", route); v != 1 {
		t.Fatalf("tunnels open %v, want 1", v)
	}
	c.Close()
	testutil.WaitFor(t, "the tunnel to close", func() bool { return g.res.tunnels.Len() == 0 })
	fams := scrape(t, g)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sluice_websocket_tunnels_open", route, 0},
		{"sluice_websocket_tunnel_duration_seconds", route, 1}, // one sample
		{"sluice_websocket_bytes_total", map[string]string{"route": "ws", "direction": "upstream"}, 11},
		{"sluice_websocket_bytes_total", map[string]string{"route": "ws", "direction": "client"}, 7},
	} {
		if v := sample(fams, c.name, c.labels); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}
