package edge

import (
	"strings"
	"testing"

	"github.com/sluicegw/sluice/edge/config"
)

// FuzzCORSAllowsOrigin: for any Origin header, the compiled matcher (a map
// lookup and wildcard suffixes over lower-cased bytes) agrees with the
// rule written plainly on top of config.ParseOrigin: same scheme, same
// port, and the same host or a subdomain of a wildcard's.
func FuzzCORSAllowsOrigin(f *testing.F) {
	allowed := []string{"https://app.example", "http://127.0.0.1:5173", "http://[::1]:8080", "https://*.example.org", "http://*.dev.test:3000"}
	p := compileCORS(&config.CORS{AllowOrigins: allowed})
	var policy []config.Origin
	for _, s := range allowed {
		o, err := config.ParseOrigin(s)
		if err != nil {
			f.Fatal(err)
		}
		policy = append(policy, o)
	}
	for _, s := range []string{"https://app.example", "https://APP.example", "https://a.b.example.org", "https://example.org", "https://a..example.org",
		"http://x.dev.test:3000", "http://x.dev.test", "https://a.example.org.evil", "null", "http://[::1]:8080", "https://" + strings.Repeat("a", 70) + ".example.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, origin string) {
		if got, want := p.allowsOrigin([]byte(origin)), plainAllows(policy, origin); got != want {
			t.Fatalf("allowsOrigin(%q) = %v, the plain rule says %v", origin, got, want)
		}
	})
}

func plainAllows(policy []config.Origin, s string) bool {
	o, err := config.ParseOrigin(s)
	if err != nil || o.Any || o.Wildcard {
		return false // not an origin a browser would send
	}
	for _, a := range policy {
		if a.Scheme != o.Scheme || a.Port != o.Port {
			continue
		}
		if !a.Wildcard && a.Host == o.Host || a.Wildcard && strings.HasSuffix(o.Host, "."+a.Host) {
			return true
		}
	}
	return false
}
