package edge

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// WebSocket upgrades (RFC 6455). A route with a websocket block passes an
// upgrade request through all of its steps like any request (ip filter,
// CORS, auth, limits, quota), then the proxy step hands it here instead of
// to forward: sluice dials the target itself (a connection of the tunnel's
// own, never one of the HostClient pool's, so no reload, idle sweep or
// pool retain can close it), sends the request with Upgrade and
// Connection kept, and reads the answer. A 101 whose Sec-WebSocket-Accept
// matches the key joins the client and the target in a tunnel
// (tunnel.go); any other answer goes to the client as a normal response.
//
// What the client gets when sluice refuses:
//
//	route without websocket          400 "websocket upgrades are not enabled on this route"
//	malformed upgrade (RFC 6455 4.1) 400 "malformed websocket upgrade"
//	Sec-WebSocket-Version not 13     426 with Sec-WebSocket-Version: 13 (RFC 6455 4.4)
//	max_tunnels reached, draining    503 "websocket tunnel limit reached"
//	bad 101 from the upstream        502 "bad response from upstream"

var (
	faultWSNotAllowed = &fault{fasthttp.StatusBadRequest, "websocket upgrades are not enabled on this route"}
	faultWSMalformed  = &fault{fasthttp.StatusBadRequest, "malformed websocket upgrade"}
	faultWSVersion    = &fault{fasthttp.StatusUpgradeRequired, "unsupported websocket version"}
	faultWSLimit      = &fault{fasthttp.StatusServiceUnavailable, "websocket tunnel limit reached"}
)

// wsRoute is a route's compiled websocket block.
type wsRoute struct {
	idle, lifetime time.Duration
	max            int64
	connect        time.Duration // the upstream's connect_timeout
	count          *tunnelCount  // shared by every snapshot's route of this name
}

func (s *Snapshot) compileWebSocket(rt *route, rc *config.Route) {
	w := rc.WebSocket
	if !w.On() {
		return
	}
	rt.ws = &wsRoute{
		idle:     w.IdleTimeout.D(),
		lifetime: w.MaxLifetime.D(),
		max:      int64(w.MaxTunnels),
		connect:  s.Config.Upstreams[rc.Upstream].ConnectTimeout.D(),
		count:    s.res.tunnels.countFor(rc.Name),
	}
}

var (
	headerUpgrade    = []byte("Upgrade")
	headerConnection = []byte("Connection")
	headerWSKey      = []byte("Sec-WebSocket-Key")
	headerWSVersion  = []byte("Sec-WebSocket-Version")
	headerWSAccept   = []byte("Sec-WebSocket-Accept")
	tokenWebSocket   = []byte("websocket")
	tokenUpgrade     = []byte("upgrade")
	valueUpgrade     = []byte("Upgrade")
	wsGUID           = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11") // RFC 6455 1.3
)

// wantsWebSocket: the request asks to upgrade to websocket (its Upgrade
// lists the token). Only asked when checkHead saw a hop-by-hop name, so a
// plain request pays nothing.
func wantsWebSocket(h *fasthttp.RequestHeader) bool {
	return hasToken(h.PeekBytes(headerUpgrade), tokenWebSocket)
}

// checkUpgrade holds the upgrade to RFC 6455 4.1 (GET, HTTP/1.1 or later,
// Connection: upgrade, Sec-WebSocket-Key of 16 bytes in base64,
// Sec-WebSocket-Version: 13, no body). It returns the key.
func checkUpgrade(req *fasthttp.Request) ([]byte, *fault) {
	h := &req.Header
	if !h.IsGet() || !h.IsHTTP11() || !hasToken(h.PeekBytes(headerConnection), tokenUpgrade) ||
		h.ContentLength() > 0 || h.ContentLength() == -1 {
		return nil, faultWSMalformed
	}
	key := h.PeekBytes(headerWSKey)
	var raw [18]byte
	if len(key) != 24 {
		return nil, faultWSMalformed
	}
	if n, err := base64.StdEncoding.Decode(raw[:], key); err != nil || n != 16 {
		return nil, faultWSMalformed
	}
	if v := h.PeekBytes(headerWSVersion); string(v) != "13" {
		if len(v) == 0 {
			return nil, faultWSMalformed
		}
		return nil, faultWSVersion
	}
	return key, nil
}

// acceptFor is Sec-WebSocket-Accept for key (RFC 6455 4.2.2 step 5.4).
func acceptFor(key []byte) []byte {
	h := sha1.New()
	h.Write(key)
	h.Write(wsGUID)
	out := make([]byte, base64.StdEncoding.EncodedLen(sha1.Size))
	base64.StdEncoding.Encode(out, h.Sum(nil))
	return out
}

// upgrade runs an upgrade request that has passed the route's other steps.
// The request is prepared for forwarding (forwarding headers, rewrite,
// header ops) by the proxy step; here Upgrade and Connection go back in.
// hash is the balancer's key (ip_hash, consistent_hash), as for forward.
func (p *proxyStep) upgrade(x *exchange, key []byte, hash uint64) {
	rt, ctx := p.rt, x.ctx
	ws := rt.ws
	if !ws.count.acquire(ws.max) {
		x.fail(faultWSLimit)
		return
	}
	keep := false
	defer func() {
		if !keep {
			ws.count.release()
		}
	}()
	req := &ctx.Request
	req.Header.SetCanonical(headerUpgrade, tokenWebSocket)
	req.Header.SetCanonical(headerConnection, valueUpgrade)

	up := rt.upstream
	target, _, err := up.pool.Pick(hash, 0)
	if err != nil {
		if errors.Is(err, pool.ErrCircuitOpen) {
			x.fail(faultCircuitOpen)
			return
		}
		x.fail(faultNoTarget)
		return
	}
	switch {
	case rt.hostMode == hostLiteral:
		req.Header.SetHostBytes(rt.hostValue)
	case rt.hostMode == hostTarget, len(req.Header.Host()) == 0:
		req.Header.SetHost(target.Host)
	}
	x.upstream, x.target = up.name, target.URL
	t0 := time.Now()
	conn, err := net.DialTimeout("tcp", target.Host, ws.connect)
	if err != nil {
		up.pool.Report(target, pool.Failure, time.Since(t0))
		x.fail(faultConnect)
		return
	}
	resp := &ctx.Response
	br, f := roundTripUpgrade(conn, req, resp, t0.Add(rt.timeout), p.s.maxBodyBytes)
	rtt := time.Since(t0)
	x.upstreamTime = rtt
	if f != nil {
		conn.Close()
		up.pool.Report(target, pool.Failure, rtt)
		x.fail(f)
		return
	}
	up.pool.Report(target, pool.Success, rtt)
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		// The upstream refused: its answer goes to the client as it is.
		conn.Close()
		stripResponseHopByHop(&resp.Header)
		appendVia(&resp.Header)
		responseOps(&resp.Header, rt)
		resp.Header.SetCanonical(headerRequestID, x.id)
		return
	}
	if !bytes.Equal(resp.Header.PeekBytes(headerWSAccept), acceptFor(key)) ||
		!hasToken(resp.Header.PeekBytes(headerUpgrade), tokenWebSocket) {
		// RFC 6455 4.1: the client would fail this connection anyway.
		conn.Close()
		x.fail(faultBadResponse)
		return
	}
	responseOps(&resp.Header, rt)
	t := newTunnel(x, ws, conn, br, switchingHead(&resp.Header, x.id))
	if !p.s.res.tunnels.add(t) {
		conn.Close()
		x.fail(faultWSLimit)
		return
	}
	keep = true
	rt.metrics.TunnelOpened()
	ctx.HijackSetNoResponse(true) // the tunnel writes the 101 itself
	ctx.Hijack(t.run)
}

// roundTripUpgrade sends req on conn and reads the answer's head, and for
// anything but a 101 its body. The returned reader holds what the
// upstream sent after its 101 (frames may follow the head at once).
func roundTripUpgrade(conn net.Conn, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time, maxBody int) (*bufio.Reader, *fault) {
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, faultConnect
	}
	bw := bufio.NewWriterSize(conn, 4096)
	if err := req.Header.Write(bw); err != nil {
		return nil, faultConnect
	}
	if err := bw.Flush(); err != nil {
		return nil, faultConnect
	}
	br := bufio.NewReaderSize(conn, 4096)
	if err := resp.Header.Read(br); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, faultTimeout
		}
		return nil, faultBadResponse
	}
	if resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
		_ = conn.SetDeadline(time.Time{})
		return br, nil
	}
	if resp.StatusCode() < 200 {
		return nil, faultBadResponse // another interim answer: nothing sluice relays
	}
	resp.Header.ResetConnectionClose()
	if err := resp.ReadBody(br, maxBody); err != nil {
		return nil, faultBadResponse
	}
	return nil, nil
}

// responseOps applies the route's response_headers (remove, then set) to
// an answer to an upgrade, as the proxy step does to other answers. The
// handshake's own headers (Sec-WebSocket-*, Upgrade, Connection) are left
// alone: changing them would break the handshake the upstream answered.
func responseOps(h *fasthttp.ResponseHeader, rt *route) {
	for _, k := range rt.respRemove {
		if !isHandshakeName(k) {
			h.DelBytes(k)
		}
	}
	for _, kv := range rt.respSet {
		if !isHandshakeName(kv[0]) {
			h.SetBytesKV(kv[0], kv[1])
		}
	}
}

var prefixSecWebSocket = []byte("sec-websocket-")

func isHandshakeName(k []byte) bool {
	return len(k) >= len(prefixSecWebSocket) && bytes.EqualFold(k[:len(prefixSecWebSocket)], prefixSecWebSocket) ||
		isHopByHopName(k)
}

// switchingHead is the 101 the client gets: the upstream's, without its
// hop-by-hop headers but for Upgrade and Connection, plus the request id
// and Via.
func switchingHead(h *fasthttp.ResponseHeader, id []byte) []byte {
	b := append(make([]byte, 0, 256), "HTTP/1.1 101 Switching Protocols\r\n"...)
	for k, v := range h.All() {
		if isHopByHopName(k) || bytes.EqualFold(k, headerRequestID) {
			continue // sluice's own request id follows
		}
		b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
	}
	b = append(b, "Upgrade: websocket\r\nConnection: Upgrade\r\nVia: 1.1 sluice\r\nX-Request-Id: "...)
	b = append(b, id...)
	return append(b, "\r\n\r\n"...)
}
