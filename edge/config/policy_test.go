package config

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// routeWith is minimal with fields added to its route.
func routeWith(fields string) string {
	return strings.Replace(minimal, "    upstream: users\n", "    upstream: users\n"+fields, 1)
}

// Each malformed policy value gets "file:line: field: message".
func TestPolicyErrorsNameLineAndField(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string
	}{
		{"origins", "cors:\n  allow_origins:\n    - https://app.example.com/\n    - app.example.com\n    - \"null\"\n    - https://a.example.com:443\n    - https://*.*.example.com\n    - http://x:99999\n    - https://app.example.com\n    - HTTPS://APP.example.com\n" + minimal, []string{
			`b.yaml:3: cors.allow_origins[0]: "https://app.example.com/": an origin has no path, query or trailing slash: write "https://app.example.com"`,
			`b.yaml:4: cors.allow_origins[1]: "app.example.com": want "*", scheme://host[:port] or scheme://*.domain[:port]`,
			`b.yaml:5: cors.allow_origins[2]: "null" is the origin of sandboxed documents`,
			`b.yaml:6: cors.allow_origins[3]: "https://a.example.com:443": browsers leave out the default port: write "https://a.example.com"`,
			`b.yaml:7: cors.allow_origins[4]: "https://*.*.example.com": the host must be a name, an address or *.domain`,
			`b.yaml:8: cors.allow_origins[5]: "http://x:99999": bad port "99999"`,
			`b.yaml:10: cors.allow_origins[7]: "HTTPS://APP.example.com" is listed twice`,
		}},
		{"star with credentials", "cors: { allow_origins: [\"*\"], allow_credentials: true, expose_headers: [\"*\"] }\n" + minimal, []string{
			`b.yaml:1: cors.allow_origins[0]: "*" can't be used with allow_credentials: browsers refuse "Access-Control-Allow-Origin: *" on a request with credentials (Fetch 4.10, CORS check)`,
			`b.yaml:1: cors.expose_headers: "*" exposes nothing on a request with credentials`,
		}},
		{"star among origins", "cors: { allow_origins: [https://a.example, \"*\"] }\n" + minimal,
			[]string{`b.yaml:1: cors.allow_origins[1]: "*" allows every origin: list it alone`}},
		{"no origins", "cors: { allow_methods: [PUT] }\n" + minimal,
			[]string{`b.yaml:1: cors.allow_origins: required`}},
		{"methods and headers", "cors:\n  allow_origins: [https://a.example]\n  allow_methods: [put, \"GET POST\", \"*\"]\n  allow_headers: [X-Ok, x-ok, \"Bad Header\"]\n  max_age: 500ms\n" + minimal, []string{
			`b.yaml:3: cors.allow_methods[0]: "put": methods are case-sensitive; write it in upper case`,
			`b.yaml:3: cors.allow_methods[1]: "GET POST" is not a token`,
			`b.yaml:3: cors.allow_methods[2]: "*" means all: list it alone`,
			`b.yaml:4: cors.allow_headers[1]: "x-ok" is listed twice`,
			`b.yaml:4: cors.allow_headers[2]: "Bad Header" is not a token`,
			`b.yaml:5: cors.max_age: must be at least 1s`,
		}},
		{"route cors off with fields", routeWith("    cors:\n      enabled: false\n      allow_origins: [https://a.example]\n"), []string{
			`b.yaml:12: routes[0].cors.enabled: false turns CORS off here: the other fields would have no effect`,
			`b.yaml:12: routes[0].cors.enabled: false turns off the top-level cors block, and there is none`,
		}},
		{"star behind an allow list", "ip_filter: { allow: [10.0.0.0/8] }\ncors: { allow_origins: [\"*\"] }\n" + minimal,
			[]string{`b.yaml:2: cors.allow_origins[0]: "*" on route "users", which an ip_filter allow list protects`}},
		{"route star behind its allow list", routeWith("    ip_filter: { allow: [10.0.0.0/8] }\n    cors: { allow_origins: [\"*\"] }\n"),
			[]string{`b.yaml:12: routes[0].cors.allow_origins[0]: "*" on route "users"`}},
		{"security headers", "security_headers:\n  preset: paranoid\n  hsts: max-age=abc\n  content_type_options: sniff\n  frame_options: ALLOW-FROM https://a.example\n  referrer_policy: no-referrer, everything\n  cross_origin_opener_policy: same-site\n  cross_origin_resource_policy: none\n  cross_origin_embedder_policy: require\n  content_security_policy: \"default-src 'none'\\r\\nX-Evil: 1\"\n  remove: [Server, Content-Length, \"X Y\"]\n" + minimal, []string{
			`b.yaml:2: security_headers.preset: want strict, basic or none, got "paranoid"`,
			`b.yaml:3: security_headers.hsts: "max-age=abc": max-age must be a number of seconds (or "off" to leave the header alone)`,
			`b.yaml:4: security_headers.content_type_options: want nosniff, got "sniff"`,
			`b.yaml:5: security_headers.frame_options: ALLOW-FROM is obsolete and ignored by browsers: use content_security_policy's frame-ancestors`,
			`b.yaml:6: security_headers.referrer_policy: "everything" is not a referrer policy`,
			`b.yaml:7: security_headers.cross_origin_opener_policy: want same-origin, same-origin-allow-popups, noopener-allow-popups, unsafe-none, got "same-site"`,
			`b.yaml:8: security_headers.cross_origin_resource_policy: want same-origin, same-site, cross-origin, got "none"`,
			`b.yaml:9: security_headers.cross_origin_embedder_policy: want require-corp, credentialless, unsafe-none, got "require"`,
			`b.yaml:10: security_headers.content_security_policy: value must not contain CR, LF or NUL`,
			`b.yaml:11: security_headers.remove[1]: Content-Length is managed by the proxy and can't be removed`,
			`b.yaml:11: security_headers.remove[2]: "X Y" is not a header name`,
		}},
		{"hsts forms", routeWith("    security_headers: { hsts: \"includeSubDomains\" }\n") + "  - name: b\n    match: { prefix: /b/ }\n    upstream: users\n    security_headers: { hsts: \"max-age=0\" }\n  - name: c\n    match: { prefix: /c/ }\n    upstream: users\n    security_headers: { hsts: \"max-age=10; preload; preload\" }\n  - name: d\n    match: { prefix: /d/ }\n    upstream: users\n    security_headers: { hsts: \"max-age=10; include_subdomains\" }\n", []string{
			`b.yaml:11: routes[0].security_headers.hsts: "includeSubDomains": max-age is required (RFC 6797 6.1.1)`,
			`b.yaml:15: routes[1].security_headers.hsts: "max-age=0": max-age=0 tells browsers to forget the policy`,
			`b.yaml:19: routes[2].security_headers.hsts: "max-age=10; preload; preload": directive preload twice`,
			`b.yaml:23: routes[3].security_headers.hsts: "max-age=10; include_subdomains": want max-age=SECONDS`,
		}},
		{"ip filter", "ip_filter:\n  allow:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n  deny:\n    - 2001:db8::/129\n    - not-an-ip\n" + routeWith("    ip_filter: {}\n"), []string{
			`b.yaml:4: ip_filter.allow[1]: "10.0.0.0/33" is not a CIDR`,
			`b.yaml:6: ip_filter.deny[0]: "2001:db8::/129" is not a CIDR`,
			`b.yaml:7: ip_filter.deny[1]: "not-an-ip" is not an IP address or CIDR`,
			`b.yaml:18: routes[0].ip_filter: set allow, deny or both`,
		}},
		{"unknown policy field", "cors: { allow_origin: [\"*\"] }\n" + minimal,
			[]string{`b.yaml:1: cors.allow_origin: unknown field (did you mean "allow_origins"?)`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("b.yaml", []byte(tc.src), nil)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want config.Errors, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if len(errs) != len(tc.want) {
				t.Errorf("want exactly %d errors, got %d:\n%v", len(tc.want), len(errs), err)
			}
		})
	}
}

func TestParseOrigin(t *testing.T) {
	good := map[string]Origin{
		"*":                           {Any: true},
		"https://app.example.com":     {Scheme: "https", Host: "app.example.com"},
		"HTTP://App.Example.COM:8080": {Scheme: "http", Host: "app.example.com", Port: "8080"},
		"https://*.example.com":       {Scheme: "https", Host: "example.com", Wildcard: true},
		"http://*.example.com:3000":   {Scheme: "http", Host: "example.com", Wildcard: true, Port: "3000"},
		"http://127.0.0.1:5173":       {Scheme: "http", Host: "127.0.0.1", Port: "5173"},
		"http://[::1]:8080":           {Scheme: "http", Host: "[::1]", Port: "8080"},
		"https://[2001:db8::1]":       {Scheme: "https", Host: "[2001:db8::1]"},
		"chrome-extension://abcdef":   {Scheme: "chrome-extension", Host: "abcdef"},
		"https://example.com:8443":    {Scheme: "https", Host: "example.com", Port: "8443"},
	}
	for in, want := range good {
		got, err := ParseOrigin(in)
		if err != nil || got != want {
			t.Errorf("ParseOrigin(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if again, err := ParseOrigin(got.String()); err != nil || again != got {
			t.Errorf("ParseOrigin(%q).String() = %q does not parse back: %+v, %v", in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"", "null", "example.com", "https://", "https://a.example/", "https://a.example/x", "https://a.example?x",
		"https://a.example:", "https://a.example:0", "https://a.example:080", "https://a.example:443", "http://a.example:80",
		"https://*", "https://*.", "https://a.*.example", "https://*example.com", "https://u@a.example", "https://a_b.example",
		"1http://a", "ht tp://a", "http://[::1", "http://[zz]:1", "http://[::1]x", "https://a..example"} {
		if o, err := ParseOrigin(bad); err == nil {
			t.Errorf("ParseOrigin(%q) accepted: %+v", bad, o)
		}
	}
}

// FuzzParseOrigin: never panics; what it accepts prints back to itself,
// in lower case, with no path, userinfo or control characters.
func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"*", "https://a.example", "http://*.a.example:81", "http://[::1]:8080", "null", "https://a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOrigin(s)
		if err != nil {
			return
		}
		if again, err := ParseOrigin(o.String()); err != nil || again != o {
			t.Fatalf("ParseOrigin(%q) = %+v prints as %q, which parses to %+v, %v", s, o, o.String(), again, err)
		}
		// What sluice compares request origins with: lower case, and
		// nothing after the scheme that could be a path, userinfo or a
		// second header line.
		if after := strings.TrimPrefix(o.String(), o.Scheme+"://"); !o.Any && (strings.ContainsAny(after, "/?#@ \t\r\n\x00") || o.String() != strings.ToLower(o.String())) {
			t.Fatalf("ParseOrigin(%q) accepted %q", s, o.String())
		}
	})
}

// FuzzCheckHSTS: never panics, and a value it accepts has max-age.
func FuzzCheckHSTS(f *testing.F) {
	for _, s := range []string{"max-age=63072000; includeSubDomains; preload", `max-age="10"`, "max-age=", ";;", "preload"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkHSTS(s) == nil && !strings.Contains(strings.ToLower(s), "max-age=") {
			t.Fatalf("accepted %q without max-age", s)
		}
	})
}

// The presets, a route's changes on top of the top-level block, "off",
// and a config without any block.
func TestSecurityHeadersFor(t *testing.T) {
	src := `
security_headers:
  preset: strict
  referrer_policy: strict-origin
  remove: [Server, X-Internal-Build]
` + minimal + `  - name: app
    match: { prefix: /app/ }
    upstream: users
    security_headers: { preset: basic, frame_options: "off" }
  - name: embed
    match: { prefix: /embed/ }
    upstream: users
    security_headers: { content_security_policy: "frame-ancestors https://partner.example", hsts: "off", remove: [] }
  - name: bare
    match: { prefix: /bare/ }
    upstream: users
    security_headers: { preset: none }
`
	c, err := Parse("s.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(r SecurityResult, name string) string {
		for _, h := range r.Set {
			if h.Name == name {
				return h.Value
			}
		}
		return ""
	}
	users, app, embed, bare := c.SecurityHeadersFor(c.Routes[0]), c.SecurityHeadersFor(c.Routes[1]), c.SecurityHeadersFor(c.Routes[2]), c.SecurityHeadersFor(c.Routes[3])
	if global := c.SecurityHeadersFor(nil); !slices.Equal(global.Set, users.Set) || global.HSTS != users.HSTS {
		t.Errorf("a route without a block differs from the top level: %+v vs %+v", users, global)
	}
	if len(users.Set) != 8 || get(users, "Referrer-Policy") != "strict-origin" || get(users, "X-Frame-Options") != "DENY" ||
		users.HSTS != "max-age=63072000; includeSubDomains" || !slices.Equal(users.Remove, []string{"Server", "X-Internal-Build"}) {
		t.Errorf("strict with changes: %+v", users)
	}
	if get(app, "X-Frame-Options") != "" || get(app, "Referrer-Policy") != "strict-origin-when-cross-origin" || get(app, "Content-Security-Policy") != "" ||
		!slices.Equal(app.Remove, DefaultRemoveHeaders) {
		t.Errorf("a route's preset starts over from that preset: %+v", app)
	}
	if get(embed, "Content-Security-Policy") != "frame-ancestors https://partner.example" || get(embed, "Referrer-Policy") != "strict-origin" ||
		embed.HSTS != "" || len(embed.Remove) != 0 {
		t.Errorf("a route's fields change the top-level result: %+v", embed)
	}
	if !bare.Empty() {
		t.Errorf("preset none: %+v", bare)
	}
	plain, err := Parse("m.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := plain.SecurityHeadersFor(plain.Routes[0]); !r.Empty() || !plain.SecurityHeadersFor(nil).Empty() {
		t.Errorf("a config without security_headers gets headers: %+v", r)
	}
	// Resolving must not change the presets.
	if SecurityPresets["strict"].FrameOptions != "DENY" || len(SecurityPresets["strict"].Remove) != len(DefaultRemoveHeaders) {
		t.Error("resolving changed a preset")
	}
}

func TestCORSFor(t *testing.T) {
	src := "cors: { allow_origins: [https://app.example] }\n" + routeWith("    cors: { enabled: false }\n") + `  - name: own
    match: { prefix: /own/ }
    upstream: users
    cors: { allow_origins: ["*"] }
  - name: inherits
    match: { prefix: /inherits/ }
    upstream: users
`
	c, err := Parse("c.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.CORSFor(c.Routes[0]); p != nil {
		t.Errorf("enabled: false still has a policy: %+v", p)
	}
	if p := c.CORSFor(c.Routes[1]); p == nil || p.AllowOrigins[0] != "*" {
		t.Errorf("a route's block replaces the top-level one: %+v", p)
	}
	if p := c.CORSFor(c.Routes[2]); p == nil || p.AllowOrigins[0] != "https://app.example" {
		t.Errorf("a route without a block takes the top-level one: %+v", p)
	}
}

// ip_filter lists are parsed once by validation; an IPv4-mapped IPv6 CIDR
// becomes the IPv4 one it means (client addresses are compared unmapped).
func TestIPFilterParsed(t *testing.T) {
	c, err := Parse("i.yaml", []byte("ip_filter: { allow: [10.0.0.0/8, \"::ffff:192.168.0.0/112\", 2001:db8::1], deny: [10.0.0.7] }\n"+minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("2001:db8::1/128")}
	if got := c.IPFilter.AllowPrefixes; !slices.Equal(got, want) {
		t.Errorf("allow %v, want %v", got, want)
	}
	if got := c.IPFilter.DenyPrefixes; !slices.Equal(got, []netip.Prefix{netip.MustParsePrefix("10.0.0.7/32")}) {
		t.Errorf("deny %v", got)
	}
}
