package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicegw/sluice/edge/pathnorm"
	"github.com/sluicegw/sluice/lb"
)

// hopByHop headers can't be set or removed by config: the proxy owns them.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true,
	"proxy-authenticate": true, "proxy-authorization": true, "te": true,
	"trailer": true, "transfer-encoding": true, "upgrade": true,
	"content-length": true, "host": true,
}

type validator struct{ errs Errors }

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// validate checks a defaulted config and returns every problem. Lines are
// filled in by Parse from the field paths.
func (c *Config) validate() Errors {
	v := &validator{}
	if c.Listen == "off" {
		if len(c.ListenTLS) == 0 {
			v.add("listen", "off needs at least one listen_tls listener")
		}
	} else {
		v.listenAddr("listen", c.Listen)
	}
	if r := c.Server.RedirectHTTPS; r != nil && (r.Port < 0 || r.Port > 65535) {
		v.add("server.redirect_https.port", "want 1..65535, got %d", r.Port)
	}
	tlsNames := map[string]bool{}
	for i, l := range c.ListenTLS {
		p := fmt.Sprintf("listen_tls[%d]", i)
		v.listenAddr(p+".listen", l.Listen)
		if (l.Listen == c.Listen || l.Listen == c.Admin.Listen) && !strings.HasSuffix(l.Listen, ":0") {
			v.add(p+".listen", "%q is already used by another listener", l.Listen)
		}
		name := l.Name
		if name == "" {
			name = l.Listen
		}
		if tlsNames[name] {
			v.add(p+".name", "%q names two TLS listeners", name)
		}
		tlsNames[name] = true
		if len(l.Certificates) == 0 && len(l.ACMEHosts) == 0 {
			v.add(p+".certificates", "at least one certificate is required (or acme_hosts)")
		}
		v.acmeHosts(c, p, l.ACMEHosts)
		for j, cf := range l.Certificates {
			if cf.CertFile == "" || cf.KeyFile == "" {
				v.add(fmt.Sprintf("%s.certificates[%d]", p, j), "cert_file and key_file are both required")
			}
		}
		if ca := l.ClientAuth; ca != nil {
			if ca.Mode != "request" && ca.Mode != "require" {
				v.add(p+".client_auth.mode", "want request or require, got %q", ca.Mode)
			}
			if ca.CAFile == "" {
				v.add(p+".client_auth.ca_file", "required")
			}
		}
	}
	v.acme(c)
	// A bootstrap file (consul.config_key) only says where the config
	// lives: the admin settings that apply are the key's.
	bootstrap := c.Consul != nil && c.Consul.ConfigKey != ""
	if c.Admin.Listen != "off" {
		if c.Admin.AuthOn() && c.Admin.Password == "" && !bootstrap {
			v.add("admin", "admin authentication is on and no password is set: set admin.password (e.g. \"${SLUICE_ADMIN_PASSWORD}\"), or admin.auth: false on a trusted network")
		}
		v.listenAddr("admin.listen", c.Admin.Listen)
		if c.Admin.Listen == c.Listen && !strings.HasSuffix(c.Listen, ":0") {
			v.add("admin.listen", "must differ from listen (%q)", c.Listen)
		}
	}
	if d := c.Admin.SessionTTL.D(); d < time.Second || d > 7*24*time.Hour {
		v.add("admin.session_ttl", "must be between 1s and 168h, got %v", d)
	}
	if p := c.Admin.PrometheusURL; p != "" {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			v.add("admin.prometheus_url", "%q: want an http(s) URL such as \"http://127.0.0.1:9090\" (no credentials, query or fragment)", p)
		}
	}
	for i, h := range c.Admin.Hosts {
		if strings.HasPrefix(h, "*.") || !validHostPattern(h) {
			v.add(fmt.Sprintf("admin.hosts[%d]", i), "%q: want a host name such as \"admin.example.com\" (no scheme, port, path or wildcard)", h)
		}
	}
	if o := c.Admin.PublicOrigin; o != "" {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || !validHostPattern(u.Hostname()) && net.ParseIP(u.Hostname()) == nil {
			v.add("admin.public_origin", "%q: want an origin such as \"https://admin.example.com\" (scheme, host and optional port; no path, query or credentials)", o)
		}
	}
	seen := map[string]bool{}
	for i, name := range c.Admin.RedactHeaders {
		p := fmt.Sprintf("admin.redact_headers[%d]", i)
		if !validToken(name) {
			v.add(p, "%q is not a header name", name)
		} else if seen[strings.ToLower(name)] {
			v.add(p, "%q is listed twice (names match case-insensitively)", name)
		}
		seen[strings.ToLower(name)] = true
	}
	if cs := c.Consul; cs != nil {
		if cs.Wait.D() < time.Second || cs.Wait.D() > 10*time.Minute {
			v.add("consul.wait", "must be between 1s and 10m (Consul's limit), got %v", cs.Wait.D())
		}
		if strings.ContainsAny(cs.ConfigKey, " \t") || strings.HasPrefix(cs.ConfigKey, "/") {
			v.add("consul.config_key", "%q: a KV key such as \"sluice/config\"", cs.ConfigKey)
		}
	}
	v.observability(c)
	s := c.Server
	if s.MaxHeaderBytes < 1024 {
		v.add("server.max_header_bytes", "must be at least 1KiB, got %d", s.MaxHeaderBytes)
	}
	if s.MaxBodyBytes < 0 {
		v.add("server.max_body_bytes", "must not be negative")
	}
	if s.BufferResponseBytes > MaxBufferResponseBytes {
		v.add("server.buffer_response_bytes", "must be at most 16MiB, got %d (larger answers stream; a buffered one costs its whole size per slow client)", s.BufferResponseBytes)
	}
	if s.MaxConnections < 0 {
		v.add("server.max_connections", "must not be negative")
	}
	if u := s.HeadersWithUnderscores; u != "drop" && u != "reject" && u != "allow" {
		v.add("server.headers_with_underscores", "want drop, reject or allow, got %q", u)
	}
	c.Server.Trusted = c.Server.Trusted[:0]
	for i, p := range s.TrustedProxies {
		prefix, err := ParsePrefix(p)
		if err != nil {
			v.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%v", err)
		}
		c.Server.Trusted = append(c.Server.Trusted, prefix)
	}
	if _, err := pathnorm.ParseAction(s.Path.EscapedSlashes); err != nil {
		v.add("server.path.escaped_slashes", "%v", err)
	}

	names := slices.Sorted(maps.Keys(c.Upstreams))
	for _, name := range names {
		v.upstream("upstreams."+name, name, c.Upstreams[name])
	}

	v.auth(c)
	v.rateLimit("limits.default", c.Limits.Default, c.Redis != nil)
	if c.Limits.Instances < 1 {
		v.add("limits.instances", "must be at least 1")
	}
	v.policies(c)
	seenName := map[string]string{}
	seenMatch := map[string]string{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r == nil {
			v.add(p, "route is empty")
			continue
		}
		v.route(p, r, c.Upstreams, c.Redis != nil)
		v.routePath(p, r, c)
		if r.Name != "" {
			if prev, ok := seenName[r.Name]; ok {
				v.add(p+".name", "%q is already used by %s", r.Name, prev)
			}
			seenName[r.Name] = p
		}
		for _, key := range matchKeys(r.Match) {
			if prev, ok := seenMatch[key]; ok {
				v.add(p+".match", "matches the same requests as %s (%s)", prev, key)
				break
			}
			seenMatch[key] = p
		}
	}
	v.shadowed(c.Routes)
	return v.errs
}

// matchKeys names what a route matches, one key per method, so two routes
// that would shadow each other are refused.
func matchKeys(m Match) []string {
	path := "prefix " + m.Prefix
	if m.Path != "" {
		path = "path " + m.Path
	}
	if m.Regex != "" {
		path = "regex " + m.Regex
	}
	base := path + condKey(m)
	if m.Host != "" {
		base += " on host " + strings.ToLower(m.Host)
	}
	if len(m.Methods) == 0 {
		return []string{base + " for any method"}
	}
	keys := make([]string, len(m.Methods))
	for i, meth := range m.Methods {
		keys[i] = base + " for " + meth
	}
	return keys
}

func (v *validator) listenAddr(field, addr string) {
	if addr == "" {
		v.add(field, "required")
		return
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		v.add(field, "%q is not host:port (e.g. \":8080\" or \"127.0.0.1:9901\")", addr)
	} else if !validPort(port) {
		v.add(field, "%q: the port must be a number 0..65535, got %q", addr, port)
	}
}

// validPort: decimal digits, 0..65535. Service names ("http") are refused
// too: a port in a config should say the number it listens on.
func validPort(p string) bool {
	if p == "" || len(p) > 5 || strings.Trim(p, "0123456789") != "" {
		return false
	}
	n, _ := strconv.Atoi(p)
	return n <= 65535
}

func (v *validator) upstream(p, name string, u *Upstream) {
	if !validName(name) {
		v.add(p, "name %q: use letters, digits, '-', '_' and '.'", name)
	}
	if u == nil {
		v.add(p, "upstream is empty: it needs targets")
		return
	}
	discovered := u.Discovery != nil && u.Discovery.Consul != nil
	if len(u.Targets) == 0 && !discovered {
		v.add(p+".targets", "at least one target is required (or discovery)")
	}
	if u.Discovery != nil {
		switch cs := u.Discovery.Consul; {
		case cs == nil:
			v.add(p+".discovery", "name a source: consul")
		case cs.Service == "":
			v.add(p+".discovery.consul.service", "required")
		case cs.Scheme != "http" && cs.Scheme != "https":
			v.add(p+".discovery.consul.scheme", "want http or https, got %q", cs.Scheme)
		}
	}
	if tc := u.TLS; tc != nil && (tc.CertFile == "") != (tc.KeyFile == "") {
		v.add(p+".tls", "cert_file and key_file go together: set both for a client certificate, or neither")
	}
	seen := map[string]bool{}
	for i, t := range u.Targets {
		tp := fmt.Sprintf("%s.targets[%d]", p, i)
		if _, err := ParseTargetURL(t.URL); err != nil {
			v.add(tp+".url", "%v", err)
		} else if seen[t.URL] {
			v.add(tp+".url", "%q is listed twice", t.URL)
		}
		seen[t.URL] = true
		if t.Weight < 1 || t.Weight > 1000 {
			v.add(tp+".weight", "must be 1..1000, got %d", t.Weight)
		}
	}
	if !slices.Contains(lb.Balancers, u.Balancer) {
		v.add(p+".balancer", "unknown balancer %q (want one of %s)", u.Balancer, strings.Join(lb.Balancers, ", "))
	}
	if u.MaxConnections < 1 {
		v.add(p+".max_connections", "must be at least 1")
	}
	if u.HashKey != "" {
		if u.Balancer != "consistent_hash" {
			v.add(p+".hash_key", "only used by the consistent_hash balancer")
		} else if kind, name, err := ParseHashKey(u.HashKey); err != nil {
			v.add(p+".hash_key", "%v", err)
		} else {
			u.HashKind, u.HashName = kind, name
		}
	}
	if u.BoundedLoad != 0 && (u.BoundedLoad < 1 || (u.Balancer != "consistent_hash" && u.Balancer != "ip_hash")) {
		v.add(p+".bounded_load", "must be >= 1 (e.g. 1.25), and only applies to ip_hash and consistent_hash")
	}
	if h := u.Health; h != nil {
		if h.Path == "" || h.Path[0] != '/' {
			v.add(p+".health.path", "required, starting with '/'")
		}
		if lo, hi, err := ParseStatusRange(h.ExpectStatus); err != nil {
			v.add(p+".health.expect_status", "%v", err)
		} else {
			h.StatusLo, h.StatusHi = lo, hi
		}
		if h.Jitter < 0 || h.Jitter >= 1 {
			v.add(p+".health.jitter", "must be in [0, 1)")
		}
		if h.Healthy < 1 || h.Unhealthy < 1 {
			v.add(p+".health", "healthy and unhealthy thresholds must be at least 1")
		}
	}
	o := u.Outlier
	if o.ConsecutiveFailures < -1 {
		v.add(p+".outlier.consecutive_failures", "must be >= 1, or -1 to disable")
	}
	if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
		v.add(p+".outlier.max_ejection_percent", "must be 0..100")
	}
	if o.MaxEjection < o.BaseEjection {
		v.add(p+".outlier.max_ejection", "must be at least base_ejection")
	}
	if c := u.Circuit; c != nil {
		if c.FailureRatio < 0 || c.FailureRatio > 1 {
			v.add(p+".circuit.failure_ratio", "must be 0..1")
		}
		if c.Failures < 1 || c.HalfOpenRequests < 1 || c.Successes < 1 || c.MinRequests < 1 {
			v.add(p+".circuit", "failures, half_open_requests, successes and min_requests must be at least 1")
		}
		if c.Successes > c.HalfOpenRequests {
			v.add(p+".circuit.successes", "can't exceed half_open_requests (%d): the circuit could never close", c.HalfOpenRequests)
		}
	}
	r := u.Retry
	if r.Attempts < 1 || r.Attempts > 10 {
		v.add(p+".retry.attempts", "must be 1..10 (1 disables retries), got %d", r.Attempts)
	}
	if r.Multiplier < 1 {
		v.add(p+".retry.multiplier", "must be >= 1")
	}
	if r.Jitter < 0 || r.Jitter >= 1 {
		v.add(p+".retry.jitter", "must be in [0, 1)")
	}
	if r.Budget < 0 || r.Budget > 1 {
		v.add(p+".retry.budget", "must be 0..1")
	}
	if r.MaxBackoff < r.Backoff {
		v.add(p+".retry.max_backoff", "must be at least backoff")
	}
	for i, on := range r.On {
		if !validRetryOn(on) {
			v.add(fmt.Sprintf("%s.retry.on[%d]", p, i), "%q: want connect, timeout, reset or a 5xx status code", on)
		}
	}
}

func validRetryOn(s string) bool {
	switch s {
	case "connect", "timeout", "reset":
		return true
	}
	code, err := strconv.Atoi(s)
	return err == nil && code >= 500 && code <= 599
}

// ParseHashKey splits a consistent_hash key: "ip", "path", "header:NAME",
// "cookie:NAME".
func ParseHashKey(s string) (kind, name string, err error) {
	kind, name, _ = strings.Cut(s, ":")
	switch kind {
	case "ip", "path":
		if name == "" {
			return kind, "", nil
		}
	case "header", "cookie":
		if validToken(name) {
			return kind, name, nil
		}
	}
	return "", "", fmt.Errorf("%q: want ip, path, header:NAME or cookie:NAME", s)
}

// ParseStatusRange parses "200-399" or "204".
func ParseStatusRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi = lo
	var err2 error
	if isRange {
		hi, err2 = strconv.Atoi(strings.TrimSpace(b))
	}
	if err1 != nil || err2 != nil || lo < 100 || hi > 599 || lo > hi {
		return 0, 0, fmt.Errorf("%q: want a status or range such as \"200-399\"", s)
	}
	return lo, hi, nil
}

func (v *validator) route(p string, r *Route, ups map[string]*Upstream, redis bool) {
	if r.Name == "" {
		v.add(p+".name", "required")
	} else if !validName(r.Name) {
		v.add(p+".name", "%q: use letters, digits, '-', '_' and '.'", r.Name)
	}
	m := r.Match
	given := 0
	for _, s := range []string{m.Prefix, m.Path, m.Regex} {
		if s != "" {
			given++
		}
	}
	switch {
	case given == 0:
		v.add(p+".match", "one of prefix, path or regex is required")
	case given > 1:
		v.add(p+".match", "prefix, path and regex exclude each other")
	case m.Prefix != "" && m.Prefix[0] != '/':
		v.add(p+".match.prefix", "must start with '/', got %q", m.Prefix)
	case m.Path != "" && m.Path[0] != '/':
		v.add(p+".match.path", "must start with '/', got %q", m.Path)
	}
	for _, s := range []string{m.Prefix, m.Path} {
		if strings.ContainsAny(s, "?# \t") {
			v.add(p+".match", "paths must not contain '?', '#' or spaces: %q", s)
		}
	}
	for i, meth := range m.Methods {
		if !validToken(meth) || strings.ToUpper(meth) != meth {
			v.add(fmt.Sprintf("%s.match.methods[%d]", p, i), "%q is not an upper-case method name", meth)
		}
	}
	if m.Host != "" && !validHostPattern(m.Host) {
		v.add(p+".match.host", "%q is not a host name or *.domain pattern", m.Host)
	}
	v.split(p, r, ups)
	if r.Upstream == "" && len(r.Split) == 0 {
		v.add(p+".upstream", "required (or split)")
	} else if r.Upstream != "" && len(r.Split) > 0 {
		v.add(p+".split", "excludes upstream: list the route's upstream in the split")
	} else if _, ok := ups[r.Upstream]; !ok && r.Upstream != "" {
		v.add(p+".upstream", "no upstream named %q", r.Upstream)
	}
	groups := v.matchRegex(p, r)
	v.matchConditions(p, r)
	rw := r.Rewrite
	v.pathTemplate(p, rw.ReplacePath, groups)
	if rw.ReplacePath != "" {
		if rw.StripPrefix != "" || rw.AddPrefix != "" {
			v.add(p+".rewrite.replace_path", "excludes strip_prefix and add_prefix")
		}
		if rw.ReplacePath[0] != '/' {
			v.add(p+".rewrite.replace_path", "must start with '/'")
		}
	}
	if rw.StripPrefix != "" && m.Regex != "" {
		v.add(p+".rewrite.strip_prefix", "does not go with match.regex: use replace_path with the regex's named groups")
	} else if rw.StripPrefix != "" {
		matched := m.Prefix + m.Path
		if !strings.HasPrefix(matched, rw.StripPrefix) {
			v.add(p+".rewrite.strip_prefix", "%q is not a prefix of the matched path %q, so it would never apply", rw.StripPrefix, matched)
		}
	}
	if rw.AddPrefix != "" && (rw.AddPrefix[0] != '/' || strings.HasSuffix(rw.AddPrefix, "/")) {
		v.add(p+".rewrite.add_prefix", "must start with '/' and not end with one, got %q", rw.AddPrefix)
	}
	v.rateLimit(p+".rate_limit", r.RateLimit, redis)
	if q := r.Quota; q != nil {
		if q.Limit < 1 {
			v.add(p+".quota.limit", "must be at least 1")
		}
		if q.Per.D() < time.Second {
			v.add(p+".quota.per", "must be at least 1s")
		}
		v.limitKeys(p+".quota.key", q.Key)
	}
	switch r.Auth {
	case "none", "jwt", "api_key", "any", "mtls":
	default:
		v.add(p+".auth", "want none, jwt, api_key, any or mtls, got %q", r.Auth)
	}
	if len(r.Roles) > 0 && (r.Auth == "none" || r.Auth == "mtls") {
		v.add(p+".roles", "roles need auth (jwt, api_key or any)")
	}
	if r.RolesMatch != "any" && r.RolesMatch != "all" {
		v.add(p+".roles_match", "want any or all, got %q", r.RolesMatch)
	}
	v.headerOps(p+".request_headers", r.RequestHeaders)
	v.headerOps(p+".response_headers", r.ResponseHeaders)
	if w := r.WebSocket; w != nil {
		if w.IdleTimeout.D() < time.Second {
			v.add(p+".websocket.idle_timeout", "must be at least 1s")
		}
		if w.MaxLifetime.D() < w.IdleTimeout.D() {
			v.add(p+".websocket.max_lifetime", "must be at least idle_timeout (%s)", w.IdleTimeout.D())
		}
		if w.MaxTunnels < 1 {
			v.add(p+".websocket.max_tunnels", "must be at least 1")
		}
	}
	switch hh := r.HostHeader; hh {
	case "preserve", "target":
	default:
		if !validHostPattern(hh) || strings.HasPrefix(hh, "*") {
			v.add(p+".host_header", "want \"preserve\", \"target\" or a host name, got %q", hh)
		}
	}
}

// routePath checks a route's path setting, and that its match path or
// prefix is written the way requests are matched: normalised (see
// edge/pathnorm). Anything else could never match, and a protected route
// that never matches leaves its requests to the next broader route.
func (v *validator) routePath(p string, r *Route, c *Config) {
	// Equal to the server's: inherited (or the same), and checked there.
	if r.Path.EscapedSlashes != c.Server.Path.EscapedSlashes {
		if _, err := pathnorm.ParseAction(r.Path.EscapedSlashes); err != nil {
			v.add(p+".path.escaped_slashes", "%v", err)
		}
	}
	o := c.PathOptions(r)
	for _, m := range []struct {
		field, s string
		prefix   bool
	}{{"prefix", r.Match.Prefix, true}, {"path", r.Match.Path, false}} {
		if m.s == "" || m.s[0] != '/' || strings.ContainsAny(m.s, "?# \t") {
			continue // refused above
		}
		// A prefix may end inside a segment ("/api" takes "/api2",
		// "/." takes "/.well-known"): complete it before normalising.
		probe := m.s
		if m.prefix {
			probe += "x"
		}
		out, _, err := pathnorm.Normalize(nil, []byte(probe), o)
		switch {
		case err != nil:
			v.add(p+".match."+m.field, "%q can never match: requests are normalised before matching, and one like it gets 400 (%s)", m.s, strings.TrimPrefix(err.Error(), "pathnorm: "))
		case string(out) != probe:
			want := string(out)
			if m.prefix {
				want = strings.TrimSuffix(want, "x")
			}
			v.add(p+".match."+m.field, "%q can never match: requests are normalised before matching; write it as %q", m.s, want)
		}
	}
}

func (v *validator) headerOps(p string, h HeaderOps) {
	for name, val := range h.Set {
		if !validToken(name) {
			v.add(p+".set."+name, "%q is not a valid header name", name)
		} else if hopByHop[strings.ToLower(name)] {
			v.add(p+".set."+name, "%s is managed by the proxy and can't be set", name)
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			v.add(p+".set."+name, "value must not contain CR, LF or NUL")
		}
	}
	for i, name := range h.Remove {
		if !validToken(name) {
			v.add(fmt.Sprintf("%s.remove[%d]", p, i), "%q is not a valid header name", name)
		} else if hopByHop[strings.ToLower(name)] {
			v.add(fmt.Sprintf("%s.remove[%d]", p, i), "%s is managed by the proxy and can't be removed", name)
		}
	}
}

// ParseTargetURL checks a target URL and returns its host:port.
func ParseTargetURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("%q: want scheme://host:port", raw)
	}
	if !validPort(u.Port()) || u.Port() == "0" {
		return nil, fmt.Errorf("%q: the port must be 1..65535", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%q: a target is scheme://host:port only (use rewrite.add_prefix for a path)", raw)
	}
	return u, nil
}

// ParsePrefix accepts a CIDR ("10.0.0.0/8") or a bare IP ("127.0.0.1").
// An IPv4-mapped IPv6 prefix ("::ffff:10.0.0.0/104") becomes the IPv4
// prefix it means ("10.0.0.0/8"): client addresses are compared unmapped,
// so the mapped form would never match.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

// validToken is RFC 9110's token (header names, methods).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// acmeHosts checks a listener's acme_hosts: lower-case DNS names with
// a dot, each once, and an acme block to get them from.
func (v *validator) acmeHosts(c *Config, p string, hosts []string) {
	if len(hosts) > 0 && c.ACME == nil {
		v.add(p+".acme_hosts", "needs the acme block (acme: { email: ..., agree_terms: true })")
	}
	seen := map[string]bool{}
	for j, h := range hosts {
		f := fmt.Sprintf("%s.acme_hosts[%d]", p, j)
		switch {
		case strings.HasPrefix(h, "*."):
			v.add(f, "%q: wildcard names need the DNS-01 challenge, which sluice does not do", h)
		case !validHostPattern(h) || !strings.Contains(h, ".") || h != strings.ToLower(h) || net.ParseIP(h) != nil:
			v.add(f, "%q is not a lower-case DNS name such as api.example.com", h)
		case seen[h]:
			v.add(f, "%q is listed twice", h)
		}
		seen[h] = true
	}
}

// portZero reports a listen address with port 0 (any free port).
func portZero(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

// acme checks the acme block.
func (v *validator) acme(c *Config) {
	a := c.ACME
	if a == nil {
		return
	}
	if !a.AgreeTerms {
		v.add("acme.agree_terms", "must be true: ordering certificates means agreeing to the CA's terms of service")
	}
	if u, err := url.Parse(a.CA); err != nil || u.Scheme != "https" || u.Host == "" {
		v.add("acme.ca", "%q is not an https:// ACME directory URL", a.CA)
	}
	if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \t<>")) {
		v.add("acme.email", "%q is not an email address", a.Email)
	}
	seen := map[string]bool{}
	for i, ch := range a.Challenges {
		if ch != "http-01" && ch != "tls-alpn-01" {
			v.add(fmt.Sprintf("acme.challenges[%d]", i), "want http-01 or tls-alpn-01, got %q", ch)
		}
		if ch == "http-01" && c.Listen == "off" {
			v.add(fmt.Sprintf("acme.challenges[%d]", i), "http-01 is answered on the plain listener, and listen is off")
		}
		// The CA connects to fixed ports (80, 443), and certmagic finds
		// its challenge ports in these addresses: with port 0 it would
		// open 80 or 443 itself.
		if ch == "http-01" && c.Listen != "off" && portZero(c.Listen) {
			v.add(fmt.Sprintf("acme.challenges[%d]", i), "http-01 is answered on listen (%s), which needs a fixed port (the CA connects to port 80)", c.Listen)
		}
		if ch == "tls-alpn-01" {
			for k, l := range c.ListenTLS {
				if len(l.ACMEHosts) > 0 {
					if portZero(l.Listen) {
						v.add(fmt.Sprintf("acme.challenges[%d]", i), "tls-alpn-01 is answered on listen_tls[%d] (%s), which needs a fixed port (the CA connects to port 443)", k, l.Listen)
					}
					break
				}
			}
		}
		if seen[ch] {
			v.add(fmt.Sprintf("acme.challenges[%d]", i), "%q is listed twice", ch)
		}
		seen[ch] = true
	}
	switch a.Storage.Type {
	case "file":
	case "redis":
		if c.Redis == nil {
			v.add("acme.storage.type", "redis needs the redis block (redis: { addrs: [host:port] })")
		}
	default:
		v.add("acme.storage.type", "want file or redis, got %q", a.Storage.Type)
	}
	if a.RenewCheck.D() < time.Second {
		v.add("acme.renew_check", "must be at least 1s, got %v", a.RenewCheck.D())
	}
	hosts := 0
	for _, l := range c.ListenTLS {
		hosts += len(l.ACMEHosts)
	}
	if hosts == 0 {
		v.add("acme", "no listen_tls listener has acme_hosts: nothing to order")
	}
}

func validHostPattern(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
				return false
			}
		}
	}
	return true
}

func (v *validator) auth(c *Config) {
	for i, r := range c.Routes {
		if r != nil && (r.Auth == "jwt" || r.Auth == "any") {
			if c.Auth.JWT == nil {
				v.add(fmt.Sprintf("routes[%d].auth", i), "%s needs auth.jwt to be configured", r.Auth)
			}
		}
	}
	switch c.Auth.APIKeys.Store {
	case "file":
	case "redis":
		if c.Redis == nil {
			v.add("auth.api_keys.store", "redis needs the redis block (redis: { addrs: [host:port] })")
		}
	default:
		v.add("auth.api_keys.store", "want file or redis, got %q", c.Auth.APIKeys.Store)
	}
	if r := c.Redis; r != nil {
		if len(r.Addrs) == 0 {
			v.add("redis.addrs", "at least one host:port is required")
		}
		for i, a := range r.Addrs {
			if _, port, err := net.SplitHostPort(a); err != nil || !validPort(port) || port == "0" {
				v.add(fmt.Sprintf("redis.addrs[%d]", i), "%q is not host:port with a port 1..65535", a)
			}
		}
	}
	if !validToken(c.Auth.APIKeys.Header) {
		v.add("auth.api_keys.header", "%q is not a header name", c.Auth.APIKeys.Header)
	}
	j := c.Auth.JWT
	if j == nil {
		return
	}
	if len(j.Keys) == 0 && j.JWKS == nil {
		v.add("auth.jwt", "needs keys or jwks")
	}
	for _, a := range j.Algorithms {
		if !validAlg(a) {
			v.add("auth.jwt.algorithms", "%q is not an allowed algorithm (none is never allowed)", a)
		}
	}
	noID := 0
	for i, k := range j.Keys {
		p := fmt.Sprintf("auth.jwt.keys[%d]", i)
		if k.ID == "" {
			noID++
		}
		if !validAlg(k.Algorithm) {
			v.add(p+".algorithm", "want HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA, got %q", k.Algorithm)
			continue
		}
		set := 0
		for _, x := range []string{k.Secret, k.PublicKey, k.PublicKeyFile} {
			if x != "" {
				set++
			}
		}
		if set != 1 {
			v.add(p, "set exactly one of secret, public_key and public_key_file")
			continue
		}
		hs := strings.HasPrefix(k.Algorithm, "HS")
		switch {
		case hs && k.Secret == "":
			v.add(p+".secret", "%s needs a secret", k.Algorithm)
		case hs && len(k.Secret) < 32:
			v.add(p+".secret", "at least 32 bytes for %s (RFC 7518 3.2), got %d", k.Algorithm, len(k.Secret))
		case !hs && k.Secret != "":
			v.add(p+".secret", "%s verifies with a public key, not a secret", k.Algorithm)
		}
	}
	if noID > 1 {
		v.add("auth.jwt.keys", "at most one key without an id")
	}
	if k := j.JWKS; k != nil && !strings.HasPrefix(k.URL, "https://") && !strings.HasPrefix(k.URL, "http://") {
		v.add("auth.jwt.jwks.url", "want an http(s) URL, got %q", k.URL)
	}
	for claim, header := range j.ForwardClaims {
		if !validToken(header) || hopByHop[strings.ToLower(header)] {
			v.add("auth.jwt.forward_claims."+claim, "%q is not a header sluice can set", header)
		}
	}
}

func validAlg(a string) bool {
	switch a {
	case "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		return true
	}
	return false
}

func (v *validator) rateLimit(p string, l *RateLimit, redis bool) {
	if l == nil {
		return
	}
	switch l.Scope {
	case "local":
	case "strict", "cluster":
		if !redis {
			v.add(p+".scope", "%s limits need the redis block", l.Scope)
		}
	default:
		v.add(p+".scope", "want local, cluster or strict, got %q", l.Scope)
	}
	if l.Rate < 1 || l.Rate > 1e9 {
		v.add(p+".rate", "must be 1..1e9, got %d", l.Rate)
	}
	if l.Per.D() < time.Millisecond {
		v.add(p+".per", "must be at least 1ms")
	}
	// A burst of 0 takes the rate: below 1 then only repeats a bad rate.
	if l.Burst < 0 {
		v.add(p+".burst", "must be at least 1")
	}
	v.limitKeys(p+".key", l.Key)
}

func (v *validator) limitKeys(p string, keys []string) {
	for i, k := range keys {
		kind, name, _ := strings.Cut(k, ":")
		ok := false
		switch kind {
		case "ip", "api_key", "user", "route":
			ok = name == ""
		case "header", "claim":
			ok = validToken(name)
		}
		if !ok {
			v.add(fmt.Sprintf("%s[%d]", p, i), "%q: want ip, api_key, user, route, header:NAME or claim:NAME", k)
		}
	}
}

func (v *validator) observability(c *Config) {
	if p := c.Metrics.DataPlanePath; p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# ")) {
		v.add("metrics.data_plane_path", "%q: a path such as \"/metrics\"", p)
	}
	a := c.AccessLog
	if s := *a.Sample; s <= 0 || s > 1 {
		v.add("access_log.sample", "must be in (0, 1], got %v (to log nothing, set enabled: false)", s)
	}
	if a.Buffer < 1 || a.Buffer > 1<<20 {
		v.add("access_log.buffer", "must be between 1 and 1048576 lines, got %d", a.Buffer)
	}
	if t := c.Tracing; t.OTLPEndpoint != "" {
		u, err := url.Parse(t.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add("tracing.otlp_endpoint", "%q: want an http(s) URL such as \"http://127.0.0.1:4318\"", t.OTLPEndpoint)
		}
	}
	if s := *c.Tracing.Sample; s < 0 || s > 1 {
		v.add("tracing.sample", "must be in [0, 1], got %v", s)
	}
}
