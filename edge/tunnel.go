package edge

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/observe"
)

// A tunnel joins a hijacked client connection to the target connection
// sluice dialed for it (websocket.go), copying bytes both ways until one
// side closes, the tunnel idles out or outlives its route's max_lifetime,
// or the gateway shuts down.
//
// Memory per tunnel: this struct with two small read buffers
// (smallRelayBuf each) and two goroutines. A read that fills the small
// buffer switches that direction to a pooled 32 KiB buffer until a read
// comes back short again, so a busy tunnel moves data in large writes and
// an idle one holds only its small buffers. Nothing grows with message
// size or count: frames are relayed as bytes, never reassembled.
//
// Closing: a side's EOF is passed on as a half-close (CloseWrite) to the
// other, whose own close then ends the tunnel; an error on either side
// (reset, timeout) closes both. The tunnel owns both connections: fasthttp
// keeps no hijacked connection (Server.KeepHijackedConns), and the target
// connection belongs to no pool, so a reload can't touch it.
type tunnel struct {
	reg    *tunnels
	count  *tunnelCount
	client net.Conn
	up     net.Conn
	head   []byte // the 101 for the client
	early  []byte // what the target sent after its 101
	start  time.Time
	idle   time.Duration
	end    time.Time // start + max_lifetime
	last   atomic.Int64

	toUp, toClient atomic.Int64 // bytes relayed
	closedBy       atomic.Pointer[string]
	draining       atomic.Bool
	wg             sync.WaitGroup
	started        chan struct{} // closed once client is set (run)
	drained        chan struct{} // closed when goingAway is done with the connections
	done           chan struct{} // closed by finish

	// For the closing log line (copied: the RequestCtx is gone by then).
	metrics                               *observe.Route
	route, upstream, target, id, ip, path string
	log                                   func(t *tunnel, d time.Duration)

	fromClient, fromUp frames
	bufC, bufU         [smallRelayBuf]byte
}

const (
	smallRelayBuf = 1 << 10
	largeRelayBuf = 32 << 10
)

var relayBufs = sync.Pool{New: func() any { b := make([]byte, largeRelayBuf); return &b }}

// Who ended a tunnel, for the log line and the metrics.
var (
	closedByClient   = "client"
	closedByUpstream = "upstream"
	closedByIdle     = "idle_timeout"
	closedByLifetime = "max_lifetime"
	closedByShutdown = "shutdown"
	closedByRemoved  = "route_removed"
)

func newTunnel(x *exchange, ws *wsRoute, up net.Conn, br interface {
	Buffered() int
	Peek(int) ([]byte, error)
}, head []byte) *tunnel {
	now := time.Now()
	t := &tunnel{
		count: ws.count, up: up, head: head, start: now, idle: ws.idle, end: now.Add(ws.lifetime),
		done: make(chan struct{}), started: make(chan struct{}), drained: make(chan struct{}),
		route: x.route.name, upstream: x.upstream, target: x.target,
		id: string(x.id), ip: string(x.clientIP()), path: string(x.path),
		log: x.snap.res.logTunnel, metrics: x.route.metrics,
	}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		t.early = append([]byte(nil), b...)
	}
	t.last.Store(now.UnixNano())
	return t
}

// run is the hijack handler: it writes the 101, starts the two relays and
// returns, so fasthttp lets go of the request context at once.
func (t *tunnel) run(c net.Conn) {
	raw := c
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		raw = u.UnsafeConn()
	}
	// Bytes the client sent after its upgrade request are in fasthttp's
	// reader: read what is buffered without waiting (a deadline in the
	// past fails any read that would block).
	var early []byte
	_ = raw.SetReadDeadline(time.Unix(1, 0))
	for {
		n, err := c.Read(t.bufC[:])
		early = append(early, t.bufC[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	_ = raw.SetReadDeadline(time.Time{})
	t.client = raw
	close(t.started)
	_ = raw.SetWriteDeadline(time.Now().Add(t.idle))
	if _, err := raw.Write(t.head); err != nil {
		t.closedBy.CompareAndSwap(nil, &closedByClient)
		t.finish()
		return
	}
	t.head = nil
	t.wg.Add(2)
	go t.relay(t.client, t.up, early, &t.toUp, &t.fromClient, t.bufC[:], &closedByClient)
	go t.relay(t.up, t.client, t.early, &t.toClient, &t.fromUp, t.bufU[:], &closedByUpstream)
	go func() {
		t.wg.Wait()
		if t.draining.Load() {
			<-t.drained
		}
		t.finish()
	}()
}

// relay copies src to dst until src ends. first is sent before anything
// is read.
func (t *tunnel) relay(src, dst net.Conn, first []byte, n *atomic.Int64, fr *frames, small []byte, srcName *string) {
	defer t.wg.Done()
	if len(first) > 0 {
		fr.feed(first)
		if _, err := dst.Write(first); err != nil {
			t.abort(srcName)
			return
		}
		n.Add(int64(len(first)))
	}
	buf := small
	var large *[]byte
	defer func() {
		if large != nil {
			relayBufs.Put(large)
		}
	}()
	for {
		_ = src.SetReadDeadline(t.readDeadline())
		if t.draining.Load() {
			// Closing (shutdown, timeout, route removed) may have set a
			// past deadline just before the line above undid it: draining
			// is set before that, so it is seen here.
			return
		}
		k, err := src.Read(buf)
		if k > 0 {
			now := time.Now()
			t.last.Store(now.UnixNano())
			fr.feed(buf[:k])
			_ = dst.SetWriteDeadline(now.Add(t.idle))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				t.abort(other(srcName))
				return
			}
			n.Add(int64(k))
			switch {
			case k == len(buf) && large == nil:
				large = relayBufs.Get().(*[]byte)
				buf = *large
			case k < len(small) && large != nil:
				relayBufs.Put(large)
				large, buf = nil, small
			}
		}
		if err == nil {
			continue
		}
		if t.draining.Load() {
			return // Shutdown takes it from here
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			now := time.Now()
			if !now.Before(t.end) {
				t.timedOut(&closedByLifetime)
				return
			}
			if now.Sub(time.Unix(0, t.last.Load())) < t.idle {
				continue // the other direction kept the tunnel busy
			}
			t.timedOut(&closedByIdle)
			return
		}
		if err == io.EOF {
			// A clean close: pass it on as a half-close; the other side
			// answers with its own close (RFC 6455 7.1.1: the server
			// closes the TCP connection first, the client after).
			t.closedBy.CompareAndSwap(nil, srcName)
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			// Don't wait for ever for the other side to follow.
			_ = dst.SetReadDeadline(time.Now().Add(min(t.idle, 10*time.Second)))
			return
		}
		t.abort(srcName)
		return
	}
}

func other(side *string) *string {
	if side == &closedByClient {
		return &closedByUpstream
	}
	return &closedByClient
}

// readDeadline is when a read with no data gives up: the idle timeout
// from the last byte either way, or the end of the tunnel's lifetime.
func (t *tunnel) readDeadline() time.Time {
	d := time.Unix(0, t.last.Load()).Add(t.idle)
	if d.After(t.end) {
		return t.end
	}
	return d
}

// abort ends the tunnel now: both connections closed, so both relays
// return.
func (t *tunnel) abort(by *string) {
	t.closedBy.CompareAndSwap(nil, by)
	select {
	case <-t.started:
		_ = t.client.Close()
	default:
	}
	_ = t.up.Close()
}

// finish runs once both relays have returned.
func (t *tunnel) finish() {
	if t.client != nil {
		_ = t.client.Close()
	}
	_ = t.up.Close()
	t.reg.remove(t)
	t.count.release()
	if t.log != nil {
		t.log(t, time.Since(t.start))
	}
	close(t.done)
}

// ClosedBy says who ended the tunnel.
func (t *tunnel) ClosedBy() string {
	if p := t.closedBy.Load(); p != nil {
		return *p
	}
	return closedByClient
}

// timedOut ends the tunnel at its idle_timeout or max_lifetime the way a
// shutdown does (closeHandshake), called by a relay that then returns.
// The code is 1001 "going away" (RFC 6455 7.4.1): it is the gateway, not
// either endpoint, that ends the connection before its purpose is
// fulfilled (1000 would tell both sides the conversation is complete).
func (t *tunnel) timedOut(by *string) {
	if t.draining.CompareAndSwap(false, true) {
		go t.closeHandshake(time.Now().Add(min(t.idle, closeGrace)), by)
	}
}

// closeGrace bounds how long a side has to answer a close frame sluice
// sent on a timeout (at most the tunnel's idle_timeout).
const closeGrace = 5 * time.Second

// goingAway ends the tunnel for a shutdown or the removal of its route:
// both relays are stopped (each finishes the write it is in), then each
// side gets a close frame with status 1001 (RFC 6455 7.4.1) when its
// stream is between frames, and a half-close. The sides' own closes end
// the tunnel; at ctx's end, it is closed whatever the sides do.
func (t *tunnel) goingAway(ctx context.Context, by *string) {
	select {
	case <-t.started:
	case <-ctx.Done():
		_ = t.up.Close() // never started: run's relays end at once
		return
	}
	if !t.draining.CompareAndSwap(false, true) {
		return // already closing (a timeout, a removal): the caller waits for done
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(closeGrace)
	}
	t.closeHandshake(deadline, by)
}

// closeHandshake is goingAway once the tunnel is draining; it returns when
// both sides have closed or at deadline.
func (t *tunnel) closeHandshake(deadline time.Time, by *string) {
	defer close(t.drained)
	t.closedBy.CompareAndSwap(nil, by)
	past := time.Unix(1, 0)
	_ = t.client.SetReadDeadline(past)
	_ = t.up.SetReadDeadline(past)
	t.wg.Wait()
	var wg sync.WaitGroup
	// Each side gets its close frame only between two frames of what was
	// relayed to it; read it before the goroutines feed the trackers again.
	for _, s := range [2]struct {
		c     net.Conn
		in    *frames // what this side sends
		frame []byte  // nil: the side is mid-frame, it only gets a half-close
	}{
		{t.client, &t.fromClient, whenBoundary(&t.fromUp, closeFrameToClient)},
		{t.up, &t.fromUp, whenBoundary(&t.fromClient, maskedCloseFrame())},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.frame != nil {
				_ = s.c.SetWriteDeadline(deadline)
				_, _ = s.c.Write(s.frame)
			}
			if cw, ok := s.c.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			// Wait for the side's close frame or its EOF, up to the
			// shutdown deadline (RFC 6455 7.1.1: after the close
			// handshake, the server closes the connection first).
			_ = s.c.SetReadDeadline(deadline)
			in := s.in
			var buf [512]byte
			for !in.closed {
				n, err := s.c.Read(buf[:])
				in.feed(buf[:n])
				if err != nil {
					break
				}
			}
		}()
	}
	wg.Wait()
}

func whenBoundary(f *frames, frame []byte) []byte {
	if f.boundary() {
		return frame
	}
	return nil
}

// closeFrameToClient is a close frame with status 1001 "going away", as a
// server sends it (unmasked, RFC 6455 5.1).
var closeFrameToClient = []byte{0x88, 0x02, 0x03, 0xe9}

// maskedCloseFrame is the same frame as a client must send it: masked
// with a fresh key (RFC 6455 5.3).
func maskedCloseFrame() []byte {
	f := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9}
	_, _ = rand.Read(f[2:6])
	f[6] ^= f[2]
	f[7] ^= f[3]
	return f
}

// frames follows one direction's frame boundaries (RFC 6455 5.2) without
// touching payloads, so a shutdown can put a close frame between two
// frames rather than into one.
type frames struct {
	left   uint64 // payload bytes left in the current frame
	hdr    [14]byte
	hn     int
	opcode byte // the current (or last) frame's
	closed bool // a whole close frame has gone by
}

func (f *frames) feed(b []byte) {
	for len(b) > 0 {
		if f.left > 0 {
			k := uint64(len(b))
			if k > f.left {
				k = f.left
			}
			b, f.left = b[k:], f.left-k
			f.closed = f.closed || f.left == 0 && f.opcode == 0x8
			continue
		}
		f.hdr[f.hn] = b[0]
		f.hn++
		b = b[1:]
		if f.hn < 2 {
			continue
		}
		need := 2
		switch f.hdr[1] & 0x7f {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if f.hdr[1]&0x80 != 0 {
			need += 4
		}
		if f.hn < need {
			continue
		}
		switch l := f.hdr[1] & 0x7f; l {
		case 126:
			f.left = uint64(f.hdr[2])<<8 | uint64(f.hdr[3])
		case 127:
			f.left = 0
			for i := 2; i < 10; i++ {
				f.left = f.left<<8 | uint64(f.hdr[i])
			}
		default:
			f.left = uint64(l)
		}
		f.hn, f.opcode = 0, f.hdr[0]&0x0f
		f.closed = f.closed || f.left == 0 && f.opcode == 0x8
	}
}

func (f *frames) boundary() bool { return f.left == 0 && f.hn == 0 }

// tunnels is the gateway's registry of open tunnels (resources): what
// Shutdown drains, and each route's count of open tunnels, kept by route
// name so a reload neither resets nor doubles it.
type tunnels struct {
	mu       sync.Mutex
	open     map[*tunnel]struct{}
	counts   map[string]*tunnelCount
	drains   map[string]*time.Timer // routes a reload removed, until their drain deadline
	shutting bool
}

type tunnelCount struct{ n atomic.Int64 }

func (c *tunnelCount) acquire(max int64) bool {
	if c.n.Add(1) > max {
		c.n.Add(-1)
		return false
	}
	return true
}

func (c *tunnelCount) release() { c.n.Add(-1) }

// Open is the number of the route's open tunnels.
func (c *tunnelCount) Open() int64 { return c.n.Load() }

func (r *tunnels) countFor(route string) *tunnelCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]*tunnelCount{}
	}
	c := r.counts[route]
	if c == nil {
		c = &tunnelCount{}
		r.counts[route] = c
	}
	return c
}

// add registers t; false once shutdown has begun.
func (r *tunnels) add(t *tunnel) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutting {
		return false
	}
	if r.open == nil {
		r.open = map[*tunnel]struct{}{}
	}
	r.open[t] = struct{}{}
	t.reg = r
	return true
}

func (r *tunnels) remove(t *tunnel) {
	r.mu.Lock()
	delete(r.open, t)
	r.mu.Unlock()
}

// Len is the number of open tunnels.
func (r *tunnels) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.open)
}

// reloaded is told the route names before and after a reload. The open
// tunnels of a route that is gone get a 1001 close (goAway, with grace for
// the close handshake) once drain has passed, unless a later reload brings
// the route back first; a route removed again counts from then.
func (r *tunnels) reloaded(before, after []string, drain, grace time.Duration) {
	kept := make(map[string]bool, len(after))
	for _, name := range after {
		kept[name] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutting {
		return
	}
	for _, name := range after {
		if tm := r.drains[name]; tm != nil {
			tm.Stop()
			delete(r.drains, name)
		}
	}
	for _, name := range before {
		if kept[name] || r.drains[name] != nil {
			continue
		}
		if r.drains == nil {
			r.drains = map[string]*time.Timer{}
		}
		var tm *time.Timer
		tm = time.AfterFunc(drain, func() {
			r.mu.Lock()
			if r.shutting || r.drains[name] != tm {
				r.mu.Unlock()
				return // shut down, or the route came back
			}
			delete(r.drains, name)
			var list []*tunnel
			for t := range r.open {
				if t.route == name {
					list = append(list, t)
				}
			}
			r.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			_ = goAway(ctx, list, &closedByRemoved)
		})
		r.drains[name] = tm
	}
}

// shutdown sends every open tunnel's sides a 1001 close and waits, until
// ctx is done, for them to close; what is left then is closed.
func (r *tunnels) shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.shutting = true
	for _, tm := range r.drains {
		tm.Stop()
	}
	open := make([]*tunnel, 0, len(r.open))
	for t := range r.open {
		open = append(open, t)
	}
	r.mu.Unlock()
	return goAway(ctx, open, &closedByShutdown)
}

// goAway runs goingAway on each of open and waits, until ctx is done, for
// them to close; what is left then is closed.
func goAway(ctx context.Context, open []*tunnel, by *string) error {
	var wg sync.WaitGroup
	for _, t := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.goingAway(ctx, by)
		}()
	}
	wg.Wait()
	for _, t := range open {
		select {
		case <-t.done:
		case <-ctx.Done():
			t.abort(by)
			<-t.done
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// logTunnel writes the access log line of a closed tunnel (always, not
// sampled: a tunnel is rare next to requests and its line is its only
// record) and the route's tunnel metrics.
func (r *resources) logTunnel(t *tunnel, d time.Duration) {
	t.metrics.TunnelClosed(d, t.toUp.Load(), t.toClient.Load())
	if r.accessLog == nil {
		return
	}
	e := observe.Entry{
		Time: t.start, RequestID: []byte(t.id), ClientIP: []byte(t.ip), Method: []byte("GET"),
		Path: []byte(t.path), Route: t.route, Upstream: t.upstream, Target: t.target,
		Status: 101, BytesIn: t.toUp.Load(), BytesOut: t.toClient.Load(), Duration: d,
		TunnelClosedBy: t.ClosedBy(),
	}
	r.accessLog.Log(&e)
}
