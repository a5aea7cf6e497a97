// Package config is sluice's configuration: the YAML schema, ${VAR}
// expansion, strict decoding, defaults and validation.
//
// Invariants:
//   - Load either returns a complete, defaulted, valid *Config or an error
//     listing every problem as "file:line: field: message". A caller never
//     sees a half-valid config.
//   - Decoding is strict: an unknown field is an error naming its line.
//   - Nothing here touches the network or the request path; the values are
//     plain data that edge compiles into a snapshot.
package config

import "time"

// Config is the whole gateway configuration, as decoded from one YAML
// document.
type Config struct {
	// Listen is the data-plane address. Default ":8080".
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// Server holds the data-plane limits and timeouts.
	Server Server `yaml:"server" json:"server,omitempty"`
	// Admin is the separate admin listener.
	Admin Admin `yaml:"admin" json:"admin,omitempty"`
	// Upstreams by name; routes refer to them by that name.
	Upstreams map[string]*Upstream `yaml:"upstreams" json:"upstreams,omitempty"`
	// Routes are matched by host, then exact path, then longest prefix.
	Routes []*Route `yaml:"routes" json:"routes,omitempty"`

	// Source is where this config came from (a file path), used in errors
	// and /info. Not part of the YAML.
	Source string `yaml:"-" json:"source"`
}

// Server holds data-plane server settings. Zero values take the defaults
// documented on each field.
type Server struct {
	// ReadTimeout bounds reading a request's headers (and a buffered body).
	// Default 30s.
	ReadTimeout Duration `yaml:"read_timeout" json:"read_timeout,omitempty"`
	// WriteTimeout bounds writing a response to the client. Default 30s.
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
	// BufferBodyBytes is the largest body (request or response) held in
	// memory whole; larger ones stream through. Default 1MiB.
	BufferBodyBytes ByteSize `yaml:"buffer_body_bytes" json:"buffer_body_bytes,omitempty"`
	// MaxConnections caps concurrent client connections. Default 10000.
	MaxConnections int `yaml:"max_connections" json:"max_connections,omitempty"`
	// ShutdownTimeout is how long in-flight requests may run after SIGTERM.
	// Default 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout" json:"shutdown_timeout,omitempty"`
	// TrustedProxies are CIDRs (or bare IPs) whose X-Forwarded-For is
	// extended instead of replaced. Default none: every client's
	// X-Forwarded-For is replaced by its address.
	TrustedProxies []string `yaml:"trusted_proxies" json:"trusted_proxies,omitempty"`
}

// Admin is the admin listener.
type Admin struct {
	// Listen is the admin address. Default "127.0.0.1:9901" (loopback only).
	// "off" disables the admin listener.
	Listen string `yaml:"listen" json:"listen,omitempty"`
}

// Upstream is a named group of targets.
type Upstream struct {
	// Targets are the backends. At least one is required.
	Targets []Target `yaml:"targets" json:"targets,omitempty"`
	// Balancer picks a target: round_robin (default), weighted, random.
	Balancer string `yaml:"balancer" json:"balancer,omitempty"`
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

	// Name is the map key, filled in by Load.
	Name string `yaml:"-" json:"-"`
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
}

// Match selects requests. Prefix and Path are mutually exclusive; exactly
// one is required.
type Match struct {
	// Prefix matches paths starting with it (byte-exact, no decoding).
	Prefix string `yaml:"prefix" json:"prefix,omitempty"`
	// Path matches exactly this path (query excluded).
	Path string `yaml:"path" json:"path,omitempty"`
	// Methods allowed; empty means any. A path match with the wrong method
	// answers 405 when no other route takes the request.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Host matches the Host header (port ignored, case-insensitive).
	// "*.example.com" matches one or more leading labels. Empty: any host.
	Host string `yaml:"host" json:"host,omitempty"`
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
	DefaultReadTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
	DefaultIdleTimeout     = 90 * time.Second
	DefaultMaxHeaderBytes  = 16 << 10
	DefaultMaxBodyBytes    = 10 << 20
	DefaultBufferBodyBytes = 1 << 20
	DefaultMaxConnections  = 10000
	DefaultShutdownTimeout = 15 * time.Second

	DefaultBalancer           = "round_robin"
	DefaultConnectTimeout     = 2 * time.Second
	DefaultUpstreamIdle       = 50 * time.Second
	DefaultUpstreamMaxConns   = 1024
	DefaultUpstreamConnWait   = time.Second
	DefaultHostHeaderPreserve = "preserve"
)

// applyDefaults fills every zero field with its default.
func (c *Config) applyDefaults() {
	setStr(&c.Listen, DefaultListen)
	setStr(&c.Admin.Listen, DefaultAdminListen)
	s := &c.Server
	setDur(&s.ReadTimeout, DefaultReadTimeout)
	setDur(&s.WriteTimeout, DefaultWriteTimeout)
	setDur(&s.IdleTimeout, DefaultIdleTimeout)
	setSize(&s.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setSize(&s.MaxBodyBytes, DefaultMaxBodyBytes)
	setSize(&s.BufferBodyBytes, DefaultBufferBodyBytes)
	if s.MaxConnections == 0 {
		s.MaxConnections = DefaultMaxConnections
	}
	setDur(&s.ShutdownTimeout, DefaultShutdownTimeout)
	for name, u := range c.Upstreams {
		if u == nil {
			continue
		}
		u.Name = name
		setStr(&u.Balancer, DefaultBalancer)
		setDur(&u.ConnectTimeout, DefaultConnectTimeout)
		setDur(&u.ReadTimeout, DefaultReadTimeout)
		setDur(&u.WriteTimeout, DefaultWriteTimeout)
		setDur(&u.IdleTimeout, DefaultUpstreamIdle)
		if u.MaxConnections == 0 {
			u.MaxConnections = DefaultUpstreamMaxConns
		}
		setDur(&u.MaxConnWait, DefaultUpstreamConnWait)
		for i := range u.Targets {
			if u.Targets[i].Weight == 0 {
				u.Targets[i].Weight = 1
			}
		}
	}
	for _, r := range c.Routes {
		if r == nil {
			continue
		}
		setStr(&r.HostHeader, DefaultHostHeaderPreserve)
		if r.Timeout == 0 {
			if u := c.Upstreams[r.Upstream]; u != nil {
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
