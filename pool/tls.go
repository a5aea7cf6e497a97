package pool

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
)

// ClientTLS is how sluice speaks TLS to the https:// targets of an
// upstream. It holds file contents, not file names: the caller (edge)
// reads the files when it builds a snapshot, so a reload picks up a
// renewed client certificate or CA bundle, and the registry key (Key)
// changes with what the files hold, not with where they are.
type ClientTLS struct {
	// ServerName is checked against the target's certificate and sent as
	// SNI. Empty: the target's host (for a discovered target, its address,
	// which a certificate rarely names: set it).
	ServerName string
	// CAPEM is a PEM bundle of the CAs a target's certificate must chain
	// to. Empty: the system roots.
	CAPEM []byte
	// CertPEM and KeyPEM are the client certificate sluice presents to
	// targets that ask for one (mTLS). Empty: none.
	CertPEM, KeyPEM []byte
	// InsecureSkipVerify accepts any certificate. An explicit opt-in, for
	// tests and migrations; Build logs a warning for every target it
	// builds with it.
	InsecureSkipVerify bool
}

// Key identifies the settings for the target registry: equal keys mean
// targets that can share connections.
func (c *ClientTLS) Key() string {
	if c == nil {
		return "-"
	}
	h := sha256.New()
	for _, b := range [][]byte{[]byte(c.ServerName), c.CAPEM, c.CertPEM, c.KeyPEM} {
		h.Write(b)
		h.Write([]byte{0})
	}
	if c.InsecureSkipVerify {
		h.Write([]byte("insecure"))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Config builds the tls.Config of a HostClient. fasthttp fills in
// ServerName from the target's host when it is empty (per address).
func (c *ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// One client session cache per HostClient: reconnects to a target
		// resume their session instead of a full handshake.
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	if c == nil {
		return cfg, nil
	}
	cfg.ServerName = c.ServerName
	cfg.InsecureSkipVerify = c.InsecureSkipVerify
	if len(c.CAPEM) > 0 {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(c.CAPEM) {
			return nil, errors.New("the CA bundle holds no PEM certificate")
		}
		cfg.RootCAs = roots
	}
	if len(c.CertPEM) > 0 || len(c.KeyPEM) > 0 {
		cert, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// isTLSError reports an error of the TLS layer: the target's certificate
// failed verification (unknown authority, wrong host, expired), the
// target refused the handshake or sluice's client certificate (a TLS
// alert, which under TLS 1.3 may arrive only at the first read, after the
// request was written: the target still never processed it), or what
// came back was not TLS at all.
//
// Known gap: under TLS 1.3 a target that requires a client certificate
// sluice does not present finishes the client's handshake, then closes the
// connection; what fasthttp's header reader hands back is io.EOF before
// any byte, which Classify can't tell from a target that closed
// (KindReset). Still a 502, still a failure for health and ejection; the
// target's own log names the cause. Under TLS 1.2 it is KindTLS.
func isTLSError(err error) bool {
	var verify *tls.CertificateVerificationError
	var alert tls.AlertError
	var record tls.RecordHeaderError
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var alertErr *tlsAlertError
	if errors.As(err, &alertErr) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "remote error" || op.Op == "local error") {
		return true // crypto/tls's alerts, sent or received (conn.go)
	}
	return errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &record) ||
		errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// tlsAlertError is a TLS alert that fasthttp handed back wrapped in an
// error that does not unwrap (ErrNothingRead).
type tlsAlertError struct{ err error }

func (e *tlsAlertError) Error() string { return e.err.Error() }
func (e *tlsAlertError) Unwrap() error { return e.err }
