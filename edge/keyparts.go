package edge

import (
	"strings"
)

// keyPart appends one part of a rate-limit or quota key: who the caller
// is, as the config's key list says. The kind is decided when the snapshot
// is built (compileKey); appending only reads the exchange.
type keyPart interface {
	appendTo(dst []byte, x *exchange) []byte
}

type (
	ipPart     struct{}              // the client address
	callerPart struct{ user bool }   // the API key's id; for user, else the JWT subject; else the address
	headerPart struct{ name []byte } // a request header's value
	claimPart  struct{ name string } // a verified JWT claim's value
	// routePart adds nothing: rate-limit keys start with the route name
	// already, and quota keys put it first (withoutRoute).
	routePart struct{}
)

var (
	_ keyPart = ipPart{}
	_ keyPart = callerPart{}
	_ keyPart = headerPart{}
	_ keyPart = claimPart{}
	_ keyPart = routePart{}
)

func (ipPart) appendTo(dst []byte, x *exchange) []byte { return append(dst, x.clientIP()...) }

func (p callerPart) appendTo(dst []byte, x *exchange) []byte {
	switch {
	case x.apiKey != nil:
		return append(dst, x.apiKey.ID...)
	case p.user && x.identity != nil:
		return append(dst, x.identity.Subject...)
	}
	// Not authenticated that way: the client address stands in.
	return append(dst, x.clientIP()...)
}

func (p headerPart) appendTo(dst []byte, x *exchange) []byte {
	return append(dst, x.ctx.Request.Header.PeekBytes(p.name)...)
}

func (routePart) appendTo(dst []byte, _ *exchange) []byte { return dst }

func (p claimPart) appendTo(dst []byte, x *exchange) []byte {
	if x.identity == nil {
		return dst
	}
	return append(dst, x.identity.Claims[p.name]...)
}

// compileKey turns a config key list ("ip", "api_key", "user", "route",
// "header:NAME", "claim:NAME"; validated) into parts.
func compileKey(key []string) (parts []keyPart) {
	for _, k := range key {
		kind, name, _ := strings.Cut(k, ":")
		switch kind {
		case "ip":
			parts = append(parts, ipPart{})
		case "api_key", "user":
			parts = append(parts, callerPart{user: kind == "user"})
		case "header":
			parts = append(parts, headerPart{name: []byte(name)})
		case "claim":
			parts = append(parts, claimPart{name: name})
		case "route":
			parts = append(parts, routePart{})
		}
	}
	return parts
}

// withoutRoute drops the route parts, and says whether there were any.
func withoutRoute(parts []keyPart) (rest []keyPart, byRoute bool) {
	for _, p := range parts {
		if _, ok := p.(routePart); ok {
			byRoute = true
			continue
		}
		rest = append(rest, p)
	}
	return rest, byRoute
}

// appendKey appends each part's value, '|' before each (after the first
// too when sep).
func appendKey(dst []byte, x *exchange, parts []keyPart, sep bool) []byte {
	for i, p := range parts {
		if sep || i > 0 {
			dst = append(dst, '|')
		}
		dst = p.appendTo(dst, x)
	}
	return dst
}
