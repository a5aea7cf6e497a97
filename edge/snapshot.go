package edge

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/observe"
	"github.com/sluicegw/sluice/edge/pathnorm"
	"github.com/sluicegw/sluice/edge/submatch"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/fasthttp"
)

// Snapshot is everything a request needs, built from one config and never
// changed afterwards. The gateway holds the current one in an atomic
// pointer and loads it once per request; a reload builds a new one off the
// request path and swaps the pointer.
type Snapshot struct {
	// Config is the config the snapshot was built from.
	Config *config.Config

	routes    []*route
	upstreams map[string]*upstream
	router    *router
	res       *resources // the gateway's: shared by every snapshot

	maxBodyBytes    int
	bufferBodyBytes int
	// The client connection's timeouts, refreshed per read or write while
	// a body streams (fasthttp sets them once per request).
	clientReadTimeout, clientWriteTimeout time.Duration
	trusted                               []netip.Prefix
	servicesHealth                        bool
	allowTrace                            bool
	pathOpts                              pathnorm.Options             // server.path
	slashOverrides                        bool                         // some route's escaped_slashes differs from server.path's
	corsRoutes                            bool                         // some route has a CORS policy: preflights are routed by the method they ask about
	corsPolicies                          map[*config.CORS]*corsPolicy // compiled once each (steps.go); build only
	ipFilter                              *ipFilter                    // the top-level ip_filter, checked before routing; nil: none
	security                              *securityHeaders             // the top-level security headers, for answers given before routing; nil: none
	underscores                           underscoreAction
	metricsPath                           string   // also serve /metrics on the data plane here ("" no)
	identityHeaders                       [][]byte // removed from every request: only auth steps set them
	redirectHTTPS                         []byte   // ":PORT" or "" for 443; nil: no redirect (redirect.go)
	log                                   *slog.Logger

	metrics        *observe.Metrics // nil: request metrics off
	noRouteMetrics *observe.Route   // requests no route answered
}

// route is a compiled route: what it matches, how it rewrites, its
// upstream, and its steps (steps.go), composed when the snapshot is built.
type route struct {
	name      string
	prefix    string
	exactPath string
	host      string
	methods   [][]byte // nil: any method
	allowHdr  []byte   // "GET, POST" for 405 answers

	upstream    *upstream
	stripPrefix []byte
	addPrefix   []byte
	replacePath []byte
	timeout     time.Duration
	hostMode    hostMode
	hostValue   []byte

	slashes pathnorm.Action // routes[].path.escaped_slashes, or server.path's

	split        *splitter      // routes[].split (split.go); nil: upstream alone
	mirror       *mirror        // routes[].mirror (mirror.go); nil: none
	regex        *regexp.Regexp // match.regex; nil: prefix or exact path
	self         []*route       // []*route{rt}, for a 405's Allow without allocating
	conds        []routeCond    // match.headers, .query, .cookies (match.go)
	pathTemplate []pathPart     // replace_path with {group}s; nil: none
	captures     *submatch.Prog // regex compiled for pathTemplate's groups without allocating

	// maxBody is routes[].max_body_bytes, else server.max_body_bytes;
	// bufferBody the largest body held whole (buffer_body_bytes, at most
	// maxBody).
	maxBody, bufferBody int
	maxResponse         int  // routes[].max_response_bytes; 0: none
	cors                bool // the route has a CORS policy (it answers preflights)

	reqSet, respSet       [][2][]byte
	reqRemove, respRemove [][]byte

	metrics   *observe.Route // nil: metrics off
	steps     []step
	ws        *wsRoute // nil: upgrades refused (websocket.go)
	streaming bool     // routes[].streaming: every streamed answer flushed as relayed
}

// underscoreAction is server.headers_with_underscores.
type underscoreAction uint8

const (
	underscoresDrop underscoreAction = iota
	underscoresReject
	underscoresAllow
)

var underscoreActions = map[string]underscoreAction{"drop": underscoresDrop, "reject": underscoresReject, "allow": underscoresAllow}

type hostMode uint8

const (
	hostPreserve hostMode = iota
	hostTarget
	hostLiteral
)

func (rt *route) allows(method []byte) bool {
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

// build compiles cfg into a snapshot. cfg must be validated. res is the
// gateway's resources; discovered holds the targets discovery found, by
// upstream name.
func build(cfg *config.Config, res *resources, discovered map[string][]pool.TargetSpec) (*Snapshot, error) {
	s := &Snapshot{
		Config:             cfg,
		res:                res,
		log:                res.log,
		metricsPath:        cfg.Metrics.DataPlanePath,
		servicesHealth:     cfg.Server.ServicesHealth == nil || *cfg.Server.ServicesHealth,
		upstreams:          map[string]*upstream{},
		maxBodyBytes:       int(cfg.Server.MaxBodyBytes),
		bufferBodyBytes:    int(min(cfg.Server.BufferBodyBytes, cfg.Server.MaxBodyBytes)),
		clientReadTimeout:  cfg.Server.ReadTimeout.D(),
		clientWriteTimeout: cfg.Server.WriteTimeout.D(),
		identityHeaders:    identityHeaders(cfg),
		trusted:            cfg.Server.Trusted,
		allowTrace:         cfg.Server.AllowTrace,
		pathOpts:           cfg.PathOptions(nil),
		underscores:        underscoreActions[cfg.Server.HeadersWithUnderscores],
		ipFilter:           compileIPFilter(cfg.IPFilter),
		security:           compileSecurityHeaders(cfg.SecurityHeadersFor(nil)),
		redirectHTTPS:      compileRedirect(cfg.Server.RedirectHTTPS),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.Metrics.On() {
		s.metrics = res.metrics
	}
	s.noRouteMetrics = s.metrics.Route("")
	auth, err := s.compileAuth(cfg)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		up, err := s.compileUpstream(cfg, cfg.Upstreams[name], discovered[name])
		if err != nil {
			return nil, err
		}
		s.upstreams[name] = up
	}
	for _, rc := range cfg.Routes {
		rt, err := s.compileRoute(rc, auth)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", rc.Name, err)
		}
		s.routes = append(s.routes, rt)
	}
	s.router = newRouter(s.routes)
	return s, nil
}

func (s *Snapshot) compileRoute(rc *config.Route, auth *authSettings) (*route, error) {
	var split *splitter
	up := s.upstreams[rc.Upstream]
	if len(rc.Split) > 0 {
		split = s.compileSplit(rc)
		up = split.ups[0] // validated: every split upstream exists
	}
	if up == nil {
		return nil, fmt.Errorf("no upstream %q", rc.Upstream)
	}
	rt := &route{
		maxBody:     s.maxBodyBytes,
		bufferBody:  s.bufferBodyBytes,
		name:        rc.Name,
		prefix:      rc.Match.Prefix,
		exactPath:   rc.Match.Path,
		host:        rc.Match.Host,
		upstream:    up,
		stripPrefix: bytesOrNil(rc.Rewrite.StripPrefix),
		addPrefix:   bytesOrNil(rc.Rewrite.AddPrefix),
		replacePath: bytesOrNil(rc.Rewrite.ReplacePath),
		timeout:     rc.Timeout.D(),
		metrics:     s.metrics.Route(rc.Name),
		slashes:     s.Config.PathOptions(rc).EscapedSlashes,
		streaming:   rc.Streaming,
	}
	if rt.slashes != s.pathOpts.EscapedSlashes {
		s.slashOverrides = true
	}
	if len(rc.Match.Methods) > 0 {
		for _, m := range rc.Match.Methods {
			rt.methods = append(rt.methods, []byte(m))
		}
		allow := slices.Clone(rc.Match.Methods)
		if rt.allows([]byte(fasthttp.MethodHead)) && !slices.Contains(allow, fasthttp.MethodHead) {
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
	rt.self = []*route{rt}
	rt.split = split
	if rc.Mirror != nil {
		rt.mirror = s.compileMirror(rc.Mirror)
	}
	rt.conds = compileConds(rc.Match)
	if rc.Match.Regex != "" {
		rt.regex = regexp.MustCompile(rc.Match.Regex) // validated
		if strings.Contains(rc.Rewrite.ReplacePath, "{") {
			rt.pathTemplate = compilePathTemplate(rc.Rewrite.ReplacePath, rt.regex)
			rt.captures, _ = submatch.Compile(rc.Match.Regex) // validated: regexp compiled it
		}
	}
	s.compileWebSocket(rt, rc)
	rt.steps = s.routeSteps(rt, rc, auth)
	rt.maxResponse = int(rc.MaxResponseBytes)
	if rc.MaxBodyBytes > 0 {
		rt.maxBody = int(rc.MaxBodyBytes)
		rt.bufferBody = min(s.bufferBodyBytes, rt.maxBody)
	}
	return rt, nil
}

func compileHeaderOps(h config.HeaderOps) (set [][2][]byte, remove [][]byte) {
	for _, k := range slices.Sorted(maps.Keys(h.Set)) {
		set = append(set, [2][]byte{[]byte(k), []byte(h.Set[k])})
	}
	for _, k := range h.Remove {
		remove = append(remove, []byte(k))
	}
	return set, remove
}

// names lists the route and upstream names (for metrics.Retain).
func (s *Snapshot) names() (routes, upstreams []string) {
	for _, rt := range s.routes {
		routes = append(routes, rt.name)
	}
	return routes, slices.Collect(maps.Keys(s.upstreams))
}

// targets lists every target of the snapshot (for the registry).
func (s *Snapshot) targets() []*pool.Target {
	var out []*pool.Target
	for _, u := range s.upstreams {
		out = append(out, u.pool.Targets...)
	}
	return out
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
