package edge

import (
	"crypto/sha256"
	"encoding/hex"
)

// mtlsAuth admits requests that came over a TLS listener with a client
// certificate the listener verified (listen_tls[].client_auth: the chain
// was checked against its ca_file during the handshake), and tells the
// upstream who it is: the certificate's subject and its SHA-256
// fingerprint, in the auth.mtls headers (removed from every request
// first, so only sluice sets them). Anything else gets 401: a plain
// listener, or a TLS one where the client sent no certificate.
//
// The subject is formatted per request (pkix.Name.String allocates); the
// rest of the step does not allocate.
type mtlsAuth struct{ *authSettings }

var _ step = (*mtlsAuth)(nil)

func (st *mtlsAuth) serve(x *exchange) {
	cs := x.ctx.TLSConnectionState()
	if cs == nil || len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		st.refuse(x, faultNoCredentials, wwwAuthMTLS)
		return
	}
	cert := cs.PeerCertificates[0]
	sum := sha256.Sum256(cert.Raw)
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	h := &x.ctx.Request.Header
	h.SetBytesKV(st.mtlsSHA256, hexSum[:])
	h.SetBytesK(st.mtlsSubject, cert.Subject.String())
	x.mtls = true // credentials, to the cache step
	x.next()
}

// wwwAuthMTLS: RFC 9110 11.6.1 wants a challenge with a 401; there is no
// registered scheme for client certificates, so sluice names its own.
var wwwAuthMTLS = []byte(`Mutual realm="sluice", error="client_certificate_required"`)
