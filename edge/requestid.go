package edge

import (
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
)

var headerRequestID = []byte("X-Request-Id") // canonical form: set with SetCanonical

// requestIDLen is the length of a generated id: 16 hex chars of a random
// per-process prefix and 16 of a counter. Unique across instances with
// overwhelming probability, ordered within one, and made without
// allocating or reading the clock.
const requestIDLen = 32

// maxRequestIDLen is the longest client X-Request-ID kept.
const maxRequestIDLen = 128

var (
	requestIDPrefix [16]byte
	requestIDSeq    atomic.Uint64
)

func init() {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("edge: no randomness for request ids: " + err.Error())
	}
	hex.Encode(requestIDPrefix[:], b[:])
}

// newRequestID appends a fresh id to dst, built whole on the stack and
// appended once (putHex: two digits per step).
func newRequestID(dst []byte) []byte {
	var id [requestIDLen]byte
	copy(id[:16], requestIDPrefix[:])
	putHex(id[16:], requestIDSeq.Add(1))
	return append(dst, id[:]...)
}

// validRequestID accepts a client's X-Request-ID only if it is short and
// plain, so it can go into logs and JSON bodies unescaped.
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		ok := c == '-' || c == '_' || c == '.' || c == ':' ||
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

// assignRequestID keeps a sane client X-Request-ID, else makes one and
// sets it on the request, so every step, the upstream and the answer see
// the same id. The exchange keeps its own copy.
func (x *exchange) assignRequestID() {
	h := &x.ctx.Request.Header
	// Looked up only when the request has an X-Request-Id line.
	if x.mayHave(x.head.requestID) {
		if rid := h.PeekCanonical(headerRequestID); validRequestID(rid) {
			x.id = append(x.idBuf[:0], rid...)
			return
		}
	}
	x.id = newRequestID(x.idBuf[:0])
	h.SetCanonical(headerRequestID, x.id)
}
