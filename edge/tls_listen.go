package edge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/config"
)

// TLS termination (config: listen_tls). Each TLS listener has a set of
// certificates behind an atomic pointer: tls.Config.GetCertificate reads
// it on every handshake, and a reload (SIGHUP, POST /admin/reload, a
// change of the config file or of a certificate file) builds a new set
// off the path and swaps the pointer. New handshakes get the new
// certificate; established connections are not touched, so nothing is
// dropped. A set that fails to load (a missing file, a key that is not
// the certificate's, an expired certificate) refuses the whole reload:
// the old config and the old certificates keep serving.
//
// Protocol choices: TLS 1.2 minimum (1.3 is what Go's server prefers
// when the client offers it), for 1.2 only ECDHE key exchange with AEAD
// ciphers (forward secrecy; no CBC, no RSA key exchange), ALPN http/1.1
// (fasthttp has no HTTP/2). Session tickets are on, with crypto/tls's
// automatic keys: a fresh key every 24 hours, each valid for 7 days
// (crypto/tls ticket.go), so a resumed session never outlives a week-old
// key. Several sluice instances behind one balancer share keys through
// ticket_keys_file (the same file on each, rotated by whoever writes it,
// reloaded like a certificate); without it a client resuming on another
// instance does a full handshake.

// tlsCipherSuites are the TLS 1.2 suites offered (TLS 1.3 suites are not
// configurable in Go and are all AEAD).
var tlsCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// certSet is one listener's certificates, in config order; the first is
// the default.
type certSet struct {
	certs []*tls.Certificate // Leaf set on each
	files []config.CertificateFiles
	// acmeHosts are served by acme (acme.go), which is nil without them.
	acmeHosts []string
	acme      *acmeManager
	// ticketFile holds the session ticket keys ("": crypto/tls's own).
	ticketFile string
	// conf is what handshakes use (GetConfigForClient), built with the
	// set so the client CAs reload with the certificates.
	conf *tls.Config
}

// tlsListener is one configured TLS listener.
type tlsListener struct {
	name  string
	addr  string
	certs atomic.Pointer[certSet]
	conf  *tls.Config
}

// loadCertSet reads and checks a listener's certificates.
func loadCertSet(cfg *config.Config, i int, l config.TLSListener, acme *acmeManager) (*certSet, error) {
	set := &certSet{files: l.Certificates}
	if len(l.ACMEHosts) > 0 && acme != nil {
		set.acme, set.acmeHosts = acme, l.ACMEHosts
	}
	for j, cf := range l.Certificates {
		kp, msg := config.CheckKeyPair(cfg.Resolve(cf.CertFile), cfg.Resolve(cf.KeyFile), time.Now())
		if msg != "" {
			return nil, fmt.Errorf("listen_tls[%d].certificates[%d]: %s", i, j, msg)
		}
		c := kp.Cert
		set.certs = append(set.certs, &c)
	}
	if len(set.certs) == 0 && set.acme == nil {
		if len(l.ACMEHosts) > 0 { // a reload added the acme block
			return nil, fmt.Errorf("listen_tls[%d].acme_hosts: the acme block was added after start, and ACME starts with the process: apply this config with sluice upgrade (or a restart)", i)
		}
		return nil, fmt.Errorf("listen_tls[%d]: no certificate", i)
	}
	set.conf = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsCipherSuites,
		NextProtos:   []string{"http/1.1"},
	}
	if l.TicketKeysFile != "" {
		// Explicit keys on the config a handshake uses take the place of
		// crypto/tls's own (Config.ticketKeys): every instance reading
		// the same file resumes every other's sessions.
		keys, msg := config.ReadTicketKeys(cfg.Resolve(l.TicketKeysFile))
		if msg != "" {
			return nil, fmt.Errorf("listen_tls[%d].ticket_keys_file: %s", i, msg)
		}
		set.conf.SetSessionTicketKeys(keys)
		set.ticketFile = l.TicketKeysFile
	}
	if set.acme != nil && !set.acme.issuer.DisableTLSALPNChallenge {
		// RFC 8737 section 3: the CA's validation handshake offers only
		// acme-tls/1. Other clients still get http/1.1.
		set.conf.NextProtos = append(set.conf.NextProtos, "acme-tls/1")
	}
	set.conf.GetCertificate = set.getCertificate
	if ca := l.ClientAuth; ca != nil {
		pem, msg := config.ReadCABundle(cfg.Resolve(ca.CAFile))
		if msg != "" {
			return nil, fmt.Errorf("listen_tls[%d].client_auth.ca_file: %s", i, msg)
		}
		set.conf.ClientCAs = x509.NewCertPool()
		set.conf.ClientCAs.AppendCertsFromPEM(pem)
		set.conf.ClientAuth = tls.VerifyClientCertIfGiven
		if ca.Mode == "require" {
			set.conf.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return set, nil
}

func newTLSListener(name, addr string, set *certSet) *tlsListener {
	l := &tlsListener{name: name, addr: addr}
	l.certs.Store(set)
	l.conf = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tlsCipherSuites,
		NextProtos:   []string{"http/1.1"},
		// Every handshake takes the current set's config: certificates
		// and client CAs as of the last reload.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return l.certs.Load().conf, nil },
	}
	return l
}

// getCertificate picks by SNI: the first certificate the client can use
// for the name it asked for (SupportsCertificate checks the name, exact
// or wildcard, and that the client supports the key's algorithm), else
// the first.
//
// With acme_hosts, a name listed there gets its ACME certificate (the
// PEM default while it is not obtained yet, or a failed handshake when
// there is none), and a TLS-ALPN-01 validation handshake gets its
// challenge certificate, if it names one of the manager's names (any
// other acme-tls/1 handshake fails here, with no storage read and no log
// line). No other name reaches certmagic, so no client can make sluice
// order a certificate.
func (set *certSet) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if set.acme != nil {
		if isACMETLSHello(hello) {
			if !set.acme.manages(hello.ServerName) {
				return nil, errNotACMEName
			}
			return set.acme.certificate(hello)
		}
		if name := strings.ToLower(hello.ServerName); name != "" && slices.Contains(set.acmeHosts, name) {
			c, err := set.acme.certificate(hello)
			if err == nil || len(set.certs) == 0 {
				return c, err
			}
		}
	}
	if len(set.certs) == 0 {
		return nil, fmt.Errorf("no certificate for %q", hello.ServerName)
	}
	if hello.ServerName != "" && len(set.certs) > 1 {
		for _, c := range set.certs {
			if hello.SupportsCertificate(c) == nil {
				return c, nil
			}
		}
	}
	return set.certs[0], nil
}

// openTLSListeners loads the certificates of every listen_tls entry.
func openTLSListeners(cfg *config.Config, acme *acmeManager) ([]*tlsListener, error) {
	var out []*tlsListener
	for i, lc := range cfg.ListenTLS {
		set, err := loadCertSet(cfg, i, lc, acme)
		if err != nil {
			return nil, err
		}
		name := lc.Name
		if name == "" {
			name = lc.Listen
		}
		out = append(out, newTLSListener(name, lc.Listen, set))
	}
	return out, nil
}

// loadTLSCerts reads every TLS listener's certificates for a reload,
// without installing them: all or nothing.
func (g *Gateway) loadTLSCerts(cfg *config.Config) ([]*certSet, error) {
	sets := make([]*certSet, len(g.tls))
	for k, l := range g.tls {
		for i, lc := range cfg.ListenTLS {
			if lc.Name == l.name || lc.Name == "" && lc.Listen == l.name {
				set, err := loadCertSet(cfg, i, lc, g.acme)
				if err != nil {
					return nil, err
				}
				sets[k] = set
				break
			}
		}
	}
	return sets, nil
}

// installTLSCerts swaps in what loadTLSCerts read (nil: a listener the new
// config no longer names keeps its certificates until restart).
func (g *Gateway) installTLSCerts(sets []*certSet) {
	for i, set := range sets {
		if set != nil {
			g.tls[i].certs.Store(set)
		}
	}
}

// TLSListeners names the configured TLS listeners and their addresses, in
// config order, for ServeTLS.
func (g *Gateway) TLSListeners() []string {
	out := make([]string, len(g.tls))
	for i, l := range g.tls {
		out[i] = l.addr
	}
	return out
}

// ServeTLS accepts TLS connections on ln for the i-th listen_tls listener
// until Shutdown. ln is a plain TCP listener: the TLS layer goes on top of
// the lingering one, so a lingering close works on TLS connections too
// (the close_notify is written, then the TCP side lingers).
func (g *Gateway) ServeTLS(ln net.Listener, i int) error {
	if i < 0 || i >= len(g.tls) {
		return fmt.Errorf("no TLS listener %d", i)
	}
	g.acme.startACME() // the challenges have a listener now
	err := g.server.Serve(tls.NewListener(lingerListener{ln}, g.tls[i].conf))
	if g.draining.Load() {
		return nil
	}
	return err
}

// CertificateFiles lists every certificate, key and ticket keys file the
// TLS listeners read now (after the last reload), for a watcher that
// reloads when one changes.
func (g *Gateway) CertificateFiles() []string {
	cfg := g.snap.Load().Config
	var out []string
	for _, l := range g.tls {
		set := l.certs.Load()
		for _, f := range set.files {
			out = append(out, cfg.Resolve(f.CertFile), cfg.Resolve(f.KeyFile))
		}
		if set.ticketFile != "" {
			out = append(out, cfg.Resolve(set.ticketFile))
		}
	}
	return out
}
