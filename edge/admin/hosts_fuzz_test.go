package admin

import (
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzHostAndOrigin throws arbitrary Host and Origin values and URLs at
// the listener's name checks and at redactURL: no panic; a Host passes
// only as an IP literal, localhost or a listed name; an Origin passes
// only naming the Host it came with; a redacted URL keeps neither its
// userinfo nor its query.
func FuzzHostAndOrigin(f *testing.F) {
	f.Add("127.0.0.1:9901", "http://127.0.0.1:9901", "https://u:p@idp/x?t=1")
	f.Add("rebind.evil:9901", "http://rebind.evil:9901", "u:p@host:8500")
	f.Add("[::1]:9901", "null", "http://[::1]:80/?")
	f.Add("Admin.Example.com", "HTTPS://admin.example.com", "%zz://@")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, host, origin, raw string) {
		a := NewAuth(false, "", "", "", nil).AllowHosts("gw.internal:9901", []string{"admin.example.com"})
		if a.hostAllowed(host) {
			h := host
			if s, _, err := net.SplitHostPort(host); err == nil {
				h = s
			}
			h = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
			if net.ParseIP(h) == nil && h != "localhost" && h != "gw.internal" && h != "admin.example.com" {
				t.Fatalf("host %q allowed", host)
			}
		}
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetHost(host)
		if a.originAllowed(&ctx, origin) && !strings.EqualFold(origin, "http://"+string(ctx.Request.Header.Host())) {
			t.Fatalf("origin %q allowed for host %q", origin, host)
		}
		out := redactURL(raw)
		if u, err := url.Parse(raw); err == nil && strings.Contains(raw, "://") {
			if u.User != nil && u.User.String() != "" && strings.Contains(out, u.User.String()+"@") {
				t.Fatalf("userinfo of %q shown: %q", raw, out)
			}
			if u.RawQuery != "" && strings.Contains(out, "?"+u.RawQuery) {
				t.Fatalf("query of %q shown: %q", raw, out)
			}
		}
	})
}
