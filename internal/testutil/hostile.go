package testutil

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// HostileScript is the way a Hostile upstream misbehaves. Every script
// answers each request with a response tagged with the request target
// (header X-Tag and, when there is a body, the body itself), so a client
// can tell its own answer from another client's; then it breaks HTTP/1.1
// framing or the connection in its own way.
type HostileScript int

const (
	// LateResponse answers normally and keeps the connection open;
	// InjectIdle then writes an unsolicited complete response (X-Tag and
	// body "SMUGGLED") on every connection waiting for its next request,
	// as an upstream did 100 ms after a complete answer in issue #13.
	LateResponse HostileScript = iota + 1
	// ExtraResponse follows each answer, in the same write, with more
	// complete copies of it (Spill bytes of them).
	ExtraResponse
	// HeadWithBody answers HEAD with Content-Length and then a body anyway
	// (Spill bytes of complete copies of the tagged answer), in the same
	// write. GET is answered normally.
	HeadWithBody
	// NoContentWithBody answers 204 with Content-Length and a body (Spill
	// bytes of complete copies of the tagged 200 answer), in the same write.
	NoContentWithBody
	// OverlongBody sends a body longer than its Content-Length: the tag,
	// then Spill bytes of junk, in the same write.
	OverlongBody
	// CloseAfter closes each connection after its first answer, without
	// Connection: close.
	CloseAfter
	// ResetAfter resets each connection (RST) after its first answer.
	ResetAfter
	// EarlyHints sends 103 Early Hints before each answer.
	EarlyHints
	// Continue sends 100 Continue before each answer.
	Continue
	// SwitchProtocols answers 101 Switching Protocols (to a request that
	// asked for no upgrade) and then bytes of the "new protocol".
	SwitchProtocols
	// BadChunkStart answers chunked with a malformed first chunk size.
	BadChunkStart
	// BadChunkMidway answers chunked with MidwayBytes of valid chunks, then
	// a malformed chunk size, then closes.
	BadChunkMidway
	// TruncatedBody declares Content-Length: 4*MidwayBytes, sends
	// MidwayBytes of it, then closes.
	TruncatedBody
	// ChunkBoundaryClose answers chunked with MidwayBytes of valid chunks
	// and closes right after a chunk, without the last (zero-size) chunk:
	// the cut falls where a clean end could have been.
	ChunkBoundaryClose
)

// Spill is how many bytes a script writes past the end of an answer: more
// than an upstream read buffer (server.max_header_bytes, 16 KiB by
// default), so some of it is still in the socket when the answer has been
// read. A client that merely drops what it had buffered (fasthttp's own
// transport does) still reads the rest as the next answer.
const Spill = 20 << 10

// MidwayBytes is how much of a body BadChunkMidway and TruncatedBody send
// before breaking it: more than a response threshold, so the body streams.
const MidwayBytes = 256 << 10

// Smuggled is the tag of LateResponse's unsolicited response.
const Smuggled = "SMUGGLED"

// Hostile is a scripted raw-TCP upstream on a loopback port.
type Hostile struct {
	Addr   string // host:port
	URL    string // http://host:port
	script HostileScript
	ln     net.Listener

	requests atomic.Int64
	accepted atomic.Int64
	raced    atomic.Int64

	mu    sync.Mutex
	conns map[*hostileConn]struct{}
	wg    sync.WaitGroup
}

type hostileConn struct {
	c        *net.TCPConn
	mu       sync.Mutex
	idle     bool // the last answer is written, no byte of the next request has come
	injected bool // an unsolicited response was written to it
}

// StartHostile runs a Hostile upstream until the test ends.
func StartHostile(t testing.TB, script HostileScript) *Hostile {
	t.Helper()
	ln := Listen(t)
	h := &Hostile{Addr: ln.Addr().String(), script: script, ln: ln, conns: map[*hostileConn]struct{}{}}
	h.URL = "http://" + h.Addr
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(h.Close)
	return h
}

// Requests is how many requests the upstream has read.
func (h *Hostile) Requests() int64 { return h.requests.Load() }

// Conns is how many connections it has accepted.
func (h *Hostile) Conns() int64 { return h.accepted.Load() }

// Open is how many of its connections are still open on its side.
func (h *Hostile) Open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// Raced is how many requests arrived on a connection after InjectIdle had
// written an unsolicited response to it: a client that sent one either did
// not look at the connection before reusing it, or sent it before the
// unsolicited bytes could have reached it.
func (h *Hostile) Raced() int64 { return h.raced.Load() }

// Close stops the upstream and closes its connections.
func (h *Hostile) Close() {
	_ = h.ln.Close()
	h.mu.Lock()
	for hc := range h.conns {
		_ = hc.c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// InjectIdle writes LateResponse's unsolicited response to every
// connection that is waiting for its next request, waits (up to 2 s) until
// the peer's kernel has acknowledged all of it, so the bytes are in the
// client's socket before the call returns, and reports how many
// connections got one. Call it while no request is in flight.
func (h *Hostile) InjectIdle() int {
	late := answer(Smuggled, "200 OK")
	h.mu.Lock()
	var hit []*hostileConn
	for hc := range h.conns {
		hc.mu.Lock()
		if hc.idle && !hc.injected {
			if _, err := hc.c.Write(late); err == nil {
				hc.injected = true
				hit = append(hit, hc)
			}
		}
		hc.mu.Unlock()
	}
	h.mu.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for _, hc := range hit {
		for unacked(hc.c) > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // polling a kernel counter: no event to wait on
		}
	}
	return len(hit)
}

func (h *Hostile) accept() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.accepted.Add(1)
		hc := &hostileConn{c: c.(*net.TCPConn)}
		h.mu.Lock()
		h.conns[hc] = struct{}{}
		h.mu.Unlock()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.serve(hc)
			_ = hc.c.Close()
			h.mu.Lock()
			delete(h.conns, hc)
			h.mu.Unlock()
		}()
	}
}

func (h *Hostile) serve(hc *hostileConn) {
	br := bufio.NewReader(hc.c)
	for {
		if _, err := br.Peek(1); err != nil {
			return
		}
		hc.mu.Lock()
		hc.idle = false
		if hc.injected {
			h.raced.Add(1)
		}
		hc.mu.Unlock()
		method, target, ok := readRequest(br)
		if !ok {
			return
		}
		h.requests.Add(1)
		out := h.respond(method, target)
		if _, err := hc.c.Write(out); err != nil {
			return
		}
		switch h.script {
		case CloseAfter, BadChunkMidway, TruncatedBody, ChunkBoundaryClose:
			return
		case ResetAfter:
			_ = hc.c.SetLinger(0) // close sends RST
			return
		}
		hc.mu.Lock()
		hc.idle = true
		hc.mu.Unlock()
	}
}

// readRequest reads a request head and discards a Content-Length body.
func readRequest(br *bufio.Reader) (method, target string, ok bool) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", "", false
	}
	f := strings.Fields(line)
	if len(f) != 3 {
		return "", "", false
	}
	cl := 0
	for n := 0; n < 200; n++ {
		h, err := br.ReadString('\n')
		if err != nil {
			return "", "", false
		}
		if h == "\r\n" {
			if cl > 0 {
				if _, err := io.CopyN(io.Discard, br, int64(cl)); err != nil {
					return "", "", false
				}
			}
			return f[0], f[1], true
		}
		if k, v, found := strings.Cut(h, ":"); found && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			cl, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return "", "", false
}

// answer is a complete, well-formed response tagged with tag.
func answer(tag, status string) []byte {
	return []byte("HTTP/1.1 " + status + "\r\nX-Tag: " + tag + "\r\nContent-Length: " + strconv.Itoa(len(tag)) + "\r\n\r\n" + tag)
}

// copies repeats a until at least Spill bytes.
func copies(a []byte) []byte {
	return bytes.Repeat(a, Spill/len(a)+1)
}

func (h *Hostile) respond(method, tag string) []byte {
	ok := answer(tag, "200 OK")
	switch h.script {
	case ExtraResponse:
		return append(ok, copies(ok)...)
	case HeadWithBody:
		if method != "HEAD" {
			return ok
		}
		body := copies(ok)
		return append([]byte("HTTP/1.1 200 OK\r\nX-Tag: "+tag+"\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body...)
	case NoContentWithBody:
		body := copies(ok)
		return append([]byte("HTTP/1.1 204 No Content\r\nX-Tag: "+tag+"\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"), body...)
	case OverlongBody:
		return append(ok, bytes.Repeat([]byte("overlong;"), Spill/9+1)...)
	case EarlyHints:
		return append([]byte("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"), ok...)
	case Continue:
		return append([]byte("HTTP/1.1 100 Continue\r\n\r\n"), ok...)
	case SwitchProtocols:
		return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Tag: " + tag + "\r\n\r\n\x81\x05hello")
	case BadChunkStart:
		return []byte("HTTP/1.1 200 OK\r\nX-Tag: " + tag + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + tag + "\r\n0\r\n\r\n")
	case BadChunkMidway, ChunkBoundaryClose:
		var b bytes.Buffer
		b.WriteString("HTTP/1.1 200 OK\r\nX-Tag: " + tag + "\r\nTransfer-Encoding: chunked\r\n\r\n")
		chunk := bytes.Repeat([]byte{'c'}, 16<<10)
		for n := 0; n < MidwayBytes; n += len(chunk) {
			b.WriteString(strconv.FormatInt(int64(len(chunk)), 16) + "\r\n")
			b.Write(chunk)
			b.WriteString("\r\n")
		}
		if h.script == BadChunkMidway {
			b.WriteString("not-a-size\r\n")
		}
		return b.Bytes()
	case TruncatedBody:
		return append([]byte("HTTP/1.1 200 OK\r\nX-Tag: "+tag+"\r\nContent-Length: "+strconv.Itoa(4*MidwayBytes)+"\r\n\r\n"),
			bytes.Repeat([]byte{'t'}, MidwayBytes)...)
	}
	return ok
}
