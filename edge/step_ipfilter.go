package edge

import (
	"net/netip"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/ipset"
	"github.com/valyala/fasthttp"
)

// ipFilter admits or refuses a request by its client address (clientIP:
// the peer, or what the trusted proxies say in X-Forwarded-For). The
// top-level ip_filter runs in Gateway.serve before routing, a route's as
// its first step: a request must pass both.
type ipFilter struct {
	allow *ipset.Set // nil: no allow list, every address not denied
	deny  *ipset.Set // nil: no deny list
}

// ipFilterStep is a route's own ip_filter.
type ipFilterStep struct{ f *ipFilter }

var _ step = ipFilterStep{}

var faultIPFilter = &fault{fasthttp.StatusForbidden, "forbidden by ip filter"}

// compileIPFilter builds the sets from the prefixes validation parsed;
// nil for no filter.
func compileIPFilter(f *config.IPFilter) *ipFilter {
	if f == nil {
		return nil
	}
	out := &ipFilter{}
	if len(f.AllowPrefixes) > 0 {
		out.allow = ipset.New(f.AllowPrefixes)
	}
	if len(f.DenyPrefixes) > 0 {
		out.deny = ipset.New(f.DenyPrefixes)
	}
	return out
}

// admits: deny wins over allow, and an allow list admits only what it
// holds. An address that can't be read (a trusted proxy's
// X-Forwarded-For entry that is not an address) is refused: a filter
// that doesn't know who is calling can't let them through.
func (f *ipFilter) admits(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	if f.deny.Contains(a) {
		return false
	}
	return f.allow == nil || f.allow.Contains(a)
}

// admitIP answers 403 and returns false when f refuses the client; a nil
// f admits everyone.
func (x *exchange) admitIP(f *ipFilter) bool {
	if f == nil || f.admits(x.clientAddr()) {
		return true
	}
	x.fail(faultIPFilter)
	return false
}

func (s ipFilterStep) serve(x *exchange) {
	if x.admitIP(s.f) {
		x.next()
	}
}
