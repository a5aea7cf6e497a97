package pool

import "github.com/valyala/fasthttp"

// Idempotent reports whether sending req twice has the effect of sending it
// once, so a failed try may be repeated: a method RFC 9110 section 9.2.2
// defines as idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), or a
// request the client marked safe to repeat with an Idempotency-Key (the
// IETF httpapi draft). It says nothing about whether the body can still be
// sent again; a consumed stream can't.
func Idempotent(req *fasthttp.Request) bool {
	h := &req.Header
	return h.IsGet() || h.IsHead() || h.IsOptions() || h.IsPut() || h.IsDelete() || h.IsTrace() ||
		len(h.Peek("Idempotency-Key")) > 0
}
