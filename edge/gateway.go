package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// Gateway serves the data plane from the current snapshot.
type Gateway struct {
	snap   atomic.Pointer[Snapshot]
	res    resources
	server *fasthttp.Server
	log    *slog.Logger
	tls    []*tlsListener // listen_tls, in config order (tls_listen.go)
	acme   *acmeManager   // nil without an acme block (acme.go)

	// startup is the config the server was started with; settings that
	// only take effect at start (listen, server timeouts) are compared
	// against it on reload.
	startup  *config.Config
	started  time.Time
	draining atomic.Bool

	reloadMu  sync.Mutex // serialises building snapshots; never taken by requests
	disc      discovery  // under reloadMu
	reloads   atomic.Uint64
	lastError atomic.Pointer[string]
}

// New opens what cfg (validated by config.Load) needs and builds the first
// snapshot. version is reported by sluice_build_info and on spans.
func New(cfg *config.Config, log *slog.Logger, version string) (_ *Gateway, err error) {
	if log == nil {
		log = slog.Default()
	}
	if version == "" {
		version = "dev"
	}
	g := &Gateway{log: log, startup: cfg, started: time.Now()}
	g.res.log, g.res.registry = log, pool.NewRegistry(log)
	g.disc = discovery{watchers: map[string]*watch{}, targets: map[string][]pool.TargetSpec{}}
	if err = g.res.open(cfg, version, g.started, g.metricsState); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.stopDiscovery()
			g.acme.stop(context.Background()) // nothing started: returns at once
			g.res.close()
		}
	}()
	if err = g.syncDiscovery(cfg); err != nil {
		return nil, err
	}
	if g.acme, err = openACME(cfg, g.res.redis, log); err != nil {
		return nil, err
	}
	if g.tls, err = openTLSListeners(cfg, g.acme); err != nil {
		return nil, err
	}
	snap, err := g.build(cfg)
	if err != nil {
		return nil, err
	}
	g.snap.Store(snap)
	g.res.metrics.Retain(snap.names())
	g.server = newServer(cfg.Server, g.ServeHTTP, log)
	return g, nil
}

// newServer is the fasthttp server for the data plane.
func newServer(s config.Server, handler fasthttp.RequestHandler, log *slog.Logger) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:         handler,
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
		// A WebSocket tunnel (tunnel.go) takes over its hijacked
		// connection and closes it itself; fasthttp then keeps neither
		// the connection nor its 16 KiB read buffer.
		KeepHijackedConns: true,
		// An idle keep-alive connection gives its read and write buffers
		// back to the pool (32 KiB each with the defaults): with 1000 idle
		// connections, peak RSS 42 MiB instead of 48 (bench/README.md), and
		// no measurable throughput cost.
		ReduceMemoryUsage:     true,
		SecureErrorLogMessage: true,
		Logger:                &fasthttpLogger{log: log},
	}
}

// ServeHTTP is the data-plane entry point. Every request takes the same
// path: the checks and routing in serve, then the matched route's own
// steps (route.steps, built with the snapshot: steps.go), and is recorded
// at the end (observability.go): when ServeHTTP returns, or for an answer
// streamed from the upstream, once fasthttp has written it.
func (g *Gateway) ServeHTTP(ctx *fasthttp.RequestCtx) {
	x := acquireExchange(ctx, g.snap.Load())
	g.res.metrics.Begin()
	g.serve(x)
	if x.step == 0 {
		// Answered before any route step ran (refused, 404, built-ins):
		// the top-level security headers (step_security.go). A route's
		// own step applied them otherwise.
		x.snap.security.apply(ctx)
	}
	g.res.metrics.End()
	if !x.streaming { // else StreamDone records it once written
		x.record()
		releaseExchange(x)
	}
}

// serve runs the steps every request takes, in order, then the route's.
// Each step either lets the request go on or answers it.
func (g *Gateway) serve(x *exchange) {
	x.scanHead()                     // checks.go: the header names, once
	x.assignRequestID()              // requestid.go
	if !x.admitIP(x.snap.ipFilter) { // step_ipfilter.go: the top-level ip_filter, before anything else
		return
	}
	if !x.checkHead() || !x.checkPath() { // checks.go, paths.go
		return
	}
	if g.serveBuiltin(x) { // builtin.go: /services/health, data-plane metrics
		return
	}
	if x.snap.redirectHTTPS != nil && !x.ctx.IsTLS() { // redirect.go
		x.redirectToHTTPS()
		return
	}
	if !x.findRoute() || !x.applySlashAction() { // router.go: 404, or 405 with Allow; paths.go
		return
	}
	// The raw block holds the head only: a chunked body may end in
	// trailers, so its request is cleaned whatever the head showed.
	if x.mayHave(x.head.identity) || x.ctx.Request.Header.ContentLength() == -1 {
		x.stripIdentityHeaders() // step_auth.go: only sluice sets them
	}
	if x.head.consoleCookie {
		x.dropConsoleCookie() // headers.go: an admin session never reaches an upstream
	}
	g.startSpan(x) // spans.go
	x.next()       // the route's steps
}

// Snapshot returns the snapshot now serving.
func (g *Gateway) Snapshot() *Snapshot { return g.snap.Load() }

// Serve accepts data-plane connections on ln until Shutdown.
func (g *Gateway) Serve(ln net.Listener) error {
	g.acme.startACME() // the challenges have a listener now
	err := g.server.Serve(lingerListener{ln})
	if g.draining.Load() {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets in-flight requests finish until ctx is
// done, closes idle keep-alive connections, then closes the resources (the
// last requests are logged first).
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.draining.Store(true)
	g.stopDiscovery()
	// ACME stops beside the draining, and lets go of its storage locks
	// before the resources (the Redis client) close.
	acmeDone := make(chan struct{})
	go func() { g.acme.stop(ctx); close(acmeDone) }()
	defer func() {
		<-acmeDone
		g.res.close()
	}()
	// Tunnels are hijacked connections the server no longer tracks: they
	// get their 1001 close while the server drains its requests.
	g.res.streams.stopAll() // event streams end now rather than at the deadline
	tunnelsDone := make(chan error, 1)
	go func() { tunnelsDone <- g.res.tunnels.shutdown(ctx) }()
	err := g.server.ShutdownWithContext(ctx)
	if terr := <-tunnelsDone; err == nil && terr != nil {
		err = fmt.Errorf("shutdown: websocket tunnels still open after the shutdown timeout: %w", terr)
	}
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

// fasthttpLogger passes fasthttp's own messages (mostly malformed
// requests and broken connections) to the log, at most one line a second:
// a flood of bad requests can't flood the log. Each line says how many
// were left out since the last.
type fasthttpLogger struct {
	log        *slog.Logger
	lastAt     atomic.Int64 // unix ns of the last line written
	suppressed atomic.Int64
}

func (l *fasthttpLogger) Printf(format string, args ...any) {
	now := time.Now().UnixNano()
	last := l.lastAt.Load()
	if now-last < int64(time.Second) || !l.lastAt.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	l.log.Warn("fasthttp", "message", fmt.Sprintf(format, args...), "suppressed", l.suppressed.Swap(0))
}
