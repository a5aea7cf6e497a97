package admin

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// The admin listener answers only to names it knows (review H2, DNS
// rebinding): a page on http://rebind.evil:9901, whose name the attacker
// then points at 127.0.0.1, reaches the listener from the victim's
// browser as the page's own origin, so Origin checks alone let it in;
// its Host header still says rebind.evil, and is refused here before
// authentication. Known names: IP literals (a rebinding page can't have
// one as its origin), "localhost", the host of admin.listen, admin.hosts
// and the host of admin.public_origin.

// AllowHosts sets the host names the listener answers to besides IP
// literals and localhost: the host of listen (admin.listen) and hosts
// (admin.hosts). Call it before serving.
func (a *Auth) AllowHosts(listen string, hosts []string) *Auth {
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		a.hosts = append(a.hosts, strings.ToLower(h))
	}
	for _, h := range hosts {
		a.hosts = append(a.hosts, strings.ToLower(h))
	}
	return a
}

// SetPublicOrigin sets admin.public_origin (validated by the config), the
// origin browsers use when a TLS proxy fronts the listener: Origin
// headers naming it pass, its host is a known name, and with https the
// session cookie is Secure. Call it before serving.
func (a *Auth) SetPublicOrigin(origin string) *Auth {
	u, err := url.Parse(origin)
	if origin == "" || err != nil || u.Host == "" {
		return a
	}
	a.publicOrigin = strings.ToLower(u.Scheme + "://" + u.Host)
	a.hosts = append(a.hosts, strings.ToLower(u.Hostname()))
	a.secureCookie = u.Scheme == "https"
	return a
}

// hostAllowed reports whether host (a Host header or an origin's host,
// with or without a port) names this listener.
func (a *Auth) hostAllowed(host string) bool {
	h := host
	if s, _, err := net.SplitHostPort(host); err == nil {
		h = s
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if net.ParseIP(h) != nil || strings.EqualFold(h, "localhost") {
		return true
	}
	for _, k := range a.hosts {
		if strings.EqualFold(h, k) {
			return true
		}
	}
	return false
}

// hostRefused answers a request whose Host is not one of the listener's
// names: 421 Misdirected Request (RFC 9110 section 15.5.20). A request
// without Host (HTTP/1.0, which no browser sends) passes, and so do the
// probes /health and /ready, which load balancers may send under any
// name.
func (a *Auth) hostRefused(ctx *fasthttp.RequestCtx) bool {
	host := ctx.Request.Header.Host()
	if len(host) == 0 || a.hostAllowed(string(host)) {
		return false
	}
	if p := string(ctx.Path()); p == "/health" || p == "/ready" {
		return false
	}
	a.warn("admin request for an unknown host refused", "client_ip", ctx.RemoteIP().String(),
		"host", string(host), "path", string(ctx.Path()))
	writeJSON(ctx, fasthttp.StatusMisdirectedRequest, map[string]string{
		"error": "unknown host " + strconv.Quote(string(host)) + ": the admin listener answers to IP addresses, localhost, the admin.listen host and admin.hosts"})
	return true
}

// originAllowed reports whether an Origin header names this listener:
// the scheme and Host it was reached at, the host a known name, or
// admin.public_origin. "null" and anything else are refused.
func (a *Auth) originAllowed(ctx *fasthttp.RequestCtx, origin string) bool {
	if a.publicOrigin != "" && strings.EqualFold(origin, a.publicOrigin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || !a.hostAllowed(u.Host) {
		return false
	}
	scheme := "http://"
	if ctx.IsTLS() {
		scheme = "https://"
	}
	return strings.EqualFold(origin, scheme+string(ctx.Request.Header.Host()))
}
