package pool

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"
)

// ErrKind says what went wrong in an upstream exchange, in the terms the
// retry policy and the error answers use.
// The metrics label these kinds by their String, in this order
// (edge/observe's ErrorKinds; edge/errkinds_test.go keeps the two in step).
type ErrKind uint8

const (
	// KindConnect: the request never reached the target (dial refused or
	// timed out). Safe to retry for any method.
	KindConnect ErrKind = iota + 1
	// KindBusy: every connection to the target was busy past max_conn_wait.
	// Also never sent.
	KindBusy
	// KindTimeout: the target did not answer in time.
	KindTimeout
	// KindReset: the connection broke during the exchange.
	KindReset
	// KindProtocol: the answer was not valid HTTP.
	KindProtocol
	// KindTLS: the TLS handshake with the target failed: its certificate
	// did not verify (unknown authority, wrong host, expired), it refused
	// sluice's client certificate or asked for one sluice has not, or it
	// does not speak TLS. The target never processed the request, so for
	// retries (retry.on: connect), health and ejection it counts as a
	// connect failure; logs and metrics name it apart, since the fix is a
	// certificate, not a restart.
	KindTLS
)

// Classify names the kind of an error from HostClient.Do.
func Classify(err error) ErrKind {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case isTLSError(err):
		return KindTLS
	case errors.Is(err, fasthttp.ErrTLSHandshakeTimeout):
		return KindConnect
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return KindBusy
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return KindConnect
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return KindConnect
	case errors.Is(err, fasthttp.ErrTimeout), errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case errors.As(err, &small), errors.Is(err, ErrSwitchingProtocols), errors.Is(err, ErrInvalidChunked):
		return KindProtocol
	case errors.Is(err, ErrUpstreamClosed), errors.Is(err, fasthttp.ErrConnectionClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.As(err, &opErr):
		return KindReset
	}
	return KindProtocol
}

// NeverSent reports kinds where the target can't have seen the request.
func (k ErrKind) NeverSent() bool { return k == KindConnect || k == KindBusy || k == KindTLS }

// String is the kind's name as used in retry.on.
func (k ErrKind) String() string {
	switch k {
	case KindConnect:
		return "connect"
	case KindBusy:
		return "busy"
	case KindTimeout:
		return "timeout"
	case KindReset:
		return "reset"
	case KindProtocol:
		return "protocol"
	case KindTLS:
		return "tls"
	}
	return "none"
}
