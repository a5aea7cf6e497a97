package edge

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// Fault is a data-plane failure: what the client is told (Status, Msg)
// and where it came from. Every failure path answers through writeFault,
// so all errors look alike: a status, a short JSON body and the request id.
type Fault struct {
	Status int
	Msg    string // a fixed phrase, never client or upstream data
	Source Source
}

// Source says whose fault a failure is; later, circuit breakers and
// outlier detection count only upstream faults.
type Source uint8

const (
	FromClient Source = iota
	FromUpstream
	FromGateway
)

// The faults sluice answers with. Messages are constants: they go into the
// JSON body unescaped.
var (
	faultNoRoute         = &Fault{fasthttp.StatusNotFound, "no route", FromClient}
	faultMethod          = &Fault{fasthttp.StatusMethodNotAllowed, "method not allowed", FromClient}
	faultBadRequest      = &Fault{fasthttp.StatusBadRequest, "bad request", FromClient}
	faultBadPath         = &Fault{fasthttp.StatusBadRequest, "bad request path", FromClient}
	faultDotSegments     = &Fault{fasthttp.StatusBadRequest, "path contains dot segments", FromClient}
	faultAmbiguousLength = &Fault{fasthttp.StatusBadRequest, "both content-length and transfer-encoding", FromClient}
	faultBodyTooLarge    = &Fault{fasthttp.StatusRequestEntityTooLarge, "request body too large", FromClient}
	faultHeaderTooLarge  = &Fault{fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large", FromClient}
	faultClientBody      = &Fault{fasthttp.StatusBadRequest, "could not read request body", FromClient}
	faultTimeout         = &Fault{fasthttp.StatusGatewayTimeout, "upstream timed out", FromUpstream}
	faultConnect         = &Fault{fasthttp.StatusBadGateway, "upstream connection failed", FromUpstream}
	faultBadResponse     = &Fault{fasthttp.StatusBadGateway, "bad response from upstream", FromUpstream}
	faultUpstreamBusy    = &Fault{fasthttp.StatusServiceUnavailable, "upstream connection limit reached", FromGateway}
	faultNoTarget        = &Fault{fasthttp.StatusServiceUnavailable, "no upstream target available", FromGateway}
	faultCircuitOpen     = &Fault{fasthttp.StatusServiceUnavailable, "upstream circuit open", FromGateway}
)

// writeFault answers the client with f. It discards whatever response was
// being built (including a streamed upstream body, whose connection is then
// closed by the stream).
func writeFault(ctx *fasthttp.RequestCtx, f *Fault, requestID []byte) {
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(f.Status)
	ctx.Response.Header.SetContentType("application/json")
	if len(requestID) > 0 {
		ctx.Response.Header.SetBytesKV(headerRequestID, requestID)
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	r := &ctx.Response
	r.AppendBody(jsonErrorPrefix)
	r.AppendBodyString(f.Msg) // a constant phrase: nothing to escape
	r.AppendBody(jsonRequestIDKey)
	r.AppendBody(requestID) // validated or generated: only [A-Za-z0-9._:-]
	r.AppendBody(jsonClose)
}

var (
	jsonErrorPrefix  = []byte(`{"error":"`)
	jsonRequestIDKey = []byte(`","request_id":"`)
	jsonClose        = []byte("\"}\n")
)

// faultFor maps a failed upstream exchange to the fault the client sees.
func faultFor(kind pool.ErrKind, err error) *Fault {
	switch kind {
	case pool.KindBusy:
		return faultUpstreamBusy
	case pool.KindTimeout:
		return faultTimeout
	case pool.KindConnect:
		if errors.Is(err, fasthttp.ErrDialTimeout) {
			return faultTimeout
		}
		return faultConnect
	case pool.KindReset:
		return faultConnect
	}
	return faultBadResponse
}

// serverErrorHandler answers errors fasthttp hits before the handler runs
// (unparseable request, oversized headers or body), in sluice's format.
func serverErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	var id [requestIDLen]byte
	rid := newRequestID(id[:0])
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		writeFault(ctx, faultHeaderTooLarge, rid)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeFault(ctx, faultBodyTooLarge, rid)
	default:
		writeFault(ctx, faultBadRequest, rid)
	}
	ctx.SetConnectionClose()
}

// Lingering close bounds: how long, and how much, sluice keeps reading an
// unwanted request body after answering early (nginx's lingering_close).
const (
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 64 << 20
)

// lingerClose ends a connection whose request body was not read (an early
// 413, a refused framing). Closing at once, with the client's bytes unread,
// makes the kernel send a TCP reset that can destroy the answer before the
// client reads it; instead the answer is written with "Connection: close",
// then what the client still sends is read and dropped for a bounded time,
// then the connection closes (nginx's lingering close).
//
// fasthttp's serve loop closes a connection marked "close" before it runs a
// hijack handler, so the answer can't go through fasthttp: a copy marked
// "close" is serialised here and written from the hijack handler, and
// fasthttp's own write is suppressed. This is an error path; it allocates.
func lingerClose(ctx *fasthttp.RequestCtx) {
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	resp.SetConnectionClose()
	raw := resp.String()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		_ = c.SetWriteDeadline(time.Now().Add(lingerTimeout))
		if _, err := io.WriteString(c, raw); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, lingerMaxBytes))
	})
}
