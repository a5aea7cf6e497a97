// Package edge is sluice's request path: the fasthttp server, the
// per-config Snapshot (routes, compiled handler chains, upstream pools),
// the proxy step, reloads and the admin listener's hooks.
//
// Invariants:
//   - A request loads the current *Snapshot once, from an atomic pointer,
//     and uses only that snapshot. Nothing on the request path takes a lock
//     that a reload holds.
//   - A reload builds and validates a whole new snapshot off the request
//     path; a bad config is refused and the old snapshot keeps serving.
//   - Every failure answers through writeFault: a status, a short JSON body
//     and the request id.
//   - Everything read from a RequestCtx is valid only until the handler
//     returns; anything kept longer is copied.
//
// edge may import pool, lb and limiter; they never import edge. The
// sub-packages (config, admin) never import edge.
package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/observe"
	"github.com/sluicegw/sluice/limiter"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// Gateway serves the data plane from the current snapshot.
type Gateway struct {
	snap     atomic.Pointer[Snapshot]
	registry *pool.Registry
	server   *fasthttp.Server
	log      *slog.Logger

	// startup is the config the server was started with; settings that
	// only take effect at start (listen, server timeouts) are compared
	// against it on reload.
	startup  *config.Config
	started  time.Time
	draining atomic.Bool

	reloadMu  sync.Mutex            // serialises building snapshots; never taken by requests
	disc      discovery             // under reloadMu
	jwks      map[string]*auth.JWKS // under reloadMu
	keys      auth.KeyStore
	redis     rueidis.Client // nil without a redis block
	limiter   *limiter.Limiter
	strict    *limiter.Strict  // nil without redis
	cluster   *limiter.Cluster // nil without redis
	quotas    limiter.Quotas
	localQ    *limiter.LocalQuotas
	stopEvict context.CancelFunc
	reloads   atomic.Uint64
	lastError atomic.Pointer[string]

	metrics   *observe.Metrics
	accessLog *observe.AccessLog // nil: off
	tracer    *tracer            // nil: no span export
}

// New builds the first snapshot from cfg (validated by config.Load).
// version is the build's, as sluice_build_info and traces report it (""
// reports "dev").
func New(cfg *config.Config, log *slog.Logger, version string) (_ *Gateway, err error) {
	if log == nil {
		log = slog.Default()
	}
	if version == "" {
		version = "dev"
	}
	g := &Gateway{registry: pool.NewRegistry(log), log: log, startup: cfg, started: time.Now()}
	g.disc = discovery{watchers: map[string]*watch{}, targets: map[string][]pool.TargetSpec{}}
	g.jwks = map[string]*auth.JWKS{}
	// Whatever was opened before a failure is closed again.
	defer func() {
		if err != nil {
			g.stopDiscovery()
			g.closeObservers()
			g.closeRedis()
		}
	}()
	g.metrics = observe.New(version, g.started, g.metricsState)
	if a := cfg.AccessLog; a.Enabled {
		out := a.Output
		if out != "stdout" {
			out = cfg.Resolve(out)
		}
		if g.accessLog, err = observe.OpenAccessLog(out, *a.Sample, a.Buffer, g.metrics); err != nil {
			return nil, err
		}
	}
	if cfg.Tracing.OTLPEndpoint != "" {
		if g.tracer, err = newTracer(cfg.Tracing, version, log); err != nil {
			return nil, err
		}
	}
	if cfg.Redis != nil {
		if g.redis, err = newRedisClient(cfg.Redis); err != nil {
			return nil, err
		}
	}
	g.limiter = limiter.New()
	if g.redis != nil {
		g.strict = &limiter.Strict{Client: g.redis, Local: g.limiter, Timeout: cfg.Redis.Timeout.D(),
			Instances: cfg.Limits.Instances, Log: g.log}
		g.cluster = &limiter.Cluster{Client: g.redis, Local: g.limiter, Timeout: cfg.Redis.Timeout.D(),
			Instances: cfg.Limits.Instances, Log: g.log}
	}
	if err = g.openQuotas(cfg); err != nil {
		return nil, err
	}
	if g.keys, err = g.openKeyStore(cfg); err != nil {
		return nil, err
	}
	if err = g.syncDiscovery(cfg); err != nil {
		return nil, err
	}
	snap, err := build(cfg, g.env())
	if err != nil {
		return nil, err
	}
	g.snap.Store(snap)
	g.metrics.Retain(snap.names())
	evictCtx, stopEvict := context.WithCancel(context.Background())
	g.stopEvict = stopEvict
	go g.evictIdleBuckets(evictCtx)
	s := cfg.Server
	g.server = &fasthttp.Server{
		Handler:         g.ServeHTTP,
		ErrorHandler:    serverErrorHandler,
		ReadTimeout:     s.ReadTimeout.D(),
		WriteTimeout:    s.WriteTimeout.D(),
		IdleTimeout:     s.IdleTimeout.D(),
		Concurrency:     s.MaxConnections,
		ReadBufferSize:  int(s.MaxHeaderBytes),
		WriteBufferSize: 16 << 10,
		// Bodies up to this are read before the handler runs; larger ones
		// (and chunked ones) stream, with sluice's own limit on the stream.
		MaxRequestBodySize:           int(min(s.BufferBodyBytes, s.MaxBodyBytes)),
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		DisableKeepalive:             false,
		CloseOnShutdown:              true,
		// An idle keep-alive connection gives its read and write buffers
		// back to the pool (32 KiB each with the defaults): with 1000 idle
		// connections, peak RSS 42 MiB instead of 48 (bench/README.md), and
		// no measurable throughput cost.
		ReduceMemoryUsage:     true,
		SecureErrorLogMessage: true,
		Logger:                fasthttpLogger{log},
	}
	return g, nil
}

// Snapshot returns the snapshot now serving.
func (g *Gateway) Snapshot() *Snapshot { return g.snap.Load() }

// Apply builds a snapshot from cfg and swaps it in. On error the current
// snapshot keeps serving.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if err := g.syncDiscovery(cfg); err != nil {
		return g.refuse(err)
	}
	snap, err := build(cfg, g.env())
	if err != nil {
		g.registry.Retain(g.snap.Load().Targets())
		return g.refuse(err)
	}
	g.metrics.Retain(snap.names())
	for _, w := range restartOnly(g.startup, cfg) {
		g.log.Warn("config change needs a restart to take effect", "field", w)
	}
	old := g.snap.Swap(snap)
	dropped := g.registry.Retain(snap.Targets())
	g.reloads.Add(1)
	g.metrics.Reloaded(true)
	g.lastError.Store(nil)
	g.log.Info("config applied", "source", cfg.Source, "routes", len(snap.Routes),
		"upstreams", len(snap.Upstreams), "targets_dropped", dropped, "previous_routes", len(old.Routes))
	return nil
}

// ReloadFrom loads a config with load and applies it.
func (g *Gateway) ReloadFrom(load func() (*config.Config, error)) error {
	cfg, err := load()
	if err != nil {
		return g.refuse(err)
	}
	return g.Apply(cfg)
}

func (g *Gateway) refuse(err error) error {
	g.metrics.Reloaded(false)
	msg := err.Error()
	g.lastError.Store(&msg)
	g.log.Error("config refused; the previous config keeps serving", "error", msg)
	return err
}

// LastReloadError is the error of the last refused reload, or "".
func (g *Gateway) LastReloadError() string {
	if p := g.lastError.Load(); p != nil {
		return *p
	}
	return ""
}

// restartOnly names fields whose change a reload can't apply.
func restartOnly(a, b *config.Config) []string {
	var out []string
	if a.Listen != b.Listen {
		out = append(out, "listen")
	}
	if a.Admin.Listen != b.Admin.Listen {
		out = append(out, "admin.listen")
	}
	if a.Admin.AuthOn() != b.Admin.AuthOn() || a.Admin.Username != b.Admin.Username ||
		a.Admin.Password != b.Admin.Password || a.Admin.Token != b.Admin.Token {
		out = append(out, "admin credentials")
	}
	// Only the settings the fasthttp server reads at start; the rest of
	// server (max_body_bytes, trusted_proxies, services_health) reloads.
	as, bs := a.Server, b.Server
	if as.ReadTimeout != bs.ReadTimeout || as.WriteTimeout != bs.WriteTimeout || as.IdleTimeout != bs.IdleTimeout ||
		as.MaxHeaderBytes != bs.MaxHeaderBytes || as.BufferBodyBytes != bs.BufferBodyBytes ||
		as.MaxConnections != bs.MaxConnections || as.ShutdownTimeout != bs.ShutdownTimeout {
		out = append(out, "server (timeouts, max_header_bytes, buffer_body_bytes, max_connections)")
	}
	// Opened or built once, in New.
	if !sameRedis(a.Redis, b.Redis) {
		out = append(out, "redis")
	}
	if a.Auth.APIKeys.Store != b.Auth.APIKeys.Store || a.Resolve(a.Auth.APIKeys.File) != b.Resolve(b.Auth.APIKeys.File) {
		out = append(out, "auth.api_keys (store, file)")
	}
	if a.Resolve(a.Limits.QuotaFile) != b.Resolve(b.Limits.QuotaFile) || a.Limits.Instances != b.Limits.Instances {
		out = append(out, "limits (quota_file, instances)")
	}
	if ac, bc := consulConn(a.Consul), consulConn(b.Consul); ac != bc {
		out = append(out, "consul (address, token, datacenter)")
	}
	if al, bl := a.AccessLog, b.AccessLog; al.Enabled != bl.Enabled || al.Output != bl.Output || *al.Sample != *bl.Sample || al.Buffer != bl.Buffer {
		out = append(out, "access_log")
	}
	if a.Tracing.OTLPEndpoint != b.Tracing.OTLPEndpoint || *a.Tracing.Sample != *b.Tracing.Sample || a.Tracing.ServiceName != b.Tracing.ServiceName {
		out = append(out, "tracing")
	}
	return out
}

// Serve accepts data-plane connections on ln until Shutdown.
func (g *Gateway) Serve(ln net.Listener) error {
	err := g.server.Serve(ln)
	if g.draining.Load() {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets in-flight requests finish until ctx is
// done, closes idle keep-alive connections and returns.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.draining.Store(true)
	g.stopDiscovery()
	g.stopEvict()
	defer g.localQ.Close() // saves the local quota counts
	defer g.closeRedis()
	defer g.closeObservers() // after the server: the last requests are logged
	err := g.server.ShutdownWithContext(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: in-flight requests still running after the shutdown timeout: %w", err)
	}
	return err
}

// Ready is true once a config is loaded and until draining starts.
func (g *Gateway) Ready() bool { return g.snap.Load() != nil && !g.draining.Load() }

// Draining is true after Shutdown began.
func (g *Gateway) Draining() bool { return g.draining.Load() }

// Started is when the gateway was created.
func (g *Gateway) Started() time.Time { return g.started }

// Reloads counts applied configs after the first.
func (g *Gateway) Reloads() uint64 { return g.reloads.Load() }

// OpenConnections is the number of client connections open now.
func (g *Gateway) OpenConnections() int32 { return g.server.GetOpenConnectionsCount() }

// ServeHTTP is the data-plane entry point: it routes and answers the
// request, then records it (metrics, access log, span).
func (g *Gateway) ServeHTTP(ctx *fasthttp.RequestCtx) {
	s := g.snap.Load()
	start := requestTime(ctx)
	g.metrics.Begin()
	var rec *requestRecord
	if g.accessLog != nil || g.tracer != nil {
		rec = acquireRecord(ctx)
	}
	rt := g.serve(ctx, s, rec)
	g.metrics.End()
	g.finish(ctx, s, rt, rec, start)
}

// serve answers the request and returns the route that matched (nil when
// none did).
func (g *Gateway) serve(ctx *fasthttp.RequestCtx, s *Snapshot, rec *requestRecord) *Route {
	h := &ctx.Request.Header

	// Request id: keep a sane client one, else make one. Set on the request
	// now so every step and the upstream see the same id.
	var idBuf [requestIDLen]byte
	rid := h.PeekBytes(headerRequestID)
	if !validRequestID(rid) {
		rid = newRequestID(idBuf[:0])
		h.SetCanonical(headerRequestID, rid)
		rid = h.PeekBytes(headerRequestID)
	}

	// RFC 9112 6.3: a message with both Transfer-Encoding and
	// Content-Length is a smuggling attempt or a broken client; refuse it
	// rather than guess which framing the upstream will believe.
	if h.ContentLength() == -1 && hasHeaderLine(h.RawHeaders(), "content-length") {
		writeFault(ctx, faultAmbiguousLength, rid)
		lingerClose(ctx)
		return nil
	}

	path, _ := splitURI(h.RequestURI())
	if len(path) == 0 || path[0] != '/' {
		writeFault(ctx, faultBadPath, rid)
		return nil
	}
	if hasDotSegment(path) {
		writeFault(ctx, faultDotSegments, rid)
		return nil
	}
	if s.servicesHealth && string(path) == "/services/health" && h.IsGet() {
		g.servicesHealth(ctx)
		return nil
	}
	if s.metricsPath != "" && string(path) == s.metricsPath && h.IsGet() {
		g.serveMetrics(ctx)
		return nil
	}
	var hostBuf [256]byte
	host := normalizeHost(hostBuf[:0], h.Host())
	rt, pathMatched := s.router.match(host, path, h.Method())
	if rt == nil {
		if pathMatched != nil {
			writeFault(ctx, faultMethod, rid)
			ctx.Response.Header.SetBytesV("Allow", allowHeader(pathMatched))
			return nil
		}
		writeFault(ctx, faultNoRoute, rid)
		return nil
	}
	for _, k := range s.identityHeaders {
		h.DelBytes(k)
	}
	if rec != nil {
		g.startSpan(ctx, rt, rec)
	}
	rt.handler(ctx)
	return rt
}

// splitURI returns the path and query of a request target in origin form
// ("/a?b") or absolute form ("http://h/a?b"); the path is empty for
// anything else ("*", authority form).
func splitURI(uri []byte) (path, query []byte) {
	if len(uri) > 0 && uri[0] != '/' {
		i := bytes.Index(uri, []byte("://"))
		if i < 0 {
			return nil, nil
		}
		rest := uri[i+3:]
		j := bytes.IndexByte(rest, '/')
		if j < 0 {
			return []byte("/"), nil
		}
		uri = rest[j:]
	}
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		return uri[:i], uri[i+1:]
	}
	return uri, nil
}

// hasDotSegment reports a "." or ".." path segment, literal or
// percent-encoded (%2e). They are refused rather than resolved: resolving
// would change the path the upstream sees, and passing them on lets a path
// that matched one route reach another route's resources upstream.
func hasDotSegment(path []byte) bool {
	for len(path) > 0 {
		path = path[1:] // skip '/'
		end := bytes.IndexByte(path, '/')
		if end < 0 {
			end = len(path)
		}
		seg := path[:end]
		path = path[end:]
		dots := 0
		for i := 0; i < len(seg); {
			switch {
			case seg[i] == '.':
				dots++
				i++
			case i+2 < len(seg) && seg[i] == '%' && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
				dots++
				i += 3
			default:
				dots = 99
				i = len(seg)
			}
		}
		if dots == 1 || dots == 2 {
			return true
		}
	}
	return false
}

// hasHeaderLine reports whether raw request headers contain a header named
// name, case-insensitively.
func hasHeaderLine(raw []byte, name string) bool {
	for n := range headerNames(raw) {
		if bytes.EqualFold(n, []byte(name)) {
			return true
		}
	}
	return false
}

// headerNames yields the name of each line of a raw header block (the
// bytes before the colon, trailing blanks trimmed).
func headerNames(raw []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(raw) > 0 {
			line := raw
			if i := bytes.IndexByte(raw, '\n'); i >= 0 {
				line, raw = raw[:i], raw[i+1:]
			} else {
				raw = nil
			}
			if i := bytes.IndexByte(line, ':'); i > 0 && !yield(bytes.TrimRight(line[:i], " \t")) {
				return
			}
		}
	}
}

func allowHeader(routes []*Route) []byte {
	if len(routes) == 1 {
		return routes[0].allowHdr
	}
	seen := map[string]bool{}
	var out []byte
	for _, rt := range routes {
		for _, m := range bytes.Split(rt.allowHdr, []byte(", ")) {
			if len(m) == 0 || seen[string(m)] {
				continue
			}
			seen[string(m)] = true
			if len(out) > 0 {
				out = append(out, ", "...)
			}
			out = append(out, m...)
		}
	}
	return out
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn("fasthttp", "message", fmt.Sprintf(format, args...))
}

// env is what builds borrow from the gateway. Called with reloadMu held.
func (g *Gateway) env() buildEnv {
	return buildEnv{metrics: g.metrics, recording: g.accessLog != nil || g.tracer != nil, reg: g.registry, log: g.log, discovered: g.disc.targets, jwks: g.jwksFor, keys: g.keys, limiter: g.limiter, strict: g.strict, cluster: g.cluster, quotas: g.quotas}
}

// jwksFor returns the key set for c, shared across snapshots while its
// settings stay the same (so a reload doesn't refetch it). Called with
// reloadMu held.
func (g *Gateway) jwksFor(c *config.JWKS) *auth.JWKS {
	key := fmt.Sprintf("%+v", *c)
	if j, ok := g.jwks[key]; ok {
		return j
	}
	j := &auth.JWKS{URL: c.URL, Refresh: c.Refresh.D(), MinInterval: c.MinRefreshInterval.D(), Timeout: c.Timeout.D(), Log: g.log}
	j.Start()
	g.jwks[key] = j
	return j
}

// KeyStore is the API key store (for the admin API).
func (g *Gateway) KeyStore() auth.KeyStore { return g.keys }

// openKeyStore opens the API key store cfg names: Redis, or a file (next
// to the config unless the path is absolute).
func (g *Gateway) openKeyStore(cfg *config.Config) (auth.KeyStore, error) {
	if cfg.Auth.APIKeys.Store == "redis" {
		return auth.NewRedisStore(g.redis, cfg.Redis.Timeout.D()), nil
	}
	return auth.OpenFileStore(cfg.Resolve(cfg.Auth.APIKeys.File))
}

// newRedisClient connects to Redis with client-side caching (RESP3
// tracking, rueidis's default).
func newRedisClient(c *config.Redis) (rueidis.Client, error) {
	client, err := rueidis.NewClient(RedisOptions(c))
	if err != nil {
		return nil, fmt.Errorf("redis %v: %w", c.Addrs, err)
	}
	return client, nil
}

func (g *Gateway) closeRedis() {
	if g.redis != nil {
		g.redis.Close()
	}
}

// evictIdleBuckets drops rate-limit buckets that are full again, so memory
// follows the keys active in the last burst window.
func (g *Gateway) evictIdleBuckets(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.limiter.Evict(limiter.Now())
		}
	}
}

// openQuotas opens the quota store: Redis (counting locally while Redis is
// down) when there is a redis block, else a file next to the config.
func (g *Gateway) openQuotas(cfg *config.Config) error {
	path := ""
	if cfg.Redis == nil {
		path = cfg.Resolve(cfg.Limits.QuotaFile)
	}
	local, err := limiter.OpenLocalQuotas(path, 5*time.Second, g.log)
	if err != nil {
		return err
	}
	g.localQ, g.quotas = local, local
	if cfg.Redis != nil {
		g.quotas = &limiter.RedisQuotas{Client: g.redis, Timeout: cfg.Redis.Timeout.D(), Fallback: local, Log: g.log}
	}
	return nil
}

// Quotas is the quota store (for the admin API).
func (g *Gateway) Quotas() limiter.Quotas { return g.quotas }

// RedisFallback reports, per shared-limit kind, whether the last Redis
// call failed and limits are being enforced locally (nil without Redis).
func (g *Gateway) RedisFallback() map[string]bool {
	if g.redis == nil {
		return nil
	}
	return map[string]bool{"strict": g.strict.FallbackActive(), "cluster": g.cluster.FallbackActive()}
}

// RedisOptions turns the redis block into rueidis options: client-side
// caching on (rueidis's default, RESP3), Sentinel when master_set is set,
// Cluster detected by rueidis.
func RedisOptions(c *config.Redis) rueidis.ClientOption {
	o := rueidis.ClientOption{
		InitAddress: c.Addrs, Username: c.Username, Password: c.Password, SelectDB: c.DB,
		ClientName: "sluice", ConnWriteTimeout: 2 * time.Second,
	}
	if c.MasterSet != "" {
		o.Sentinel = rueidis.SentinelOption{MasterSet: c.MasterSet}
	}
	return o
}

func sameRedis(a, b *config.Redis) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Addrs, b.Addrs) && a.MasterSet == b.MasterSet && a.Username == b.Username &&
		a.Password == b.Password && a.DB == b.DB && a.Timeout == b.Timeout
}

// consulConn is what the Consul client is built from.
func consulConn(c *config.Consul) [3]string {
	if c == nil {
		return [3]string{}
	}
	return [3]string{c.Address, c.Token, c.Datacenter}
}
