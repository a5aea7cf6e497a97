package config

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluicegw/sluice/edge/pathnorm"
	"gopkg.in/yaml.v3"
)

// Config is the whole gateway configuration, as decoded from one YAML
// document.
type Config struct {
	// Listen is the data-plane address. Default ":8080". "off" serves
	// only the TLS listeners (ListenTLS must then name one).
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// ListenTLS are data-plane listeners that terminate TLS, beside (or,
	// with listen: off, instead of) the plain one. Their addresses take
	// effect at start; their certificates reload.
	ListenTLS []TLSListener `yaml:"listen_tls" json:"listen_tls,omitempty"`
	// Server holds the data-plane limits and timeouts.
	Server Server `yaml:"server" json:"server,omitempty"`
	// Admin is the separate admin listener.
	Admin Admin `yaml:"admin" json:"admin,omitempty"`
	// Upstreams by name; routes refer to them by that name.
	Upstreams map[string]*Upstream `yaml:"upstreams" json:"upstreams,omitempty"`
	// Routes are matched by host, then exact path, then longest prefix.
	Routes []*Route `yaml:"routes" json:"routes,omitempty"`
	// Auth configures JWT verification and API keys, used by routes'
	// auth setting.
	Auth Auth `yaml:"auth" json:"auth"`
	// Limits holds settings shared by every route's rate limit.
	Limits Limits `yaml:"limits" json:"limits"`
	// ACME obtains certificates for listen_tls acme_hosts. nil: none.
	ACME *ACME `yaml:"acme" json:"acme,omitempty"`
	// Redis is the shared store of a sluice cluster (API keys now; limits
	// and caches later). nil: no Redis.
	Redis *Redis `yaml:"redis" json:"redis,omitempty"`
	// Consul connects sluice to Consul, for discovery and for config from
	// a KV key. nil: Consul is not used (unless an upstream uses discovery,
	// which then takes the defaults).
	Consul *Consul `yaml:"consul" json:"consul,omitempty"`
	// Metrics configures the Prometheus metrics.
	Metrics Metrics `yaml:"metrics" json:"metrics"`
	// AccessLog configures the JSON access log (off by default).
	AccessLog AccessLog `yaml:"access_log" json:"access_log"`
	// Tracing configures OTLP span export (off by default). traceparent
	// propagation is always on.
	Tracing Tracing `yaml:"tracing" json:"tracing"`
	// CORS is the CORS policy of every route without its own (policy.go).
	// nil: no CORS.
	CORS *CORS `yaml:"cors" json:"cors,omitempty"`
	// SecurityHeaders are set on every answer (policy.go). nil: none.
	SecurityHeaders *SecurityHeaders `yaml:"security_headers" json:"security_headers,omitempty"`
	// IPFilter admits or refuses every request by client address, before
	// routing (policy.go). nil: everyone.
	IPFilter *IPFilter `yaml:"ip_filter" json:"ip_filter,omitempty"`
	// Compression compresses answers for clients that accept it
	// (compression.go). nil: none.
	Compression *Compression `yaml:"compression" json:"compression,omitempty"`
	// RequestDecompression decodes compressed request bodies for upstreams
	// that can't (request_decompression.go). nil: none.
	RequestDecompression *RequestDecompression `yaml:"request_decompression" json:"request_decompression,omitempty"`
	// Cache is the response cache's store and defaults (cache.go). Routes
	// cache only with a cache block of their own.
	Cache *Cache `yaml:"cache" json:"cache,omitempty"`

	// Source is where this config came from (a file path), used in errors
	// and /info. Not part of the YAML.
	Source string `yaml:"-" json:"source"`
}

// Server holds data-plane server settings. Zero values take the defaults
// documented on each field.
type Server struct {
	// RedirectHTTPS answers every request on the plain listener (except
	// the data-plane metrics and /services/health) with a 308 to the same
	// URL over https. nil: plain requests are served.
	RedirectHTTPS *RedirectHTTPS `yaml:"redirect_https" json:"redirect_https,omitempty"`
	// ReadTimeout bounds reading a request's headers and a buffered body,
	// and each read of a streamed one. Default 30s.
	ReadTimeout Duration `yaml:"read_timeout" json:"read_timeout,omitempty"`
	// WriteTimeout bounds writing a response to the client, and each write
	// of a streamed one. Default 30s.
	WriteTimeout Duration `yaml:"write_timeout" json:"write_timeout,omitempty"`
	// IdleTimeout closes keep-alive connections idle this long. Default 90s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
	// MaxHeaderBytes caps the request line plus headers; over it the client
	// gets 431. Default 16KiB (big JWTs and cookies need more than
	// fasthttp's 4096).
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes" json:"max_header_bytes,omitempty"`
	// MaxBodyBytes caps a request body; over it the client gets 413.
	// Bodies above BufferBodyBytes are streamed, never held whole.
	// Default 10MiB. Zero after defaulting is impossible; use a large value
	// for "unlimited".
	MaxBodyBytes ByteSize `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// BufferBodyBytes is the largest request body held in memory whole
	// (it can then be sent again on a retry); larger ones stream through.
	// Default 1MiB.
	BufferBodyBytes ByteSize `yaml:"buffer_body_bytes" json:"buffer_body_bytes,omitempty"`
	// BufferResponseBytes is the largest response body of known length
	// read whole before the answer goes out; larger, chunked and
	// close-delimited ones stream with backpressure, so a slow client
	// holds a few buffers, not its whole answer (issue #13). Default 64KiB,
	// at most 16MiB.
	BufferResponseBytes ByteSize `yaml:"buffer_response_bytes" json:"buffer_response_bytes,omitempty"`
	// MaxConnections caps concurrent client connections. Default 10000.
	MaxConnections int `yaml:"max_connections" json:"max_connections,omitempty"`
	// ShutdownTimeout is how long in-flight requests may run after SIGTERM.
	// Default 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout" json:"shutdown_timeout,omitempty"`
	// WebSocketDrain is how long the open tunnels of a route that a reload
	// removed (by name) may run on; then each side gets a close frame 1001
	// "going away", as on shutdown. Default 1h.
	WebSocketDrain Duration `yaml:"websocket_drain" json:"websocket_drain,omitempty"`
	// TrustedProxies are CIDRs (or bare IPs) whose X-Forwarded-For is
	// extended instead of replaced. Default none: every client's
	// X-Forwarded-For is replaced by its address.
	TrustedProxies []string `yaml:"trusted_proxies" json:"trusted_proxies,omitempty"`
	// Trusted is TrustedProxies parsed, filled by validation.
	Trusted []netip.Prefix `yaml:"-" json:"-"`
	// ServicesHealth serves GET /services/health on the data plane: each
	// upstream's targets and their state, public, as seed 001 does. It
	// names backend addresses; set false to keep that to the admin API.
	// Default true.
	ServicesHealth *bool `yaml:"services_health" json:"services_health,omitempty"`
	// AllowTrace lets TRACE requests through to the routes. Default false:
	// TRACE is answered 405 (RFC 9110 9.3.8: it echoes the request,
	// credentials included, and no API needs it).
	AllowTrace bool `yaml:"allow_trace" json:"allow_trace,omitempty"`
	// HeadersWithUnderscores is what happens to a request header whose name
	// contains "_" (X_Forwarded_For): "drop" (default, as nginx does: a
	// backend that maps "_" to "-" would see a header the client spoofed),
	// "reject" (400) or "allow".
	HeadersWithUnderscores string `yaml:"headers_with_underscores" json:"headers_with_underscores,omitempty"`
	// Path is how request paths are normalised before routing. The
	// normalised path is also the one forwarded.
	Path PathNorm `yaml:"path" json:"path"`
}

// PathNorm is server.path: how a request path is normalised (RFC 3986
// section 6, see edge/pathnorm) before it is matched against routes and
// forwarded. Paths that can't be normalised safely get 400.
type PathNorm struct {
	// MergeSlashes merges runs of "/" into one, so "//admin/x" can't pass
	// a public "/" route to an upstream that merges them itself. Default
	// true.
	MergeSlashes *bool `yaml:"merge_slashes" json:"merge_slashes,omitempty"`
	// EscapedSlashes is what happens to %2F and %5C in a path: reject
	// (400, the default), keep (forwarded still encoded, for IDs that
	// contain slashes) or decode (both become "/"). Routes may override it.
	EscapedSlashes string `yaml:"escaped_slashes" json:"escaped_slashes,omitempty"`
}

// Merge reports whether runs of "/" are merged.
func (p PathNorm) Merge() bool { return p.MergeSlashes == nil || *p.MergeSlashes }

// RoutePath is a route's own path setting.
type RoutePath struct {
	// EscapedSlashes overrides server.path.escaped_slashes for requests
	// this route matches. Default: the server's (filled in by Load).
	EscapedSlashes string `yaml:"escaped_slashes" json:"escaped_slashes,omitempty"`
}

// Admin is the admin listener and who may use it.
type Admin struct {
	// Listen is the admin address. Default "127.0.0.1:9901" (loopback only).
	// "off" disables the admin listener.
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// Auth requires Basic credentials (or Token) on every admin route but
	// /health and /ready. Default true; sluice refuses to start with auth on
	// and no password.
	Auth *bool `yaml:"auth" json:"auth,omitempty"`
	// Username for Basic auth. Default "admin".
	Username string `yaml:"username" json:"username,omitempty"`
	// Password for Basic auth, e.g. "${SLUICE_ADMIN_PASSWORD}". Never shown.
	Password string `yaml:"password" json:"password,omitempty"`
	// Token, when set, is also accepted as "Authorization: Bearer TOKEN"
	// (for automation). Never shown.
	Token string `yaml:"token" json:"token,omitempty"`
	// RedactHeaders names headers (case-insensitive) whose values GET
	// /admin/config replaces with "[redacted]" wherever the config sets
	// one (routes' request_headers and response_headers). Default
	// DefaultRedactHeaders plus auth.api_keys.header; a list given here
	// replaces that default, [] empties it. Either way the API key header,
	// and any header whose name contains authorization, cookie, token,
	// secret, password, key or credential, stay redacted.
	RedactHeaders []string `yaml:"redact_headers" json:"redact_headers,omitempty"`
	// SessionTTL is how long a web console login (/ui/) lasts. Default
	// DefaultSessionTTL; between 1s and 7 days.
	SessionTTL Duration `yaml:"session_ttl" json:"session_ttl,omitempty"`
	// PrometheusURL, when set, is the Prometheus the web console's Query
	// page asks (through the admin listener, which proxies
	// /api/v1/query and /api/v1/query_range), e.g.
	// "http://127.0.0.1:9090". Default "": no Query page.
	PrometheusURL string `yaml:"prometheus_url" json:"prometheus_url,omitempty"`
	// Hosts are extra host names (no port) the admin listener answers
	// to. It always answers to IP literals, "localhost" and the host of
	// Listen; a request with any other Host (or an Origin naming one) is
	// refused before authentication, which defeats DNS rebinding: a page
	// on a name the attacker controls, re-pointed at 127.0.0.1, arrives
	// with that name as Host.
	Hosts []string `yaml:"hosts" json:"hosts,omitempty"`
	// PublicOrigin is the origin browsers reach the admin listener at
	// when a TLS proxy sits in front of it, e.g.
	// "https://admin.example.com": the listener itself is plain HTTP, so
	// it can't tell. Origin headers naming it are the listener's own, its
	// host is a known name (Hosts), and with https the console's cookie is
	// Secure. Default "": the scheme and Host the request came with.
	PublicOrigin string `yaml:"public_origin" json:"public_origin,omitempty"`
}

// Metrics configures the Prometheus metrics. They are always served on the
// admin listener at /metrics.
type Metrics struct {
	// Enabled records request metrics. Default true; false leaves /metrics
	// with the process, runtime and state metrics only.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// DataPlanePath also serves the metrics on the data plane at this
	// path (e.g. "/metrics"), unauthenticated. Default "": admin only.
	DataPlanePath string `yaml:"data_plane_path" json:"data_plane_path,omitempty"`
}

// On reports whether request metrics are recorded.
func (m Metrics) On() bool { return m.Enabled == nil || *m.Enabled }

// AccessLog configures the access log: one JSON line per request, written
// by a background writer that never blocks a request.
type AccessLog struct {
	// Enabled turns the access log on. Default false.
	Enabled bool `yaml:"enabled" json:"enabled,omitempty"`
	// Output is "stdout" (default) or a file path, appended to and
	// reopened on SIGUSR1 (for logrotate).
	Output string `yaml:"output" json:"output,omitempty"`
	// Sample is the share of requests logged, 0 < sample <= 1. Default 1.
	// Answers with status 500 or above are always logged.
	Sample *float64 `yaml:"sample" json:"sample,omitempty"`
	// Buffer is how many lines may wait for the writer; when it is full,
	// lines are dropped and counted. Default 8192.
	Buffer int `yaml:"buffer" json:"buffer,omitempty"`
}

// Tracing configures OpenTelemetry span export over OTLP/HTTP.
type Tracing struct {
	// OTLPEndpoint is the collector's OTLP/HTTP base URL, e.g.
	// "http://127.0.0.1:4318" (spans go to /v1/traces). "" (default): no
	// export.
	OTLPEndpoint string `yaml:"otlp_endpoint" json:"otlp_endpoint,omitempty"`
	// Sample is the share of new traces recorded, 0..1. A request that
	// arrives with a sampled traceparent is always recorded. Default 0.01.
	Sample *float64 `yaml:"sample" json:"sample,omitempty"`
	// ServiceName is the service.name resource attribute. Default "sluice".
	ServiceName string `yaml:"service_name" json:"service_name,omitempty"`
}

// AuthOn reports whether admin authentication is required.
func (a Admin) AuthOn() bool { return a.Auth == nil || *a.Auth }

// Auth is how callers prove who they are.
type Auth struct {
	// JWT verification, for routes with auth: jwt or any.
	JWT *JWT `yaml:"jwt" json:"jwt,omitempty"`
	// APIKeys, for routes with auth: api_key or any.
	APIKeys APIKeys `yaml:"api_keys" json:"api_keys"`
	// MTLS names the headers routes with auth: mtls forward.
	MTLS MTLS `yaml:"mtls" json:"mtls"`
}

// MTLS: what a route with auth: mtls tells its upstream about the client
// certificate. Clients can't send these headers themselves: they are
// removed from every request.
type MTLS struct {
	// SubjectHeader carries the certificate's subject (RFC 2253 form).
	// Default X-Client-Subject.
	SubjectHeader string `yaml:"subject_header" json:"subject_header,omitempty"`
	// FingerprintHeader carries the SHA-256 of the certificate (DER), in
	// lower-case hex. Default X-Client-Cert-SHA256.
	FingerprintHeader string `yaml:"fingerprint_header" json:"fingerprint_header,omitempty"`
}

// JWT configures token verification.
type JWT struct {
	// Keys verify tokens: by kid, or the one key without an id for tokens
	// without a kid.
	Keys []JWTKey `yaml:"keys" json:"keys,omitempty"`
	// JWKS fetches keys from an identity provider.
	JWKS *JWKS `yaml:"jwks" json:"jwks,omitempty"`
	// Algorithms allowed; default: those of the keys (and the asymmetric
	// ones for JWKS). "none" is never allowed.
	Algorithms []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// Issuer, when set, must equal the iss claim.
	Issuer string `yaml:"issuer" json:"issuer,omitempty"`
	// Audience, when set, must contain one of the token's aud values.
	Audience []string `yaml:"audience" json:"audience,omitempty"`
	// Leeway for exp, nbf and iat. Default 30s.
	Leeway Duration `yaml:"leeway" json:"leeway,omitempty"`
	// RequiredClaims must be present.
	RequiredClaims []string `yaml:"required_claims" json:"required_claims,omitempty"`
	// RolesClaim holds the caller's roles: a list, or a space-separated
	// string (e.g. "scope"). Default "roles".
	RolesClaim string `yaml:"roles_claim" json:"roles_claim,omitempty"`
	// ForwardClaims sends claims upstream as headers, e.g. {sub: X-User-ID}.
	// Client-sent copies of these headers are always removed.
	ForwardClaims map[string]string `yaml:"forward_claims" json:"forward_claims,omitempty"`
	// CacheSize bounds the cache of verified tokens. Default 10000.
	CacheSize int `yaml:"cache_size" json:"cache_size,omitempty"`
}

// JWTKey is one verification key. Exactly one of Secret, PublicKey and
// PublicKeyFile is set.
type JWTKey struct {
	// ID is matched against the token's kid. Optional for one key.
	ID string `yaml:"id" json:"id,omitempty"`
	// Algorithm this key verifies: HS256/384/512, RS256/384/512, PS256/384/512,
	// ES256/384/512 or EdDSA. Required.
	Algorithm string `yaml:"algorithm" json:"algorithm,omitempty"`
	// Secret for HS*: at least 32 bytes, e.g. "${JWT_SECRET}". Never shown.
	Secret string `yaml:"secret" json:"secret,omitempty"`
	// PublicKey is a PEM public key or certificate, inline.
	PublicKey string `yaml:"public_key" json:"public_key,omitempty"`
	// PublicKeyFile is a path to one (relative to the config file).
	PublicKeyFile string `yaml:"public_key_file" json:"public_key_file,omitempty"`
}

// JWKS is a key set fetched from a URL.
type JWKS struct {
	URL                string   `yaml:"url" json:"url,omitempty"`
	Refresh            Duration `yaml:"refresh" json:"refresh,omitempty"`                           // default 5m
	MinRefreshInterval Duration `yaml:"min_refresh_interval" json:"min_refresh_interval,omitempty"` // unknown-kid refreshes; default 30s
	Timeout            Duration `yaml:"timeout" json:"timeout,omitempty"`                           // default 5s
}

// Limits configures rate limiting across routes.
type Limits struct {
	// Default applies to every route without its own rate_limit.
	Default *RateLimit `yaml:"default" json:"default,omitempty"`
	// Instances is how many sluice instances share the limits. When Redis
	// can't be reached, strict limits fall back to local buckets holding
	// limit / Instances. Default 1.
	Instances int `yaml:"instances" json:"instances,omitempty"`
	// QuotaFile keeps quota counts without Redis (saved every few seconds
	// and at shutdown). Default "quotas.json" next to the config.
	QuotaFile string `yaml:"quota_file" json:"quota_file,omitempty"`
}

// Quota is Limit requests per Per for each key (a sliding window): in
// Redis when there is a redis block, else in QuotaFile.
type Quota struct {
	Limit int        `yaml:"limit" json:"limit"`       // required
	Per   Duration   `yaml:"per" json:"per,omitempty"` // default 24h
	Key   StringList `yaml:"key" json:"key,omitempty"` // as rate_limit.key; default api_key
}

// RateLimit is a token bucket: Rate requests per Per, at most Burst at once,
// one bucket per key.
type RateLimit struct {
	Rate  int      `yaml:"rate" json:"rate"`             // required, 1..1e9
	Per   Duration `yaml:"per" json:"per,omitempty"`     // default 1s
	Burst int      `yaml:"burst" json:"burst,omitempty"` // default Rate
	// Key says whose bucket a request takes from: ip (default; the client
	// address, trusted-proxy aware), api_key (the authenticated key's id),
	// user (the JWT subject or the API key id), route (one bucket for the
	// whole route), header:NAME, claim:NAME. A list combines them.
	Key StringList `yaml:"key" json:"key,omitempty"`
	// Shadow counts and logs what would be refused, without refusing.
	Shadow bool `yaml:"shadow" json:"shadow,omitempty"`
	// Scope: local (default; each instance on its own), cluster (shared
	// through Redis, no Redis call on the request path: instances lease
	// tokens in batches) or strict (exact: one atomic Redis script per
	// request). cluster and strict need the redis block.
	Scope string `yaml:"scope" json:"scope,omitempty"`
}

// StringList is one string or a list of them in YAML.
type StringList []string

// UnmarshalYAML accepts "a" or [a, b].
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = StringList{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*l = list
	return nil
}

// Redis is how to reach Redis: a server, a Redis Cluster (any of its nodes
// in Addrs; detected by itself), or Sentinel (MasterSet set: Addrs are the
// sentinels).
type Redis struct {
	// Addrs of the server(s), host:port. Required.
	Addrs []string `yaml:"addrs" json:"addrs,omitempty"`
	// MasterSet names the master to ask the sentinels in Addrs for.
	MasterSet string `yaml:"master_set" json:"master_set,omitempty"`
	// Username and Password (ACL / requirepass). Password is never shown.
	Username string `yaml:"username" json:"username,omitempty"`
	Password string `yaml:"password" json:"password,omitempty"`
	// DB number. Default 0.
	DB int `yaml:"db" json:"db,omitempty"`
	// Timeout for a request-path Redis call. Default 50ms.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// APIKeys configures API key authentication.
type APIKeys struct {
	// Header carrying the key. Default X-API-Key.
	Header string `yaml:"header" json:"header,omitempty"`
	// Bearer also accepts "Authorization: Bearer sluice_...". Default true.
	Bearer *bool `yaml:"bearer" json:"bearer,omitempty"`
	// Store is where keys live: file (default) or redis (shared by every
	// instance; needs the redis block).
	Store string `yaml:"store" json:"store,omitempty"`
	// File is the file store's path. Default "apikeys.json" next to the
	// config file. Read at start.
	File string `yaml:"file" json:"file,omitempty"`
}

// Consul is how to reach Consul. Empty fields fall back to Consul's own
// environment variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, ...) and then
// its defaults (127.0.0.1:8500).
type Consul struct {
	// Address is host:port (or a URL) of a Consul agent.
	Address string `yaml:"address" json:"address,omitempty"`
	// Token is the ACL token. Never shown by /admin/config.
	Token string `yaml:"token" json:"token,omitempty"`
	// Datacenter to query; default the agent's.
	Datacenter string `yaml:"datacenter" json:"datacenter,omitempty"`
	// ConfigKey, when set, is the KV key holding sluice's whole config:
	// the file sluice is started with then only says how to reach Consul,
	// and the key is watched and applied like a file.
	ConfigKey string `yaml:"config_key" json:"config_key,omitempty"`
	// Wait is how long a blocking query waits for a change. Default 5m.
	Wait Duration `yaml:"wait" json:"wait,omitempty"`

	// Implied is set by Load when the config has no consul block but an
	// upstream uses Consul discovery: the block then holds the defaults,
	// and a config from a KV key takes the bootstrap file's instead.
	Implied bool `yaml:"-" json:"-"`
}

// Discovery finds an upstream's targets somewhere else.
type Discovery struct {
	Consul *ConsulService `yaml:"consul" json:"consul,omitempty"`
}

// ConsulService names a Consul service whose instances are targets.
type ConsulService struct {
	// Service name. Required.
	Service string `yaml:"service" json:"service,omitempty"`
	// Tag filters instances; empty: all.
	Tag string `yaml:"tag" json:"tag,omitempty"`
	// Datacenter; default the consul block's.
	Datacenter string `yaml:"datacenter" json:"datacenter,omitempty"`
	// PassingOnly keeps only instances whose checks all pass. Default true.
	PassingOnly *bool `yaml:"passing_only" json:"passing_only,omitempty"`
	// Scheme of the targets, http (default) or https.
	Scheme string `yaml:"scheme" json:"scheme,omitempty"`
}

// Upstream is a named group of targets.
type Upstream struct {
	// Targets are the backends. At least one is required, unless
	// Discovery finds them.
	Targets []Target `yaml:"targets" json:"targets,omitempty"`
	// Discovery adds targets found in Consul, kept up to date.
	Discovery *Discovery `yaml:"discovery" json:"discovery,omitempty"`
	// Balancer picks a target: p2c_ewma (default), round_robin, weighted,
	// least_conn, ip_hash, consistent_hash, random.
	Balancer string `yaml:"balancer" json:"balancer,omitempty"`
	// HashKey is what consistent_hash hashes: "ip" (default; the client
	// address, trusted-proxy aware), "path", "header:NAME" or "cookie:NAME".
	// ip_hash always hashes the client address.
	HashKey string `yaml:"hash_key" json:"hash_key,omitempty"`
	// HashKind ("ip", "path", "header", "cookie") and HashName are HashKey
	// parsed, filled by validation for consistent_hash.
	HashKind string `yaml:"-" json:"-"`
	HashName string `yaml:"-" json:"-"`
	// BoundedLoad, for the hash balancers, spills a key to the next target
	// when its own carries more than this x the average load (e.g. 1.25).
	// 0 (default) disables it.
	BoundedLoad float64 `yaml:"bounded_load" json:"bounded_load,omitempty"`
	// SlowStart ramps a target that comes back (healthy again, ejection or
	// circuit over) from 10% to its full share over this long. 0: off.
	SlowStart Duration `yaml:"slow_start" json:"slow_start,omitempty"`
	// ConnectTimeout bounds dialing a target. Default 2s.
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout,omitempty"`
	// ReadTimeout bounds each read from a target (waiting for the response
	// head, and each read of a streamed body). Default 30s.
	ReadTimeout Duration `yaml:"read_timeout" json:"read_timeout,omitempty"`
	// WriteTimeout bounds each write to a target. Default 30s.
	WriteTimeout Duration `yaml:"write_timeout" json:"write_timeout,omitempty"`
	// IdleTimeout closes pooled upstream connections idle this long. Keep it
	// below the upstream's own keep-alive timeout. Default 50s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
	// MaxConnections caps open connections per target. Default 1024.
	MaxConnections int `yaml:"max_connections" json:"max_connections,omitempty"`
	// MaxConnWait is how long a request waits for a free connection when
	// MaxConnections are busy, before 503. Default 1s.
	MaxConnWait Duration `yaml:"max_conn_wait" json:"max_conn_wait,omitempty"`
	// Health configures active health checks; nil: none.
	Health *HealthCheck `yaml:"health" json:"health,omitempty"`
	// Outlier configures passive outlier ejection (on by default).
	Outlier Outlier `yaml:"outlier" json:"outlier"`
	// PanicMode routes to unhealthy or ejected targets when no target is
	// usable, rather than failing every request. Default true. Open
	// circuits are respected either way.
	PanicMode *bool `yaml:"panic_mode" json:"panic_mode,omitempty"`
	// Circuit configures per-target circuit breakers; nil: none.
	Circuit *Circuit `yaml:"circuit" json:"circuit,omitempty"`
	// Retry configures retries (by default: one retry, on connect failures).
	Retry Retry `yaml:"retry" json:"retry"`
	// TLS configures how sluice speaks to the upstream's https:// targets
	// (static or discovered with scheme: https). nil: verify against the
	// system roots with the target's host as server name, no client
	// certificate.
	TLS *UpstreamTLS `yaml:"tls" json:"tls,omitempty"`

	// Name is the map key, filled in by Load.
	Name string `yaml:"-" json:"-"`
}

// RedirectHTTPS configures the plain-to-https redirect.
type RedirectHTTPS struct {
	// Port of the https URL. Default 443 (then left out of the URL).
	Port int `yaml:"port" json:"port,omitempty"`
}

// TLSListener is one data-plane listener that terminates TLS.
type TLSListener struct {
	// Listen is the address, e.g. ":8443". Required.
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// Name labels the listener in logs and metrics. Default: Listen.
	Name string `yaml:"name" json:"name,omitempty"`
	// Certificates are chosen by the SNI name a client sends: the first
	// whose certificate names it (exactly or by wildcard); the first of
	// all when none does or the client sends none. At least one.
	Certificates []CertificateFiles `yaml:"certificates" json:"certificates,omitempty"`
	// ClientAuth asks clients for a certificate; nil: none is asked for.
	ClientAuth *ClientAuth `yaml:"client_auth" json:"client_auth,omitempty"`
	// ACMEHosts get certificates from the CA of the acme block, obtained
	// and renewed automatically. A client asking for one of these names
	// (SNI) gets its ACME certificate; any other name is served from
	// Certificates as usual. Names only: no wildcards (they need DNS-01),
	// and no certificate is ever ordered for a name not listed here.
	ACMEHosts []string `yaml:"acme_hosts" json:"acme_hosts,omitempty"`
	// TicketKeysFile holds session ticket keys shared by several
	// instances (tls_tickets.go): resumption then survives a hop between
	// instances. nil/empty: crypto/tls's own keys, rotated daily.
	TicketKeysFile string `yaml:"ticket_keys_file" json:"ticket_keys_file,omitempty"`
}

// ACME obtains and renews certificates for listen_tls acme_hosts through
// an ACME CA (Let's Encrypt by default) with certmagic.
type ACME struct {
	// Email is the ACME account's contact. Recommended (the CA writes
	// about expiry and problems); may be empty.
	Email string `yaml:"email" json:"email,omitempty"`
	// CA is the ACME directory URL. Default Let's Encrypt production,
	// https://acme-v02.api.letsencrypt.org/directory.
	CA string `yaml:"ca" json:"ca,omitempty"`
	// CARootFile is a PEM bundle trusted for the CA's own HTTPS (a
	// private CA such as pebble or step-ca). Default: the system roots.
	CARootFile string `yaml:"ca_root_file" json:"ca_root_file,omitempty"`
	// AgreeTerms agrees to the CA's terms of service. Required: true.
	AgreeTerms bool `yaml:"agree_terms" json:"agree_terms,omitempty"`
	// Challenges to use: http-01 (answered on the plain listener, port
	// 80 in production) and tls-alpn-01 (on the TLS listener, port 443).
	// Default both.
	Challenges []string `yaml:"challenges" json:"challenges,omitempty"`
	// Storage keeps accounts, certificates, keys and locks.
	Storage ACMEStorage `yaml:"storage" json:"storage"`
	// RenewCheck is how often certificates are checked for renewal (they
	// renew when a third of their lifetime is left). Default 10m.
	RenewCheck Duration `yaml:"renew_check" json:"renew_check,omitempty"`
}

// ACMEStorage is where ACME state lives.
type ACMEStorage struct {
	// Type: file (default; one instance, or several on a shared file
	// system) or redis (the redis block: several instances, one of them
	// orders a certificate and all serve it).
	Type string `yaml:"type" json:"type,omitempty"`
	// Dir of the file storage. Default "acme" next to the config file.
	Dir string `yaml:"dir" json:"dir,omitempty"`
	// Prefix of the redis keys. Default "sluice:acme".
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
}

// ClientAuth is how a TLS listener treats client certificates.
type ClientAuth struct {
	// Mode: "request" (a certificate is optional; one that is sent must
	// verify) or "require" (the handshake fails without a verified one).
	// Routes with auth: mtls refuse requests without one either way.
	Mode string `yaml:"mode" json:"mode,omitempty"`
	// CAFile is a PEM bundle of the CAs client certificates must chain to.
	// Required. Reloaded with the certificates.
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
}

// CertificateFiles is a certificate (PEM, leaf first, then the chain) and
// its private key.
type CertificateFiles struct {
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
}

// UpstreamTLS is the client side of TLS to an upstream's targets. File
// names are resolved like every other (relative to the config file) and
// read again on every reload, so a renewed CA bundle or client certificate
// takes effect on reload.
type UpstreamTLS struct {
	// ServerName is sent as SNI and checked against the target's
	// certificate. Default: the target's host. Set it for discovered
	// targets (their host is an address).
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// CAFile is a PEM bundle of the CAs the targets' certificates must
	// chain to. Default: the system roots.
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// CertFile and KeyFile are the client certificate (and its key)
	// presented to targets that ask for one (mTLS). Both or neither.
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
	// InsecureSkipVerify accepts any certificate: no chain, no name, no
	// expiry check. An explicit opt-in, logged as a warning at start.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// HealthCheck is an active HTTP health check, run against every target.
type HealthCheck struct {
	// Path to GET, e.g. /healthz. Required.
	Path string `yaml:"path" json:"path,omitempty"`
	// Host header to send; default the target's host:port.
	Host string `yaml:"host" json:"host,omitempty"`
	// Interval between checks. Default 5s; each wait is jittered by +-Jitter.
	Interval Duration `yaml:"interval" json:"interval,omitempty"`
	// Jitter is the fraction (0..1) by which intervals vary, so checks of
	// many gateways don't arrive in step. Default 0.1.
	Jitter float64 `yaml:"jitter" json:"jitter,omitempty"`
	// Timeout for one check. Default 1s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// ExpectStatus is the passing status range, "200-399" (default) or "200".
	ExpectStatus string `yaml:"expect_status" json:"expect_status,omitempty"`
	// StatusLo and StatusHi are ExpectStatus parsed, filled by validation.
	StatusLo int `yaml:"-" json:"-"`
	StatusHi int `yaml:"-" json:"-"`
	// Healthy consecutive passes to mark an unhealthy target healthy. Default 2.
	Healthy int `yaml:"healthy" json:"healthy,omitempty"`
	// Unhealthy consecutive failures to mark a target unhealthy. Default 3.
	Unhealthy int `yaml:"unhealthy" json:"unhealthy,omitempty"`
}

// Outlier is passive outlier detection: a target whose requests fail in a
// row (5xx answers, connect errors, timeouts, resets) is ejected for a time
// that grows with each ejection.
type Outlier struct {
	// ConsecutiveFailures that eject a target. Default 5; -1 disables.
	ConsecutiveFailures int `yaml:"consecutive_failures" json:"consecutive_failures,omitempty"`
	// BaseEjection is the first ejection's length; the nth lasts n x this.
	// Default 10s.
	BaseEjection Duration `yaml:"base_ejection" json:"base_ejection,omitempty"`
	// MaxEjection caps an ejection. Default 5m.
	MaxEjection Duration `yaml:"max_ejection" json:"max_ejection,omitempty"`
	// MaxEjectionPercent of the upstream's targets may be ejected at once.
	// Default 50.
	MaxEjectionPercent int `yaml:"max_ejection_percent" json:"max_ejection_percent,omitempty"`
}

// Circuit is a per-target circuit breaker: closed -> open after Failures
// consecutive failures or a FailureRatio over Window; open -> half-open
// after OpenFor; half-open admits HalfOpenRequests trial requests and
// closes after Successes of them succeed; any failure re-opens it.
type Circuit struct {
	Failures         int      `yaml:"failures" json:"failures,omitempty"`                     // default 5
	FailureRatio     float64  `yaml:"failure_ratio" json:"failure_ratio,omitempty"`           // 0..1; 0 (default): off
	Window           Duration `yaml:"window" json:"window,omitempty"`                         // default 10s
	MinRequests      int      `yaml:"min_requests" json:"min_requests,omitempty"`             // before the ratio counts; default 20
	OpenFor          Duration `yaml:"open_for" json:"open_for,omitempty"`                     // default 30s
	HalfOpenRequests int      `yaml:"half_open_requests" json:"half_open_requests,omitempty"` // default 3
	Successes        int      `yaml:"successes" json:"successes,omitempty"`                   // default 2
}

// Retry is an upstream's retry policy.
type Retry struct {
	// Attempts is the most tries a request gets, the first included.
	// Default 2 (one retry); 1 disables retries.
	Attempts int `yaml:"attempts" json:"attempts,omitempty"`
	// PerTryTimeout bounds each try; default: what is left of the route's
	// timeout, which bounds all tries together.
	PerTryTimeout Duration `yaml:"per_try_timeout" json:"per_try_timeout,omitempty"`
	// Backoff before the first retry. Default 25ms.
	Backoff Duration `yaml:"backoff" json:"backoff,omitempty"`
	// Multiplier grows the backoff per retry. Default 2.
	Multiplier float64 `yaml:"multiplier" json:"multiplier,omitempty"`
	// MaxBackoff caps it. Default 1s.
	MaxBackoff Duration `yaml:"max_backoff" json:"max_backoff,omitempty"`
	// Jitter is the fraction (0..1) by which a backoff varies. Default 0.2.
	Jitter float64 `yaml:"jitter" json:"jitter,omitempty"`
	// On lists what is retried: connect, timeout, reset, 502, 503, 504 (any
	// 5xx code may be named). Default [connect].
	On []string `yaml:"on" json:"on,omitempty"`
	// Budget caps retries at this fraction of the upstream's requests over
	// the last 10s (Envoy's retry budget). Default 0.2.
	Budget float64 `yaml:"budget" json:"budget,omitempty"`
	// MinRetriesPerSecond are allowed whatever the budget says, so a quiet
	// upstream can still retry. Default 3.
	MinRetriesPerSecond int `yaml:"min_retries_per_second" json:"min_retries_per_second,omitempty"`
}

// Target is one backend of an upstream.
type Target struct {
	// URL is "http://host:port" (no path). Required.
	URL string `yaml:"url" json:"url,omitempty"`
	// Weight for the weighted balancer. Default 1.
	Weight int `yaml:"weight" json:"weight,omitempty"`
}

// Route maps matching requests to an upstream.
type Route struct {
	// Name identifies the route in logs and metrics. Required, unique.
	Name string `yaml:"name" json:"name,omitempty"`
	// Match says which requests this route takes.
	Match Match `yaml:"match" json:"match,omitempty"`
	// Upstream names an entry of Config.Upstreams. Required.
	Upstream string `yaml:"upstream" json:"upstream,omitempty"`
	// Rewrite changes the path before forwarding.
	Rewrite Rewrite `yaml:"rewrite" json:"rewrite,omitempty"`
	// RequestHeaders are changed before forwarding.
	RequestHeaders HeaderOps `yaml:"request_headers" json:"request_headers,omitempty"`
	// ResponseHeaders are changed before answering.
	ResponseHeaders HeaderOps `yaml:"response_headers" json:"response_headers,omitempty"`
	// Timeout bounds the whole upstream exchange up to the response head.
	// Default: the upstream's read timeout.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// HostHeader is what the upstream sees as Host: "preserve" (default, the
	// client's Host), "target" (the target's host:port), or a literal host.
	HostHeader string `yaml:"host_header" json:"host_header,omitempty"`
	// RateLimit limits the route (default: limits.default, if set).
	RateLimit *RateLimit `yaml:"rate_limit" json:"rate_limit,omitempty"`
	// Quota caps requests per key over a long period (e.g. 1000 a day).
	Quota *Quota `yaml:"quota" json:"quota,omitempty"`
	// Auth is who may call the route: none (default, public), jwt, api_key
	// or any (either).
	Auth string `yaml:"auth" json:"auth,omitempty"`
	// Roles the caller must have (403 otherwise); RolesMatch says whether
	// any (default) or all of them.
	Roles      []string `yaml:"roles" json:"roles,omitempty"`
	RolesMatch string   `yaml:"roles_match" json:"roles_match,omitempty"`
	// Path overrides server.path for this route: escaped_slashes only
	// (slash merging must be the same for every route, since it decides
	// which route a path matches).
	Path RoutePath `yaml:"path" json:"path,omitempty"`
	// CORS replaces the top-level cors block for this route (enabled:
	// false turns it off).
	CORS *CORS `yaml:"cors" json:"cors,omitempty"`
	// SecurityHeaders changes the top-level security_headers for this
	// route: its preset, then the fields it writes.
	SecurityHeaders *SecurityHeaders `yaml:"security_headers" json:"security_headers,omitempty"`
	// IPFilter is checked after the top-level one: both must admit.
	IPFilter *IPFilter `yaml:"ip_filter" json:"ip_filter,omitempty"`
	// Compression replaces the top-level compression block for this route
	// (enabled: false turns it off).
	Compression *Compression `yaml:"compression" json:"compression,omitempty"`
	// RequestDecompression replaces the top-level request_decompression
	// block for this route (enabled: false turns it off).
	RequestDecompression *RequestDecompression `yaml:"request_decompression" json:"request_decompression,omitempty"`
	// MaxBodyBytes overrides server.max_body_bytes for this route's
	// request bodies (413 above it). 0: the server's.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// MaxResponseBytes caps the upstream's answer body: a larger buffered
	// answer (or one declaring a larger Content-Length) becomes a 502; a
	// streamed one is cut at the limit and the client's connection closed.
	// Both are logged. 0: no limit.
	MaxResponseBytes ByteSize `yaml:"max_response_bytes" json:"max_response_bytes,omitempty"`
	// Split sends the route's requests to several upstreams by weight,
	// instead of Upstream (split.go).
	Split []SplitBackend `yaml:"split" json:"split,omitempty"`
	// SplitOverride ("header:NAME" or "cookie:NAME") lets a request pick a
	// split's upstream by name: when its value names one, that one is used.
	SplitOverride string `yaml:"split_override" json:"split_override,omitempty"`
	// SplitKey makes the split sticky: "ip", "header:NAME" or
	// "cookie:NAME" is hashed, so the same value always goes to the same
	// upstream; a weight change moves a value from j to k only when w_k/w_j
	// grew (weighted rendezvous, edge/split.go). Default none: each request
	// is drawn at random; a request without the key is too.
	SplitKey string `yaml:"split_key" json:"split_key,omitempty"`
	// Mirror sends a sampled copy of the route's requests to a shadow
	// upstream, whose answers are dropped (mirror.go). nil: none.
	Mirror *Mirror `yaml:"mirror" json:"mirror,omitempty"`
	// WebSocket lets the route pass WebSocket upgrades (RFC 6455) through
	// to its upstream. Nil (the default): an upgrade request is refused
	// with 400.
	WebSocket *WebSocket `yaml:"websocket" json:"websocket,omitempty"`
	// Streaming flushes every streamed answer to the client as the
	// upstream sends it (head first, then each chunk), as is always done
	// for text/event-stream. Default false: other streamed answers are
	// written through the server's 16 KiB write buffer.
	Streaming bool `yaml:"streaming" json:"streaming,omitempty"`
	// Cache stores the route's answers and serves them again, as RFC 9111
	// allows (cache.go, README "Response cache"). nil: no caching.
	Cache *RouteCache `yaml:"cache" json:"cache,omitempty"`
}

// Mirror copies requests to a shadow upstream, fire-and-forget: the
// client's answer never waits for it, and a slow or failing shadow changes
// nothing for the client.
type Mirror struct {
	// Upstream names the shadow, an entry of Config.Upstreams. Required.
	Upstream string `yaml:"upstream" json:"upstream,omitempty"`
	// Sample is the share of requests copied, 0..1. Default 1 (all).
	Sample *float64 `yaml:"sample" json:"sample,omitempty"`
	// MaxBodyBytes: requests with a larger body (or a streamed one) are
	// not copied. Default 64KiB.
	MaxBodyBytes ByteSize `yaml:"max_body_bytes" json:"max_body_bytes,omitempty"`
	// MaxConcurrent bounds the copies in flight; above it a copy is
	// dropped, never queued. Default 16.
	MaxConcurrent int `yaml:"max_concurrent" json:"max_concurrent,omitempty"`
	// Timeout bounds one copy's exchange. Default 5s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// SplitBackend is one upstream of a route's split.
type SplitBackend struct {
	// Upstream names an entry of Config.Upstreams. Required.
	Upstream string `yaml:"upstream" json:"upstream,omitempty"`
	// Weight is its share: weight / the sum of the split's weights. 0
	// takes no share (only requests that override to it). 0..10000.
	Weight int `yaml:"weight" json:"weight"`
}

// WebSocket is a route's websocket block ("websocket: true" is short for
// "websocket: { enabled: true }"). Each upgraded connection is a
// tunnel: sluice relays bytes both ways on a connection of its own to the
// target, outside the upstream's connection pool.
type WebSocket struct {
	// Enabled turns upgrades on. Default true once the block is present.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// IdleTimeout closes a tunnel that carried no byte in either direction
	// for this long. Default 5m.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
	// MaxLifetime closes a tunnel this long after it opened, busy or not.
	// Default 24h.
	MaxLifetime Duration `yaml:"max_lifetime" json:"max_lifetime,omitempty"`
	// MaxTunnels caps the route's open tunnels; an upgrade beyond it is
	// answered 503. Default 10000.
	MaxTunnels int `yaml:"max_tunnels" json:"max_tunnels,omitempty"`
}

// On reports whether the route takes upgrades.
func (w *WebSocket) On() bool { return w != nil && (w.Enabled == nil || *w.Enabled) }

// WebSocket defaults.
const (
	DefaultWebSocketIdle     = 5 * time.Minute
	DefaultWebSocketLifetime = 24 * time.Hour
	DefaultWebSocketTunnels  = 10000
)

// Match selects requests. Exactly one of Prefix, Path and Regex is
// required.
type Match struct {
	// Prefix matches normalised paths starting with it (see server.path);
	// it must be written in normalised form itself.
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// Path matches exactly this normalised path (query excluded).
	Path string `yaml:"path" json:"path,omitempty"`
	// Methods allowed; empty means any. A path match with the wrong method
	// answers 405 when no other route takes the request.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Host matches the Host header (port ignored, case-insensitive).
	// "*.example.com" matches one or more leading labels. Empty: any host.
	Host string `yaml:"host" json:"host,omitempty"`
	// Regex matches the normalised path against an RE2 expression (Go's
	// regexp; anchor it with ^ and $ to match the whole path). Its named
	// groups, (?P<id>[0-9]+), can be used as {id} in
	// rewrite.replace_path. Excludes prefix and path.
	Regex string `yaml:"regex" json:"regex,omitempty"`
	// Headers, Query and Cookies must all match as well: each maps a name
	// (a header name is case-insensitive; a query parameter's name and
	// value are compared percent-decoded) to "value" (exactly that), "*"
	// (present, any value) or "~regex" (an RE2 expression the value must
	// match; anchor it yourself). The first line or parameter of a name
	// counts.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	Query   map[string]string `yaml:"query" json:"query,omitempty"`
	Cookies map[string]string `yaml:"cookies" json:"cookies,omitempty"`
}

// Rewrite changes the forwarded path. StripPrefix runs before AddPrefix;
// ReplacePath replaces the whole path and excludes both.
type Rewrite struct {
	StripPrefix string `yaml:"strip_prefix" json:"strip_prefix,omitempty"`
	AddPrefix   string `yaml:"add_prefix" json:"add_prefix,omitempty"`
	ReplacePath string `yaml:"replace_path" json:"replace_path,omitempty"`
}

// HeaderOps removes then sets headers.
type HeaderOps struct {
	Set    map[string]string `yaml:"set" json:"set,omitempty"`
	Remove []string          `yaml:"remove" json:"remove,omitempty"`
}

// Defaults. Exported so docs and tests can name them.
const (
	DefaultListen          = ":8080"
	DefaultAdminListen     = "127.0.0.1:9901"
	DefaultSessionTTL      = 8 * time.Hour
	DefaultReadTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
	DefaultIdleTimeout     = 90 * time.Second
	DefaultMaxHeaderBytes  = 16 << 10
	DefaultMaxBodyBytes    = 10 << 20
	DefaultBufferBodyBytes = 1 << 20
	// DefaultBufferResponseBytes keeps small answers on the zero-allocation
	// buffered path (one write to the client) and streams the rest.
	DefaultBufferResponseBytes = 64 << 10
	// MaxBufferResponseBytes: a buffered answer costs its whole size for
	// as long as its client takes to read it.
	MaxBufferResponseBytes = 16 << 20
	DefaultMaxConnections  = 10000
	DefaultShutdownTimeout = 15 * time.Second
	DefaultWebSocketDrain  = time.Hour

	DefaultBalancer           = "p2c_ewma"
	DefaultConnectTimeout     = 2 * time.Second
	DefaultUpstreamIdle       = 50 * time.Second
	DefaultUpstreamMaxConns   = 1024
	DefaultUpstreamConnWait   = time.Second
	DefaultHostHeaderPreserve = "preserve"
	DefaultEscapedSlashes     = "reject"
)

// DefaultRedactHeaders are the headers whose configured values
// /admin/config hides when admin.redact_headers is not set; the API key
// header (auth.api_keys.header) is added to them.
var DefaultRedactHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie"}

// Resolve makes a path named in the config absolute: relative to the
// config file's directory, or to the working directory for a config that
// came from Consul KV (it has no directory).
func (c *Config) Resolve(path string) string {
	if path == "" || filepath.IsAbs(path) || c.Source == "" || strings.HasPrefix(c.Source, "consul:") {
		return path
	}
	return filepath.Join(filepath.Dir(c.Source), path)
}

// PathOptions are the pathnorm.Options for requests that r matches: the
// server's slash merging and the route's escaped_slashes. With r nil, the
// server's own (for normalising before a route is known). Call it on a
// config Load returned (defaulted and valid).
func (c *Config) PathOptions(r *Route) pathnorm.Options {
	action := c.Server.Path.EscapedSlashes
	if r != nil && r.Path.EscapedSlashes != "" {
		action = r.Path.EscapedSlashes
	}
	a, _ := pathnorm.ParseAction(action) // validated by Load
	return pathnorm.Options{KeepEmptySegments: !c.Server.Path.Merge(), EscapedSlashes: a}
}

// applyDefaults fills every zero field with its default.
func (c *Config) applyDefaults() {
	setStr(&c.Listen, DefaultListen)
	setStr(&c.Admin.Listen, DefaultAdminListen)
	setStr(&c.Admin.Username, "admin")
	setDur(&c.Admin.SessionTTL, DefaultSessionTTL)
	setStr(&c.AccessLog.Output, "stdout")
	if c.AccessLog.Sample == nil {
		all := 1.0
		c.AccessLog.Sample = &all
	}
	setInt(&c.AccessLog.Buffer, 8192)
	if c.Tracing.Sample == nil {
		r := 0.01
		c.Tracing.Sample = &r
	}
	setStr(&c.Tracing.ServiceName, "sluice")
	s := &c.Server
	setDur(&s.ReadTimeout, DefaultReadTimeout)
	setDur(&s.WriteTimeout, DefaultWriteTimeout)
	setDur(&s.IdleTimeout, DefaultIdleTimeout)
	setSize(&s.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setSize(&s.MaxBodyBytes, DefaultMaxBodyBytes)
	setSize(&s.BufferBodyBytes, DefaultBufferBodyBytes)
	setStr(&s.HeadersWithUnderscores, "drop")
	setSize(&s.BufferResponseBytes, DefaultBufferResponseBytes)
	if s.MaxConnections == 0 {
		s.MaxConnections = DefaultMaxConnections
	}
	setDur(&s.ShutdownTimeout, DefaultShutdownTimeout)
	setDur(&s.WebSocketDrain, DefaultWebSocketDrain)
	if s.Path.MergeSlashes == nil {
		yes := true
		s.Path.MergeSlashes = &yes
	}
	setStr(&s.Path.EscapedSlashes, DefaultEscapedSlashes)
	if s.ServicesHealth == nil {
		yes := true
		s.ServicesHealth = &yes
	}
	if c.Metrics.Enabled == nil {
		yes := true
		c.Metrics.Enabled = &yes
	}
	if c.Admin.Auth == nil {
		yes := true
		c.Admin.Auth = &yes
	}
	for name, u := range c.Upstreams {
		if u == nil {
			continue
		}
		u.Name = name
		if d := u.Discovery; d != nil && d.Consul != nil {
			if c.Consul == nil {
				c.Consul = &Consul{Implied: true}
			}
			if d.Consul.PassingOnly == nil {
				yes := true
				d.Consul.PassingOnly = &yes
			}
			setStr(&d.Consul.Scheme, "http")
			setStr(&d.Consul.Datacenter, c.Consul.Datacenter)
		}
		setStr(&u.Balancer, DefaultBalancer)
		setDur(&u.ConnectTimeout, DefaultConnectTimeout)
		setDur(&u.ReadTimeout, DefaultReadTimeout)
		setDur(&u.WriteTimeout, DefaultWriteTimeout)
		setDur(&u.IdleTimeout, DefaultUpstreamIdle)
		if u.MaxConnections == 0 {
			u.MaxConnections = DefaultUpstreamMaxConns
		}
		setDur(&u.MaxConnWait, DefaultUpstreamConnWait)
		if u.Balancer == "consistent_hash" && u.HashKey == "" {
			u.HashKey = "ip"
		}
		if u.PanicMode == nil {
			yes := true
			u.PanicMode = &yes
		}
		if h := u.Health; h != nil {
			setDur(&h.Interval, 5*time.Second)
			setDur(&h.Timeout, time.Second)
			setStr(&h.ExpectStatus, "200-399")
			setInt(&h.Healthy, 2)
			setInt(&h.Unhealthy, 3)
			if h.Jitter == 0 {
				h.Jitter = 0.1
			}
		}
		o := &u.Outlier
		setInt(&o.ConsecutiveFailures, 5)
		setDur(&o.BaseEjection, 10*time.Second)
		setDur(&o.MaxEjection, 5*time.Minute)
		setInt(&o.MaxEjectionPercent, 50)
		if c := u.Circuit; c != nil {
			setInt(&c.Failures, 5)
			setDur(&c.Window, 10*time.Second)
			setInt(&c.MinRequests, 20)
			setDur(&c.OpenFor, 30*time.Second)
			setInt(&c.HalfOpenRequests, 3)
			setInt(&c.Successes, 2)
		}
		r := &u.Retry
		setInt(&r.Attempts, 2)
		setDur(&r.Backoff, 25*time.Millisecond)
		setDur(&r.MaxBackoff, time.Second)
		if r.Multiplier == 0 {
			r.Multiplier = 2
		}
		if r.Jitter == 0 {
			r.Jitter = 0.2
		}
		if r.On == nil {
			r.On = []string{"connect"}
		}
		if r.Budget == 0 {
			r.Budget = 0.2
		}
		setInt(&r.MinRetriesPerSecond, 3)
		for i := range u.Targets {
			if u.Targets[i].Weight == 0 {
				u.Targets[i].Weight = 1
			}
		}
	}
	if c.Consul != nil { // after the upstreams: discovery may imply the block
		setDur(&c.Consul.Wait, 5*time.Minute)
	}
	if j := c.Auth.JWT; j != nil {
		setDur(&j.Leeway, 30*time.Second)
		setStr(&j.RolesClaim, "roles")
		setInt(&j.CacheSize, 10000)
		if k := j.JWKS; k != nil {
			setDur(&k.Refresh, 5*time.Minute)
			setDur(&k.MinRefreshInterval, 30*time.Second)
			setDur(&k.Timeout, 5*time.Second)
		}
	}
	setStr(&c.Auth.APIKeys.Header, "X-API-Key")
	setStr(&c.Auth.MTLS.SubjectHeader, "X-Client-Subject")
	setStr(&c.Auth.MTLS.FingerprintHeader, "X-Client-Cert-SHA256")
	if c.Admin.RedactHeaders == nil {
		c.Admin.RedactHeaders = slices.Clone(DefaultRedactHeaders)
		if !slices.ContainsFunc(DefaultRedactHeaders, func(h string) bool { return strings.EqualFold(h, c.Auth.APIKeys.Header) }) {
			c.Admin.RedactHeaders = append(c.Admin.RedactHeaders, c.Auth.APIKeys.Header)
		}
	}
	if c.Auth.APIKeys.Bearer == nil {
		yes := true
		c.Auth.APIKeys.Bearer = &yes
	}
	setStr(&c.Auth.APIKeys.File, "apikeys.json")
	setStr(&c.Auth.APIKeys.Store, "file")
	if c.Redis != nil {
		setDur(&c.Redis.Timeout, 50*time.Millisecond)
	}
	if a := c.ACME; a != nil {
		setStr(&a.CA, "https://acme-v02.api.letsencrypt.org/directory")
		if len(a.Challenges) == 0 {
			a.Challenges = []string{"http-01", "tls-alpn-01"}
		}
		setStr(&a.Storage.Type, "file")
		setStr(&a.Storage.Dir, "acme")
		setStr(&a.Storage.Prefix, "sluice:acme")
		setDur(&a.RenewCheck, 10*time.Minute)
	}
	defaultLimit := func(l *RateLimit) {
		if l == nil {
			return
		}
		setDur(&l.Per, time.Second)
		setInt(&l.Burst, l.Rate)
		setStr(&l.Scope, "local")
		if len(l.Key) == 0 {
			l.Key = StringList{"ip"}
		}
	}
	defaultLimit(c.Limits.Default)
	c.Compression.defaults()
	c.RequestDecompression.defaults()
	c.cacheDefaults()
	setInt(&c.Limits.Instances, 1)
	setStr(&c.Limits.QuotaFile, "quotas.json")
	for _, r := range c.Routes {
		if r == nil {
			continue
		}
		defaultLimit(r.RateLimit)
		r.Compression.defaults()
		r.RequestDecompression.defaults()
		if m := r.Mirror; m != nil {
			if m.Sample == nil {
				all := 1.0
				m.Sample = &all
			}
			setSize(&m.MaxBodyBytes, 64<<10)
			setInt(&m.MaxConcurrent, 16)
			setDur(&m.Timeout, 5*time.Second)
		}
		if q := r.Quota; q != nil {
			setDur(&q.Per, 24*time.Hour)
			if len(q.Key) == 0 {
				q.Key = StringList{"api_key"}
			}
		}
		setStr(&r.HostHeader, DefaultHostHeaderPreserve)
		setStr(&r.Path.EscapedSlashes, s.Path.EscapedSlashes)
		setStr(&r.Auth, "none")
		setStr(&r.RolesMatch, "any")
		if w := r.WebSocket; w != nil {
			setDur(&w.IdleTimeout, DefaultWebSocketIdle)
			setDur(&w.MaxLifetime, DefaultWebSocketLifetime)
			setInt(&w.MaxTunnels, DefaultWebSocketTunnels)
		}
		if r.Timeout == 0 {
			name := r.Upstream
			if name == "" && len(r.Split) > 0 {
				name = r.Split[0].Upstream
			}
			if u := c.Upstreams[name]; u != nil {
				r.Timeout = u.ReadTimeout
			}
		}
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}

func setSize(p *ByteSize, v int64) {
	if *p == 0 {
		*p = ByteSize(v)
	}
}

// ConsoleSessionCookie names the web console's session cookie. The admin
// listener sets it; the data plane removes it from the Cookie header it
// forwards, since browsers send a host's cookies to all of its ports
// (RFC 6265 section 8.5) and an upstream must not see an admin session.
const ConsoleSessionCookie = "sluice_session"
