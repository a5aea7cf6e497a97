package edge

import (
	"math/rand/v2"

	"github.com/valyala/fasthttp"
)

// W3C Trace Context (https://www.w3.org/TR/trace-context/), level 1:
//
//	traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
//
// A valid incoming traceparent keeps its trace id and flags; sluice is the
// next hop, so the parent id becomes a span id of its own, and tracestate
// passes through. An absent or invalid one starts a new trace (random
// trace id, flags 00: sluice records nothing yet), and any tracestate is
// dropped with it, as the spec requires. Built in a stack buffer: no
// allocation.
var (
	headerTraceparent = []byte("Traceparent") // canonical forms: set with SetCanonical
	headerTracestate  = []byte("Tracestate")
)

const traceparentLen = 55

// propagateTrace sets the outgoing traceparent as described above.
// hasParent and hasState: the request may carry traceparent, tracestate
// (exchange.mayHave); a header known to be absent is not looked up.
func propagateTrace(h *fasthttp.RequestHeader, hasParent, hasState bool) {
	var tp [traceparentLen]byte
	var in []byte
	if hasParent {
		in = h.PeekCanonical(headerTraceparent)
	}
	if validTraceparent(in) {
		copy(tp[:], in[:traceparentLen])
	} else {
		copy(tp[:], "00-")
		putHex(tp[3:19], nonZero())
		putHex(tp[19:35], rand.Uint64())
		tp[35] = '-'
		tp[52], tp[53], tp[54] = '-', '0', '0'
		if hasState {
			h.DelBytes(headerTracestate)
		}
	}
	putHex(tp[36:52], nonZero())
	h.SetCanonical(headerTraceparent, tp[:])
}

func nonZero() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

const hexDigits = "0123456789abcdef"

// putHex writes v as 16 lower-case hex digits into dst[:16], two digits
// per step (three ids per request).
func putHex(dst []byte, v uint64) {
	_ = dst[15]
	for i := 14; i >= 0; i -= 2 {
		dst[i], dst[i+1] = hexPairs[2*(v&0xff)], hexPairs[2*(v&0xff)+1]
		v >>= 8
	}
}

// hexPairs holds the two hex digits of every byte value, in order.
var hexPairs = func() (out [512]byte) {
	for i := range 256 {
		out[2*i], out[2*i+1] = hexDigits[i>>4], hexDigits[i&0xf]
	}
	return out
}()

// validTraceparent accepts version 00 exactly, or a later version (not ff)
// whose first 55 bytes have the 00 layout (the spec's forward
// compatibility rule). Ids must be lower-case hex and not all zeros.
func validTraceparent(b []byte) bool {
	if len(b) < traceparentLen || (len(b) > traceparentLen && b[traceparentLen] != '-') {
		return false
	}
	if !isHex(b[0:2]) || (b[0] == 'f' && b[1] == 'f') || (b[0] == '0' && b[1] == '0' && len(b) != traceparentLen) {
		return false
	}
	if b[2] != '-' || b[35] != '-' || b[52] != '-' {
		return false
	}
	return isHex(b[3:35]) && !allZero(b[3:35]) && isHex(b[36:52]) && !allZero(b[36:52]) && isHex(b[53:55])
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}
