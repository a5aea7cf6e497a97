package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// The edge policies: CORS, security headers and IP filters. Each has a
// top-level block (the default for every route) and a route's own block;
// README "Edge policies" documents them with examples.

// CORS is a CORS policy (the Fetch standard's CORS protocol,
// https://fetch.spec.whatwg.org/#http-cors-protocol). The top-level block
// applies to every route without its own; a route's block replaces it
// whole (nothing is merged), and `enabled: false` turns CORS off for the
// route.
type CORS struct {
	// Enabled: false turns the top-level policy off for one route. Default
	// true wherever a block is written.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// AllowOrigins lists the origins allowed: exact
	// ("https://app.example.com", "http://127.0.0.1:3000"), a wildcard
	// subdomain ("https://*.example.com": one or more labels before
	// example.com, not example.com itself), or "*" (any origin; not with
	// credentials). Required.
	AllowOrigins []string `yaml:"allow_origins" json:"allow_origins,omitempty"`
	// AllowMethods a preflight may ask for. GET, HEAD and POST are always
	// allowed by browsers (CORS-safelisted methods). "*": any. Default
	// [GET, HEAD, POST].
	AllowMethods []string `yaml:"allow_methods" json:"allow_methods,omitempty"`
	// AllowHeaders are the request headers a preflight may ask for
	// (case-insensitive). "*": any. Default none: only the CORS-safelisted
	// request headers, which browsers never ask about.
	AllowHeaders []string `yaml:"allow_headers" json:"allow_headers,omitempty"`
	// ExposeHeaders are the response headers a page's script may read
	// besides the CORS-safelisted ones. "*" (all) only without credentials.
	ExposeHeaders []string `yaml:"expose_headers" json:"expose_headers,omitempty"`
	// AllowCredentials lets requests with cookies or HTTP auth through
	// (Access-Control-Allow-Credentials: true). Default false.
	AllowCredentials bool `yaml:"allow_credentials" json:"allow_credentials,omitempty"`
	// MaxAge is how long a browser may cache a preflight's answer
	// (Access-Control-Max-Age, whole seconds). Default 0: not sent, so the
	// browser's own default (5s) applies.
	MaxAge Duration `yaml:"max_age" json:"max_age,omitempty"`
	// AllowPrivateNetwork answers a preflight carrying
	// Access-Control-Request-Private-Network: true with
	// Access-Control-Allow-Private-Network: true (Private Network Access:
	// a public page calling a gateway on a private address). Default false.
	AllowPrivateNetwork bool `yaml:"allow_private_network" json:"allow_private_network,omitempty"`
}

// On reports whether the block turns CORS on.
func (c *CORS) On() bool { return c != nil && (c.Enabled == nil || *c.Enabled) }

// CORSFor is the CORS policy of requests r matches: its own block, else
// the top-level one. nil: no CORS.
func (c *Config) CORSFor(r *Route) *CORS {
	p := c.CORS
	if r != nil && r.CORS != nil {
		p = r.CORS
	}
	if !p.On() {
		return nil
	}
	return p
}

// DefaultCORSMethods are the methods a CORS policy allows when it names
// none: the CORS-safelisted ones (Fetch 2.2.1), which need no preflight.
var DefaultCORSMethods = []string{"GET", "HEAD", "POST"}

// Origin is one entry of cors.allow_origins, parsed by ParseOrigin.
type Origin struct {
	Any      bool   // "*"
	Scheme   string // lower case: "https"
	Host     string // lower case; for a wildcard, the part after "*." ("example.com")
	Wildcard bool   // "scheme://*.host": one or more labels before Host
	Port     string // "" when the origin has none
}

// String is the origin as an Origin header would carry it (a wildcard
// keeps its "*.").
func (o Origin) String() string {
	if o.Any {
		return "*"
	}
	s := o.Scheme + "://"
	if o.Wildcard {
		s += "*."
	}
	s += o.Host
	if o.Port != "" {
		s += ":" + o.Port
	}
	return s
}

// ParseOrigin parses an allowed origin: "*", "scheme://host[:port]" or
// "scheme://*.domain[:port]", the way browsers serialise an Origin (RFC
// 6454 6.1; the HTML standard's "serialization of an origin"): no path,
// no trailing slash, no default port.
func ParseOrigin(s string) (Origin, error) {
	if s == "*" {
		return Origin{Any: true}, nil
	}
	if s == "null" {
		return Origin{}, fmt.Errorf(`"null" is the origin of sandboxed documents, file: pages and redirects: allowing it lets any of them in`)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || !validScheme(scheme) {
		return Origin{}, fmt.Errorf("%q: want \"*\", scheme://host[:port] or scheme://*.domain[:port]", s)
	}
	o := Origin{Scheme: strings.ToLower(scheme)}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return Origin{}, fmt.Errorf("%q: an origin has no path, query or trailing slash: write %q", s, s[:len(scheme)+3+i])
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") { // [::1]:8080
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return Origin{}, fmt.Errorf("%q: unclosed IPv6 literal", s)
		}
		host, port = rest[:end+1], strings.TrimPrefix(rest[end+1:], ":")
		if _, err := netip.ParseAddr(host[1:end]); err != nil || (port == "" && end+1 != len(rest)) {
			return Origin{}, fmt.Errorf("%q is not an origin: bad IPv6 literal", s)
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, port = rest[:i], rest[i+1:]
	}
	if strings.HasPrefix(host, "*.") {
		o.Wildcard, host = true, host[2:]
	}
	if !strings.HasPrefix(host, "[") && (strings.Contains(host, "*") || !validHostPattern(host)) {
		return Origin{}, fmt.Errorf("%q: the host must be a name, an address or *.domain", s)
	}
	o.Host = strings.ToLower(host)
	if port != "" || strings.HasSuffix(rest, ":") {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return Origin{}, fmt.Errorf("%q: bad port %q", s, port)
		}
		if (o.Scheme == "https" && n == 443) || (o.Scheme == "http" && n == 80) {
			return Origin{}, fmt.Errorf("%q: browsers leave out the default port: write %q", s, strings.TrimSuffix(s, ":"+port))
		}
		o.Port = port
	}
	return o, nil
}

// validScheme is RFC 3986 3.1's scheme.
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !(c >= 'a' && c <= 'z' || i > 0 && (s[i] >= '0' && s[i] <= '9' || s[i] == '+' || s[i] == '-' || s[i] == '.')) {
			return false
		}
	}
	return true
}

// SecurityHeaders sets security headers on every answer of a route: the
// upstream's and sluice's own. A preset gives every field a value; a field
// written here replaces the preset's, and "off" leaves that header alone
// (neither set nor removed: the upstream's passes through).
//
// The top-level block applies to every route and to the answers sluice
// gives before a route is chosen (404, 405, refused requests). A route's
// block starts from the top-level result, or from its own preset when it
// names one, and changes the fields it writes. Without any block nothing
// is set or removed.
type SecurityHeaders struct {
	// Preset: strict (APIs and anything that is not an HTML app), basic
	// (safe in front of HTML apps) or none. Default: none at the top
	// level; a route without one starts from the top-level result.
	Preset string `yaml:"preset" json:"preset,omitempty"`
	// HSTS is Strict-Transport-Security (RFC 6797), e.g. "max-age=63072000;
	// includeSubDomains". Sent on TLS connections only (RFC 6797 7.2):
	// the listen_tls listeners'.
	HSTS string `yaml:"hsts" json:"hsts,omitempty"`
	// ContentTypeOptions is X-Content-Type-Options: nosniff.
	ContentTypeOptions string `yaml:"content_type_options" json:"content_type_options,omitempty"`
	// FrameOptions is X-Frame-Options: DENY or SAMEORIGIN (with the CSP's
	// frame-ancestors for current browsers).
	FrameOptions string `yaml:"frame_options" json:"frame_options,omitempty"`
	// ReferrerPolicy is Referrer-Policy, e.g. no-referrer.
	ReferrerPolicy string `yaml:"referrer_policy" json:"referrer_policy,omitempty"`
	// ContentSecurityPolicy is Content-Security-Policy.
	ContentSecurityPolicy string `yaml:"content_security_policy" json:"content_security_policy,omitempty"`
	// PermissionsPolicy is Permissions-Policy.
	PermissionsPolicy string `yaml:"permissions_policy" json:"permissions_policy,omitempty"`
	// CrossOriginOpenerPolicy is Cross-Origin-Opener-Policy.
	CrossOriginOpenerPolicy string `yaml:"cross_origin_opener_policy" json:"cross_origin_opener_policy,omitempty"`
	// CrossOriginResourcePolicy is Cross-Origin-Resource-Policy. It limits
	// no-cors loads (<img>, <script>) only: CORS requests are not checked
	// against it.
	CrossOriginResourcePolicy string `yaml:"cross_origin_resource_policy" json:"cross_origin_resource_policy,omitempty"`
	// CrossOriginEmbedderPolicy is Cross-Origin-Embedder-Policy.
	CrossOriginEmbedderPolicy string `yaml:"cross_origin_embedder_policy" json:"cross_origin_embedder_policy,omitempty"`
	// Remove names upstream response headers to drop (they tell an
	// attacker what runs behind). Default: the preset's; [] removes none.
	Remove []string `yaml:"remove" json:"remove,omitempty"`
}

// Off is the value that leaves one security header alone.
const Off = "off"

// SecurityPresets are the presets' values. strict suits APIs (JSON
// answers: nothing to render, frame or load); basic is safe in front of
// HTML apps (no CSP or cross-origin isolation, which only the app can
// write).
var SecurityPresets = map[string]SecurityHeaders{
	"none": {},
	"strict": {
		HSTS:                      "max-age=63072000; includeSubDomains",
		ContentTypeOptions:        "nosniff",
		FrameOptions:              "DENY",
		ReferrerPolicy:            "no-referrer",
		ContentSecurityPolicy:     "default-src 'none'; frame-ancestors 'none'",
		PermissionsPolicy:         "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
		CrossOriginOpenerPolicy:   "same-origin",
		CrossOriginResourcePolicy: "same-origin",
		CrossOriginEmbedderPolicy: "require-corp",
		Remove:                    DefaultRemoveHeaders,
	},
	"basic": {
		HSTS:               "max-age=63072000; includeSubDomains",
		ContentTypeOptions: "nosniff",
		FrameOptions:       "SAMEORIGIN",
		ReferrerPolicy:     "strict-origin-when-cross-origin",
		Remove:             DefaultRemoveHeaders,
	},
}

// DefaultRemoveHeaders are the upstream headers the strict and basic
// presets remove: they name the server software and its version.
var DefaultRemoveHeaders = []string{"Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version", "X-Generator", "X-Runtime"}

// HeaderValue is one header and its value.
type HeaderValue struct{ Name, Value string }

// SecurityResult is what a route's security headers come to.
type SecurityResult struct {
	Set    []HeaderValue // every answer
	HSTS   string        // Strict-Transport-Security, TLS answers only ("" none)
	Remove []string      // dropped from upstream answers
}

// Empty reports whether nothing is set or removed.
func (r SecurityResult) Empty() bool { return len(r.Set) == 0 && r.HSTS == "" && len(r.Remove) == 0 }

// SecurityHeadersFor is the security headers of requests r matches (r nil:
// of answers made before routing). Call it on a config Load returned.
func (c *Config) SecurityHeadersFor(r *Route) SecurityResult {
	eff := overlay(SecurityHeaders{}, c.SecurityHeaders)
	if r != nil && r.SecurityHeaders != nil {
		eff = overlay(eff, r.SecurityHeaders)
	}
	var out SecurityResult
	for _, f := range securityFields(&eff) {
		if v := *f.value; v != "" && v != Off {
			if f.header == "Strict-Transport-Security" {
				out.HSTS = v
			} else {
				out.Set = append(out.Set, HeaderValue{f.header, v})
			}
		}
	}
	out.Remove = slices.Clone(eff.Remove)
	return out
}

// overlay applies block b over base: b's preset (if any) replaces base,
// then b's fields replace the result's.
func overlay(base SecurityHeaders, b *SecurityHeaders) SecurityHeaders {
	if b == nil {
		return base
	}
	if b.Preset != "" {
		base = SecurityPresets[b.Preset]
	}
	src, dst := securityFields(b), securityFields(&base)
	for i := range src {
		if v := *src[i].value; v != "" {
			*dst[i].value = v
		}
	}
	if b.Remove != nil {
		base.Remove = b.Remove
	}
	return base
}

type securityField struct {
	yaml, header string
	value        *string
}

// securityFields lists h's header fields in the order they are set.
func securityFields(h *SecurityHeaders) []securityField {
	return []securityField{
		{"hsts", "Strict-Transport-Security", &h.HSTS},
		{"content_type_options", "X-Content-Type-Options", &h.ContentTypeOptions},
		{"frame_options", "X-Frame-Options", &h.FrameOptions},
		{"referrer_policy", "Referrer-Policy", &h.ReferrerPolicy},
		{"content_security_policy", "Content-Security-Policy", &h.ContentSecurityPolicy},
		{"permissions_policy", "Permissions-Policy", &h.PermissionsPolicy},
		{"cross_origin_opener_policy", "Cross-Origin-Opener-Policy", &h.CrossOriginOpenerPolicy},
		{"cross_origin_resource_policy", "Cross-Origin-Resource-Policy", &h.CrossOriginResourcePolicy},
		{"cross_origin_embedder_policy", "Cross-Origin-Embedder-Policy", &h.CrossOriginEmbedderPolicy},
	}
}

// IPFilter admits or refuses requests by the client's address (the peer,
// or the trusted proxies' X-Forwarded-For: see server.trusted_proxies).
// Deny wins over allow; an allow list admits only the addresses in it.
// The top-level filter is checked before routing, a route's after it: a
// route's filter narrows, it can't widen.
type IPFilter struct {
	// Allow lists CIDRs or addresses, IPv4 and IPv6; when set, only these
	// are admitted.
	Allow []string `yaml:"allow" json:"allow,omitempty"`
	// Deny lists CIDRs or addresses that are refused (403).
	Deny []string `yaml:"deny" json:"deny,omitempty"`
	// AllowPrefixes and DenyPrefixes are the lists parsed, filled by
	// validation.
	AllowPrefixes []netip.Prefix `yaml:"-" json:"-"`
	DenyPrefixes  []netip.Prefix `yaml:"-" json:"-"`
}

// Validation of the three blocks.

// cors checks a CORS block (top-level or a route's).
func (v *validator) cors(p string, c *CORS) {
	if c == nil {
		return
	}
	if !c.On() {
		if len(c.AllowOrigins)+len(c.AllowMethods)+len(c.AllowHeaders)+len(c.ExposeHeaders) > 0 || c.AllowCredentials || c.MaxAge != 0 || c.AllowPrivateNetwork {
			v.add(p+".enabled", "false turns CORS off here: the other fields would have no effect")
		}
		return
	}
	if len(c.AllowOrigins) == 0 {
		v.add(p+".allow_origins", "required: the origins allowed (\"https://app.example.com\", \"https://*.example.com\" or \"*\")")
	}
	seen := map[string]bool{}
	for i, s := range c.AllowOrigins {
		fp := fmt.Sprintf("%s.allow_origins[%d]", p, i)
		o, err := ParseOrigin(s)
		switch {
		case err != nil:
			v.add(fp, "%v", err)
		case o.Any:
			if len(c.AllowOrigins) > 1 {
				v.add(fp, `"*" allows every origin: list it alone`)
			}
			if c.AllowCredentials {
				v.add(fp, `"*" can't be used with allow_credentials: browsers refuse "Access-Control-Allow-Origin: *" on a request with credentials (Fetch 4.10, CORS check); list the origins`)
			}
		case seen[o.String()]:
			v.add(fp, "%q is listed twice", s)
		}
		seen[o.String()] = true
	}
	v.tokenList(p+".allow_methods", c.AllowMethods, true)
	for i, m := range c.AllowMethods {
		if m != "*" && validToken(m) && strings.ToUpper(m) != m {
			v.add(fmt.Sprintf("%s.allow_methods[%d]", p, i), "%q: methods are case-sensitive; write it in upper case", m)
		}
	}
	v.tokenList(p+".allow_headers", c.AllowHeaders, true)
	v.tokenList(p+".expose_headers", c.ExposeHeaders, true)
	if c.AllowCredentials && slices.Contains(c.ExposeHeaders, "*") {
		v.add(p+".expose_headers", `"*" exposes nothing on a request with credentials (Fetch 3.3.4: it is then a header name): list the headers`)
	}
	if d := c.MaxAge.D(); d != 0 && d.Seconds() < 1 {
		v.add(p+".max_age", "must be at least 1s (it is sent in whole seconds), got %v", d)
	}
}

// tokenList checks a list of header names or methods: tokens, once each
// (case-insensitive), and "*" alone when star.
func (v *validator) tokenList(p string, list []string, star bool) {
	seen := map[string]bool{}
	for i, s := range list {
		fp := fmt.Sprintf("%s[%d]", p, i)
		switch {
		case s == "*" && star:
			if len(list) > 1 {
				v.add(fp, `"*" means all: list it alone`)
			}
		case !validToken(s):
			v.add(fp, "%q is not a token (a header name or method)", s)
		case seen[strings.ToLower(s)]:
			v.add(fp, "%q is listed twice", s)
		}
		seen[strings.ToLower(s)] = true
	}
}

// securityHeaders checks a security_headers block.
func (v *validator) securityHeaders(p string, h *SecurityHeaders) {
	if h == nil {
		return
	}
	if _, ok := SecurityPresets[h.Preset]; !ok && h.Preset != "" {
		v.add(p+".preset", "want strict, basic or none, got %q", h.Preset)
	}
	for _, f := range securityFields(h) {
		val := *f.value
		if val == "" || val == Off {
			continue
		}
		fp := p + "." + f.yaml
		if strings.ContainsAny(val, "\r\n\x00") {
			v.add(fp, "value must not contain CR, LF or NUL")
			continue
		}
		if err := checkSecurityValue(f.yaml, val); err != nil {
			v.add(fp, "%v (or %q to leave the header alone)", err, Off)
		}
	}
	for i, name := range h.Remove {
		fp := fmt.Sprintf("%s.remove[%d]", p, i)
		if !validToken(name) {
			v.add(fp, "%q is not a header name", name)
		} else if hopByHop[strings.ToLower(name)] || strings.EqualFold(name, "Content-Type") || strings.EqualFold(name, "X-Request-Id") {
			v.add(fp, "%s is managed by the proxy and can't be removed", name)
		}
	}
}

// checkSecurityValue checks the values whose syntax is small and fixed;
// CSP and Permissions-Policy are passed as written.
func checkSecurityValue(field, val string) error {
	oneOf := func(allowed ...string) error {
		if slices.Contains(allowed, val) {
			return nil
		}
		return fmt.Errorf("want %s, got %q", strings.Join(allowed, ", "), val)
	}
	switch field {
	case "hsts":
		return checkHSTS(val)
	case "content_type_options":
		return oneOf("nosniff")
	case "frame_options":
		if strings.HasPrefix(strings.ToUpper(val), "ALLOW-FROM") {
			return fmt.Errorf("ALLOW-FROM is obsolete and ignored by browsers: use content_security_policy's frame-ancestors")
		}
		return oneOf("DENY", "SAMEORIGIN")
	case "referrer_policy":
		// A comma-separated list: browsers take the last value they know.
		for _, t := range strings.Split(val, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains([]string{"no-referrer", "no-referrer-when-downgrade", "origin", "origin-when-cross-origin", "same-origin", "strict-origin", "strict-origin-when-cross-origin", "unsafe-url"}, t) {
				return fmt.Errorf("%q is not a referrer policy (W3C Referrer Policy 3)", t)
			}
		}
	case "cross_origin_opener_policy":
		return oneOf("same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none")
	case "cross_origin_resource_policy":
		return oneOf("same-origin", "same-site", "cross-origin")
	case "cross_origin_embedder_policy":
		return oneOf("require-corp", "credentialless", "unsafe-none")
	}
	return nil
}

// checkHSTS checks a Strict-Transport-Security value (RFC 6797 6.1):
// max-age is required, includeSubDomains and preload are optional, each
// once; other directives are refused here as likely typos.
func checkHSTS(val string) error {
	seen := map[string]bool{}
	for _, d := range strings.Split(val, ";") {
		d = strings.TrimSpace(d)
		name, arg, hasArg := strings.Cut(d, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if seen[name] {
			return fmt.Errorf("%q: directive %s twice (RFC 6797 6.1)", val, name)
		}
		seen[name] = true
		switch {
		case name == "max-age" && hasArg:
			arg = strings.Trim(strings.TrimSpace(arg), `"`)
			if n, err := strconv.ParseUint(arg, 10, 32); err != nil || arg == "" {
				return fmt.Errorf("%q: max-age must be a number of seconds", val)
			} else if n == 0 {
				return fmt.Errorf("%q: max-age=0 tells browsers to forget the policy", val)
			}
		case (name == "includesubdomains" || name == "preload") && !hasArg:
		default:
			return fmt.Errorf("%q: want max-age=SECONDS, then includeSubDomains and preload if wanted (RFC 6797 6.1)", val)
		}
	}
	if !seen["max-age"] {
		return fmt.Errorf("%q: max-age is required (RFC 6797 6.1.1)", val)
	}
	return nil
}

// ipFilter checks an ip_filter block and fills its parsed prefixes.
func (v *validator) ipFilter(p string, f *IPFilter) {
	if f == nil {
		return
	}
	if len(f.Allow) == 0 && len(f.Deny) == 0 {
		v.add(p, "set allow, deny or both (CIDRs or addresses)")
	}
	parse := func(field string, list []string) []netip.Prefix {
		out := make([]netip.Prefix, 0, len(list))
		for i, s := range list {
			prefix, err := ParsePrefix(s)
			if err != nil {
				v.add(fmt.Sprintf("%s.%s[%d]", p, field, i), "%v", err)
				continue
			}
			out = append(out, prefix)
		}
		return out
	}
	f.AllowPrefixes, f.DenyPrefixes = parse("allow", f.Allow), parse("deny", f.Deny)
}

// policies checks the top-level policy blocks and every route's.
func (v *validator) policies(c *Config) {
	v.cors("cors", c.CORS)
	v.securityHeaders("security_headers", c.SecurityHeaders)
	v.ipFilter("ip_filter", c.IPFilter)
	v.compression("compression", c.Compression)
	v.requestDecompression("request_decompression", c.RequestDecompression)
	v.cache(c)
	for i, r := range c.Routes {
		if r == nil {
			continue
		}
		p := fmt.Sprintf("routes[%d]", i)
		v.cors(p+".cors", r.CORS)
		if r.CORS != nil && !r.CORS.On() && c.CORS == nil {
			v.add(p+".cors.enabled", "false turns off the top-level cors block, and there is none")
		}
		v.securityHeaders(p+".security_headers", r.SecurityHeaders)
		v.ipFilter(p+".ip_filter", r.IPFilter)
		v.compression(p+".compression", r.Compression)
		if r.Compression != nil && !r.Compression.On() && c.Compression == nil {
			v.add(p+".compression.enabled", "false turns off the top-level compression block, and there is none")
		}
		v.requestDecompression(p+".request_decompression", r.RequestDecompression)
		if r.RequestDecompression != nil && !r.RequestDecompression.On() && c.RequestDecompression == nil {
			v.add(p+".request_decompression.enabled", "false turns off the top-level request_decompression block, and there is none")
		}
		v.corsBehindIPFilter(p, r, c)
	}
}

// corsBehindIPFilter refuses "Access-Control-Allow-Origin: *" on a route
// an allow list protects: a browser inside the allowed network would let
// any web page read what the filter keeps from the rest of the world
// (Fetch, "Basic safe CORS protocol setup").
func (v *validator) corsBehindIPFilter(p string, r *Route, c *Config) {
	cors := c.CORSFor(r)
	if cors == nil || len(cors.AllowOrigins) != 1 || cors.AllowOrigins[0] != "*" {
		return
	}
	if (c.IPFilter == nil || len(c.IPFilter.Allow) == 0) && (r.IPFilter == nil || len(r.IPFilter.Allow) == 0) {
		return
	}
	field := "cors.allow_origins[0]"
	if r.CORS != nil {
		field = p + ".cors.allow_origins[0]"
	}
	v.add(field, `"*" on route %q, which an ip_filter allow list protects: any web page opened inside the allowed network could read it (Fetch, "Basic safe CORS protocol setup"); list the origins`, r.Name)
}
