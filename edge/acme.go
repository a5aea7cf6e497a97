package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/rueidis"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
)

// Automatic certificates (config: acme, listen_tls[].acme_hosts) through
// certmagic. certmagic rather than golang.org/x/crypto/acme: x/crypto/acme
// is the protocol only (and its autocert has no cluster locking, no
// storage interface beyond a cache of files, no OCSP stapling, and renews
// only on a handshake), while certmagic does what an edge needs around
// the protocol: renewal ahead of expiry in the background (a third of the
// lifetime left, or when the CA's ARI says so), OCSP stapling when the CA
// still runs OCSP, retries with backoff, a Storage interface with locks so
// that several instances order a certificate once and share it, and
// challenge answers shared through that storage (any instance answers a
// challenge another one started). It is Caddy's, kept up with the CAs.
//
// What sluice does itself: it answers the challenges on its own
// listeners (HTTP-01 before routing in Gateway.serve, TLS-ALPN-01 in the
// TLS listener's GetCertificate), it asks certmagic only for the names a
// listener lists (no on-demand issuance: a client naming anything else
// can't make sluice order a certificate), and it keeps the Redis storage
// (acme_redis.go).

// acmeChallengePath is where HTTP-01 challenges are fetched (RFC 8555
// section 8.3).
const acmeChallengePath = "/.well-known/acme-challenge/"

// faultUnknownChallenge answers a challenge path no order is waiting on.
var faultUnknownChallenge = &fault{fasthttp.StatusNotFound, "unknown ACME challenge"}

// acmeManager is the gateway's certmagic config and what it manages.
type acmeManager struct {
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	cache  *certmagic.Cache
	http01 bool
	log    *slog.Logger

	// redis is the storage when it is Redis: stop waits for its locks
	// to be released before the client closes.
	redis *redisStorage

	ctx      context.Context
	cancel   context.CancelFunc
	start    sync.Once
	stopOnce sync.Once
	obtains  sync.WaitGroup // manageOne goroutines, which end with ctx
	mu       sync.Mutex
	hosts    []string // every listener's acme_hosts, managed once started
	active   bool     // start ran: new hosts are managed at once
	stopped  bool     // stop ran: nothing more is started
	// names is hosts for readers off the lock (handshakes, challenge
	// requests): a copy swapped whole when a reload adds a name.
	names atomic.Pointer[[]string]
}

// openACME builds the certmagic config for cfg's acme block (nil when
// there is none). Nothing is ordered until startACME.
func openACME(cfg *config.Config, redis rueidis.Client, log *slog.Logger) (*acmeManager, error) {
	a := cfg.ACME
	if a == nil {
		return nil, nil
	}
	var storage certmagic.Storage
	var rs *redisStorage
	switch a.Storage.Type {
	case "redis":
		rs = newRedisStorage(redis, a.Storage.Prefix, log.With("component", "acme"))
		storage = rs
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		checkRedisForACME(ctx, redis, rs.log)
		cancel()
	default:
		storage = &certmagic.FileStorage{Path: cfg.Resolve(a.Storage.Dir)}
	}
	var roots *x509.CertPool
	if a.CARootFile != "" {
		pem, msg := config.ReadCABundle(cfg.Resolve(a.CARootFile))
		if msg != "" {
			return nil, fmt.Errorf("acme.ca_root_file: %s", msg)
		}
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
	}
	zl := zap.New(slogCore{log: log.With("component", "acme")})
	m := &acmeManager{log: log, http01: slices.Contains(a.Challenges, "http-01"), redis: rs}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: a.RenewCheck.D(),
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{Storage: storage, Logger: zl})
	// certmagic binds the challenge ports itself unless they are taken:
	// they are sluice's own listeners (found in use, so certmagic leaves
	// the answering to them).
	host, httpPort := splitListen(cfg.Listen)
	_, tlsPort := splitListen(firstACMEListener(cfg))
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:                      a.CA,
		TestCA:                  a.CA, // never fall back to another CA
		Email:                   a.Email,
		Agreed:                  a.AgreeTerms,
		DisableHTTPChallenge:    !m.http01,
		DisableTLSALPNChallenge: !slices.Contains(a.Challenges, "tls-alpn-01"),
		ListenHost:              host,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		TrustedRoots:            roots,
		Logger:                  zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	m.hosts = acmeHostsOf(cfg)
	names := slices.Clone(m.hosts)
	m.names.Store(&names)
	return m, nil
}

// splitListen returns a listen address's host and port (0 when unknown).
func splitListen(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// firstACMEListener is the address of the first TLS listener with
// acme_hosts: where TLS-ALPN-01 is answered.
func firstACMEListener(cfg *config.Config) string {
	for _, l := range cfg.ListenTLS {
		if len(l.ACMEHosts) > 0 {
			return l.Listen
		}
	}
	return ""
}

func acmeHostsOf(cfg *config.Config) []string {
	var out []string
	for _, l := range cfg.ListenTLS {
		for _, h := range l.ACMEHosts {
			if !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// startACME begins obtaining and renewing: once, when the first listener
// serves (a challenge must find a listener accepting).
func (m *acmeManager) startACME() {
	if m == nil {
		return
	}
	m.start.Do(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.active = true
		m.manage(m.hosts)
	})
}

// manage hands names to certmagic: each is loaded from storage or
// ordered, in the background, and renewed from then on. Called with mu
// held.
func (m *acmeManager) manage(hosts []string) {
	if len(hosts) == 0 || m.stopped {
		return
	}
	for _, h := range hosts {
		m.obtains.Add(1)
		go m.manageOne(h)
	}
	m.log.Info("acme: managing certificates", "hosts", hosts)
}

// manageOne gets host a certificate and hands it to certmagic's
// maintenance. Not certmagic's ManageAsync: its goroutines and jobs can't
// be waited for, so they would still hold a storage lock (and use the
// Redis client) after Shutdown returned. ObtainCertAsync is the same
// order (nothing when the storage has the certificate, else under the
// storage lock, retried with backoff) in a goroutine stop waits for, and
// ends when m.ctx does.
func (m *acmeManager) manageOne(host string) {
	defer m.obtains.Done()
	err := m.magic.ObtainCertAsync(m.ctx, host)
	if err == nil {
		err = m.magic.ManageSync(m.ctx, []string{host})
	}
	if err != nil && m.ctx.Err() == nil {
		m.log.Error("acme: managing a certificate failed", "host", host, "error", err.Error())
	}
}

// reloaded manages the names a new config adds. A name no listener lists
// any more is no longer served (the listener's certSet decides) and is
// renewed until restart.
func (m *acmeManager) reloaded(cfg *config.Config) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var added []string
	for _, h := range acmeHostsOf(cfg) {
		if !slices.Contains(m.hosts, h) {
			m.hosts = append(m.hosts, h)
			added = append(added, h)
		}
	}
	names := slices.Clone(m.hosts)
	m.names.Store(&names)
	if m.active {
		m.manage(added)
	}
}

// stop ends ordering and renewing, and waits (until ctx ends) for what
// is under way to let go: the orders in progress, certmagic's maintenance
// loop (whose renewals end with it), and the Redis locks they hold, so
// that the Redis client is closed after the last unlock and the next
// process (after sluice upgrade) does not wait for a lock to expire. Safe
// to call more than once (a second Shutdown): certmagic's Cache.Stop
// closes a channel.
func (m *acmeManager) stop(ctx context.Context) {
	if m == nil {
		return
	}
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
		m.cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.obtains.Wait()
			m.cache.Stop() // waits for a renewal check under way
			if m.redis != nil {
				m.redis.waitUnlocked(ctx) // renewal jobs ending
			}
		}()
		select {
		case <-done:
		case <-ctx.Done():
			m.log.Warn("acme: still stopping at the shutdown timeout; a storage lock it holds expires by itself")
		}
	})
}

// certificate serves an ACME certificate: the TLS-ALPN-01 challenge
// certificate for the CA's validation handshake (RFC 8737 section 3: ALPN
// acme-tls/1 alone, with the SNI being validated), else the certificate
// certmagic holds for the name.
func (m *acmeManager) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.magic.GetCertificate(hello)
}

// notAfter is when the certificate certmagic serves for host expires
// (the latest, if a renewal is cached beside the old one); false while
// there is none.
func (m *acmeManager) notAfter(host string) (time.Time, bool) {
	var na time.Time
	for _, c := range m.cache.AllMatchingCertificates(host) {
		if c.Leaf != nil && c.Leaf.NotAfter.After(na) {
			na = c.Leaf.NotAfter
		}
	}
	return na, !na.IsZero()
}

// isACMETLSHello reports a TLS-ALPN-01 validation handshake.
func isACMETLSHello(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == "acme-tls/1"
}

// manages reports whether host (any case, no port) is one of the names
// this instance orders: the only names whose challenges it answers. A
// challenge for any other name is nobody's here, and asking certmagic
// would cost a storage read and an error log line per request or
// handshake, at the client's will.
func (m *acmeManager) manages(host string) bool {
	for _, h := range *m.names.Load() {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// errNotACMEName fails a TLS-ALPN-01 handshake for a name not managed.
var errNotACMEName = errors.New("acme-tls/1 handshake for a name this gateway does not manage")

// serveACMEChallenge answers GET /.well-known/acme-challenge/TOKEN on the
// plain listener with the key authorization certmagic (of this instance,
// or of another sharing the storage) prepared for it. It reports whether
// it answered: an unknown token for a name this gateway manages is a 404;
// the path for any other name is routed like any other request (an
// upstream may answer its own challenges), and costs no storage read.
// Called before the HTTPS redirect: the CA fetches over plain HTTP (RFC
// 8555 section 8.3).
func (g *Gateway) serveACMEChallenge(x *exchange) bool {
	m := g.acme
	if m == nil || !m.http01 || x.ctx.IsTLS() || !x.ctx.IsGet() || !strings.HasPrefix(string(x.path), acmeChallengePath) {
		return false
	}
	host := string(x.ctx.Host())
	if !m.manages(hostOnly(host)) {
		return false
	}
	w := &challengeResponse{ctx: x.ctx, header: http.Header{}}
	r := (&http.Request{
		Method:     http.MethodGet,
		Host:       host,
		URL:        &url.URL{Path: string(x.path)},
		RequestURI: string(x.ctx.RequestURI()),
		RemoteAddr: x.ctx.RemoteAddr().String(),
		Header:     http.Header{"User-Agent": {string(x.ctx.UserAgent())}},
	}).WithContext(x.ctx)
	if !m.issuer.HandleHTTPChallenge(w, r) {
		x.fail(faultUnknownChallenge)
	}
	return true
}

// hostOnly is a Host header without its port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// challengeResponse is the http.ResponseWriter certmagic writes a key
// authorization to. It writes to the fasthttp response directly
// (fasthttpadaptor would run certmagic in a goroutine of its own).
type challengeResponse struct {
	ctx    *fasthttp.RequestCtx
	header http.Header
	wrote  bool
}

func (w *challengeResponse) Header() http.Header { return w.header }

func (w *challengeResponse) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	for k, vs := range w.header {
		for _, v := range vs {
			w.ctx.Response.Header.Add(k, v)
		}
	}
	w.ctx.SetStatusCode(code)
}

func (w *challengeResponse) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.ctx.Write(b)
}
