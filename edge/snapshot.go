package edge

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/observe"
	"github.com/sluicegw/sluice/limiter"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// Snapshot is everything a request needs, built from one config and never
// changed afterwards. The gateway holds the current one in an atomic
// pointer and loads it once per request; a reload builds a new one off the
// request path and swaps the pointer.
type Snapshot struct {
	Config    *config.Config
	Routes    []*Route
	Upstreams map[string]*Upstream
	router    *router

	maxBodyBytes    int
	bufferBodyBytes int
	trusted         []netip.Prefix
	servicesHealth  bool
	limiter         *limiter.Limiter // shared by every snapshot
	strict          *limiter.Strict  // nil without redis
	cluster         *limiter.Cluster // nil without redis
	quotas          limiter.Quotas
	verifier        *auth.Verifier // nil without auth.jwt
	keys            auth.KeyStore
	apiKeyHeader    []byte
	apiKeyBearer    bool
	identityHeaders [][]byte // removed from every request before auth sets them
	log             *slog.Logger

	metrics        *observe.Metrics // nil: request metrics off
	noRouteMetrics *observe.Route   // requests no route answered
	metricsPath    string           // also serve /metrics on the data plane here ("" no)
	recording      bool             // requests carry a requestRecord
}

// Route is a compiled route: matching data, its upstream pool and the
// handler chain composed for it at build time.
type Route struct {
	Name      string
	prefix    string
	exactPath string
	host      string
	methods   [][]byte // nil: any method
	allowHdr  []byte   // "GET, POST" for 405 answers

	upstream    *Upstream
	stripPrefix []byte
	addPrefix   []byte
	replacePath []byte
	timeout     time.Duration
	hostMode    hostMode
	hostValue   []byte

	reqSet, respSet       [][2][]byte
	reqRemove, respRemove [][]byte

	auth     string // none, jwt, api_key, any
	roles    []string
	allRoles bool
	limit    *routeLimit    // nil: not limited
	quota    *routeQuota    // nil: no quota
	metrics  *observe.Route // nil: metrics off

	handler fasthttp.RequestHandler
}

type hostMode uint8

const (
	hostPreserve hostMode = iota
	hostTarget
	hostLiteral
)

func (rt *Route) allows(method []byte) bool {
	if rt.methods == nil {
		return true
	}
	for _, m := range rt.methods {
		if string(m) == string(method) {
			return true
		}
	}
	// RFC 9110 9.3.2: HEAD is GET without a body.
	if string(method) == fasthttp.MethodHead {
		for _, m := range rt.methods {
			if string(m) == fasthttp.MethodGet {
				return true
			}
		}
	}
	return false
}

// buildEnv is what a snapshot borrows from the gateway: things that
// outlive one config. reg carries targets (and their connections) across
// snapshots; discovered holds targets found by discovery, by upstream name;
// jwks returns the shared key set for a URL; keys is the API key store.
type buildEnv struct {
	metrics    *observe.Metrics
	recording  bool // requests carry a requestRecord (access log or tracing on)
	reg        *pool.Registry
	log        *slog.Logger
	discovered map[string][]pool.TargetSpec
	jwks       func(*config.JWKS) *auth.JWKS
	keys       auth.KeyStore
	limiter    *limiter.Limiter
	strict     *limiter.Strict
	cluster    *limiter.Cluster
	quotas     limiter.Quotas
}

// build compiles cfg into a snapshot. cfg must be validated.
func build(cfg *config.Config, env buildEnv) (*Snapshot, error) {
	reg, log, discovered := env.reg, env.log, env.discovered
	if log == nil {
		log = slog.Default()
	}
	s := &Snapshot{
		log:             log,
		recording:       env.recording,
		metricsPath:     cfg.Metrics.DataPlanePath,
		limiter:         env.limiter,
		strict:          env.strict,
		cluster:         env.cluster,
		quotas:          env.quotas,
		servicesHealth:  cfg.Server.ServicesHealth == nil || *cfg.Server.ServicesHealth,
		Config:          cfg,
		Upstreams:       map[string]*Upstream{},
		maxBodyBytes:    int(cfg.Server.MaxBodyBytes),
		bufferBodyBytes: int(min(cfg.Server.BufferBodyBytes, cfg.Server.MaxBodyBytes)),
	}
	if cfg.Metrics.On() {
		s.metrics = env.metrics
	}
	s.noRouteMetrics = s.metrics.Route("")
	if err := s.compileAuth(cfg, env); err != nil {
		return nil, err
	}
	for _, p := range cfg.Server.TrustedProxies {
		prefix, err := config.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies: %w", err)
		}
		s.trusted = append(s.trusted, prefix)
	}
	names := slices.Sorted(maps.Keys(cfg.Upstreams))
	for _, name := range names {
		u := cfg.Upstreams[name]
		up, err := s.compileUpstream(reg, cfg, u, discovered[name])
		if err != nil {
			return nil, err
		}
		s.Upstreams[name] = up
	}
	for _, rc := range cfg.Routes {
		rt, err := s.compileRoute(rc)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", rc.Name, err)
		}
		s.Routes = append(s.Routes, rt)
	}
	s.router = newRouter(s.Routes)
	return s, nil
}

func (s *Snapshot) compileRoute(rc *config.Route) (*Route, error) {
	up := s.Upstreams[rc.Upstream]
	if up == nil {
		return nil, fmt.Errorf("no upstream %q", rc.Upstream)
	}
	rt := &Route{
		Name:        rc.Name,
		prefix:      rc.Match.Prefix,
		exactPath:   rc.Match.Path,
		host:        rc.Match.Host,
		upstream:    up,
		stripPrefix: bytesOrNil(rc.Rewrite.StripPrefix),
		addPrefix:   bytesOrNil(rc.Rewrite.AddPrefix),
		replacePath: bytesOrNil(rc.Rewrite.ReplacePath),
		timeout:     rc.Timeout.D(),
		metrics:     s.metrics.Route(rc.Name),
	}
	if len(rc.Match.Methods) > 0 {
		for _, m := range rc.Match.Methods {
			rt.methods = append(rt.methods, []byte(m))
		}
		allow := append([]string(nil), rc.Match.Methods...)
		if rt.allows([]byte(fasthttp.MethodHead)) && !contains(allow, fasthttp.MethodHead) {
			allow = append(allow, fasthttp.MethodHead)
		}
		rt.allowHdr = []byte(strings.Join(allow, ", "))
	}
	switch rc.HostHeader {
	case "preserve":
		rt.hostMode = hostPreserve
	case "target":
		rt.hostMode = hostTarget
	default:
		rt.hostMode, rt.hostValue = hostLiteral, []byte(rc.HostHeader)
	}
	rt.reqSet, rt.reqRemove = compileHeaderOps(rc.RequestHeaders)
	rt.respSet, rt.respRemove = compileHeaderOps(rc.ResponseHeaders)
	rt.auth, rt.roles, rt.allRoles = rc.Auth, rc.Roles, rc.RolesMatch == "all"
	rl := rc.RateLimit
	if rl == nil {
		rl = s.Config.Limits.Default
	}
	rt.limit = compileLimit(rc.Name, rl)
	rt.quota = compileQuota(rc.Name, rc.Quota)
	rt.handler = chain(s.proxyHandler(rt), s.routeMiddleware(rt)...)
	return rt, nil
}

// routeMiddleware lists the steps in front of the proxy for a route, in
// order. Limits, CORS and caching join here as they land.
func (s *Snapshot) routeMiddleware(rt *Route) []Middleware {
	var mw []Middleware
	if rt.auth != "none" {
		mw = append(mw, s.authStep(rt))
	}
	if rt.limit != nil {
		mw = append(mw, s.limitStep(rt))
	}
	if rt.quota != nil {
		mw = append(mw, s.quotaStep(rt))
	}
	return mw
}

// Middleware wraps a handler; composed once per route at build time.
// A step either calls next or answers through writeFault.
type Middleware func(next fasthttp.RequestHandler) fasthttp.RequestHandler

// chain composes middleware so that mw[0] runs first.
func chain(h fasthttp.RequestHandler, mw ...Middleware) fasthttp.RequestHandler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

func compileHeaderOps(h config.HeaderOps) (set [][2][]byte, remove [][]byte) {
	names := slices.Sorted(maps.Keys(h.Set))
	for _, k := range names {
		set = append(set, [2][]byte{[]byte(k), []byte(h.Set[k])})
	}
	for _, k := range h.Remove {
		remove = append(remove, []byte(k))
	}
	return set, remove
}

// names lists the route and upstream names (for metrics.Retain).
func (s *Snapshot) names() (routes, upstreams []string) {
	for _, rt := range s.Routes {
		routes = append(routes, rt.Name)
	}
	return routes, slices.Collect(maps.Keys(s.Upstreams))
}

// Targets lists every target of the snapshot (for the registry).
func (s *Snapshot) Targets() []*pool.Target {
	var out []*pool.Target
	for _, u := range s.Upstreams {
		out = append(out, u.Pool.Targets...)
	}
	return out
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
