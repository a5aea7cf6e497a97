package edge

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// The admin console's session cookie never reaches an upstream (review
// H3): browsers send a host's cookies to all its ports (RFC 6265 section
// 8.5), so a console user's sluice_session arrives at the data plane too.
// The other cookies pass on.
func TestConsoleCookieNotForwarded(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
  - { name: echo, match: { prefix: / }, upstream: up, rewrite: { replace_path: /__stub/echo } }
`, up.URL))
	cases := []struct{ sent, want string }{
		{"sluice_session=abc", ""},
		{"a=1; sluice_session=abc; b=2", "a=1; b=2"},
		{"sluice_session=abc; theme=dark", "theme=dark"},
		{"a=1;sluice_session=abc", "a=1"},
		{"a=1; b=2", "a=1; b=2"},
		{"xsluice_session=1; a=2", "xsluice_session=1; a=2"},
		{"note=sluice_session", "note=sluice_session"},
		{"", ""},
	}
	for _, tc := range cases {
		t.Run(tc.sent, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.sent != "" {
				hdr["Cookie"] = tc.sent
			}
			e, _ := g.echo(t, request{path: "/x", headers: hdr})
			if got := strings.Join(e.Headers["Cookie"], "|"); got != tc.want {
				t.Fatalf("Cookie %q reached the upstream as %q, want %q", tc.sent, got, tc.want)
			}
		})
	}
}
