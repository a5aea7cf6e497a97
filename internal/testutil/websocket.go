package testutil

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"
)

// WSUpstream is a WebSocket server (gorilla/websocket) on a loopback port:
//
//	/echo     echoes every message back, as text or binary as it came
//	          (control frames are answered by gorilla: a ping gets a pong)
//	/refuse   answers 403 with a JSON body instead of upgrading
//
// Every upgrade request's headers are kept (Seen).
type WSUpstream struct {
	URL  string // http://127.0.0.1:port
	Addr string

	srv      *http.Server
	mu       sync.Mutex
	conns    map[*websocket.Conn]struct{}
	seen     []http.Header
	closes   []int // close codes received from the gateway side
	upgrades atomic.Int64
}

// StartWSUpstream starts a WSUpstream, stopped by t.Cleanup.
func StartWSUpstream(t testing.TB) *WSUpstream {
	t.Helper()
	ln := Listen(t)
	u := &WSUpstream{URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), conns: map[*websocket.Conn]struct{}{}}
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	mux := http.NewServeMux()
	mux.HandleFunc("/refuse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"refused":"by upstream"}`))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Header.Clone())
		u.mu.Unlock()
		c, err := up.Upgrade(w, r, http.Header{"X-Upstream": {"ws"}})
		if err != nil {
			return
		}
		u.upgrades.Add(1)
		u.mu.Lock()
		u.conns[c] = struct{}{}
		u.mu.Unlock()
		defer func() {
			u.mu.Lock()
			delete(u.conns, c)
			u.mu.Unlock()
			c.Close()
		}()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				if ce, ok := err.(*websocket.CloseError); ok {
					u.mu.Lock()
					u.closes = append(u.closes, ce.Code)
					u.mu.Unlock()
				}
				return
			}
			if err := c.WriteMessage(kind, msg); err != nil {
				return
			}
		}
	})
	u.srv = &http.Server{Handler: mux}
	go func() { _ = u.srv.Serve(ln) }()
	t.Cleanup(u.Kill)
	return u
}

// Kill closes the listener and every open WebSocket connection at once,
// with no close frame: an upstream that dies.
func (u *WSUpstream) Kill() {
	_ = u.srv.Close()
	u.mu.Lock()
	defer u.mu.Unlock()
	for c := range u.conns {
		_ = c.NetConn().(*net.TCPConn).SetLinger(0)
		c.Close()
	}
}

// Open is the number of WebSocket connections open now.
func (u *WSUpstream) Open() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.conns)
}

// Upgrades counts the connections upgraded so far.
func (u *WSUpstream) Upgrades() int64 { return u.upgrades.Load() }

// Seen returns the headers of the upgrade requests so far.
func (u *WSUpstream) Seen() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.seen...)
}

// Closes returns the close codes the upstream received.
func (u *WSUpstream) Closes() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int(nil), u.closes...)
}
