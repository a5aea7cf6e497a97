package edge

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// The top-level ip_filter, checked before routing on the client address
// the trusted proxy reports: deny wins over allow, an allow list admits
// only what it holds, both families, and a refused client never reaches
// the upstream nor learns which paths exist.
func TestIPFilterTopLevel(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, `
server: { trusted_proxies: [127.0.0.1] }
ip_filter:
  allow: [203.0.113.0/24, "2001:db8::/32"]
  deny: [203.0.113.66, "2001:db8:bad::/48"]
`+oneUpstream(up.URL, catchAll))
	cases := []struct {
		xff    string
		path   string
		admit  bool
		reason string
	}{
		{"203.0.113.5", "/x", true, "on the allow list"},
		{"203.0.113.66", "/x", false, "denied inside an allowed range: deny wins"},
		{"198.51.100.1", "/x", false, "not on the allow list"},
		{"2001:db8::5", "/x", true, "IPv6 on the allow list"},
		{"2001:db8:bad::1", "/x", false, "IPv6 denied inside an allowed range"},
		{"2001:db9::1", "/x", false, "IPv6 not on the allow list"},
		{"::ffff:203.0.113.5", "/x", true, "an IPv4-mapped address is its IPv4 address"},
		{"203.0.113.5, 198.51.100.1", "/x", false, "the trusted proxy's entry (rightmost) counts, not what the client claimed"},
		{"198.51.100.1, 203.0.113.5", "/x", true, "a claim on the left can't get a client refused either"},
		{"not-an-address", "/x", false, "an entry that is not an address: who is calling is unknown"},
		{"198.51.100.1", "/services/health", false, "before the built-ins"},
	}
	for _, c := range cases {
		before := up.Requests()
		r := g.do(t, request{path: c.path, headers: map[string]string{"X-Forwarded-For": c.xff}})
		if c.admit {
			if r.status != 200 || up.Requests() != before+1 {
				t.Errorf("%s (%s): %d, upstream requests +%d; want admitted", c.xff, c.reason, r.status, up.Requests()-before)
			}
			continue
		}
		wantFault(t, r, 403, "forbidden by ip filter")
		if up.Requests() != before {
			t.Errorf("%s (%s): a refused request reached the upstream", c.xff, c.reason)
		}
	}
	// The peer itself (127.0.0.1) is on no list: without X-Forwarded-For it
	// is the client, and refused.
	wantFault(t, g.get(t, "/x"), 403, "forbidden by ip filter")
}

// Without trusted proxies, X-Forwarded-For is the client's own claim and
// is ignored: the peer's address is filtered.
func TestIPFilterIgnoresUntrustedForwardedFor(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, "ip_filter: { allow: [203.0.113.0/24] }\n"+oneUpstream(up.URL, catchAll))
	wantFault(t, g.do(t, request{path: "/x", headers: map[string]string{"X-Forwarded-For": "203.0.113.5"}}), 403, "forbidden by ip filter")

	g = startGateway(t, "ip_filter: { deny: [127.0.0.1] }\n"+oneUpstream(up.URL, catchAll))
	wantFault(t, g.do(t, request{path: "/x", headers: map[string]string{"X-Forwarded-For": "203.0.113.5"}}), 403, "forbidden by ip filter")
}

// A route's filter is checked after the top-level one: it narrows, never
// widens; other routes are untouched by it.
func TestIPFilterPerRoute(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, `
server: { trusted_proxies: [127.0.0.1] }
ip_filter: { deny: [198.51.100.0/24] }
security_headers: { preset: strict }
`+oneUpstream(up.URL, `  - { name: admin, match: { prefix: /admin/ }, upstream: up, ip_filter: { allow: [10.0.0.0/8, "fd00::/8"], deny: [10.9.0.0/16] } }
  - { name: wide, match: { prefix: /wide/ }, upstream: up, ip_filter: { allow: [198.51.100.0/24] } }
`+catchAll))
	cases := []struct {
		xff, path string
		admit     bool
	}{
		{"10.1.1.1", "/admin/x", true},
		{"fd00::1", "/admin/x", true},
		{"10.9.1.1", "/admin/x", false},    // the route's deny
		{"203.0.113.9", "/admin/x", false}, // not on the route's allow list
		{"203.0.113.9", "/public", true},   // other routes don't have it
		{"198.51.100.7", "/public", false}, // the top-level deny
		{"198.51.100.7", "/wide/x", false}, // a route's allow can't undo the top-level deny
	}
	for _, c := range cases {
		r := g.do(t, request{path: c.path, headers: map[string]string{"X-Forwarded-For": c.xff}})
		if c.admit && r.status != 200 {
			t.Errorf("%s %s: %d, want 200", c.xff, c.path, r.status)
		} else if !c.admit {
			wantFault(t, r, 403, "forbidden by ip filter")
		}
		// Every answer carries the security headers, a route's own ip
		// filter refusal too (it went out without them, found in review).
		if r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: %d answer without the security headers", c.xff, c.path, r.status)
		}
	}
}

// 10,000 entries load, validate and match (the list a user might import
// from a blocklist), and a reload swaps the lists.
func TestIPFilterLargeListAndReload(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	var b strings.Builder
	b.WriteString("server: { trusted_proxies: [127.0.0.1] }\nip_filter:\n  deny:\n")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&b, "    - 100.%d.%d.0/24\n", 64+i/256, i%256)
	}
	cfg := b.String() + oneUpstream(up.URL, catchAll)
	g := startGateway(t, cfg)
	from := func(ip string) response {
		return g.do(t, request{path: "/x", headers: map[string]string{"X-Forwarded-For": ip}})
	}
	wantFault(t, from("100.64.0.1"), 403, "forbidden by ip filter")
	wantFault(t, from("100.103.15.200"), 403, "forbidden by ip filter") // entry 9999
	if r := from("100.103.16.1"); r.status != 200 {
		t.Errorf("an address past the last entry: %d", r.status)
	}
	if err := g.Apply(mustParse(t, strings.Replace(cfg, "    - 100.64.0.0/24\n", "", 1))); err != nil {
		t.Fatal(err)
	}
	if r := from("100.64.0.1"); r.status != 200 {
		t.Errorf("after a reload without the entry: %d", r.status)
	}
	wantFault(t, from("100.64.1.1"), 403, "forbidden by ip filter")
}
