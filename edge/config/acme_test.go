package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// The acme block and acme_hosts: every mistake is named with file, line
// and field, all at once.
func TestACMEValidated(t *testing.T) {
	dir := t.TempDir()
	src := `admin: { password: test-secret }
listen: ":8080"
listen_tls:
  - listen: ":8443"
    acme_hosts: [api.example.com, "*.example.com", API.example.com, localhost, api.example.com, 10.0.0.1]
acme:
  ca: http://acme.example/dir
  email: not-an-address
  challenges: [http-01, dns-01, http-01]
  storage: { type: redis }
  ca_root_file: missing-root.pem
  renew_check: 10ms
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: u }
`
	path, err := loadFile(t, dir, src)
	wantErrors(t, err, "a broken acme block",
		path+`:5: listen_tls[0].acme_hosts[1]: "*.example.com": wildcard names need the DNS-01 challenge`,
		path+`:5: listen_tls[0].acme_hosts[2]: "API.example.com" is not a lower-case DNS name`,
		path+`:5: listen_tls[0].acme_hosts[3]: "localhost" is not a lower-case DNS name`,
		path+`:5: listen_tls[0].acme_hosts[4]: "api.example.com" is listed twice`,
		path+`:5: listen_tls[0].acme_hosts[5]: "10.0.0.1" is not a lower-case DNS name`,
		path+`:6: acme.agree_terms: must be true`,
		path+`:7: acme.ca: "http://acme.example/dir" is not an https:// ACME directory URL`,
		path+`:8: acme.email: "not-an-address" is not an email address`,
		path+`:9: acme.challenges[1]: want http-01 or tls-alpn-01, got "dns-01"`,
		path+`:9: acme.challenges[2]: "http-01" is listed twice`,
		path+`:10: acme.storage.type: redis needs the redis block`,
		path+`:11: acme.ca_root_file: `+filepath.Join(dir, "missing-root.pem")+` does not exist`,
		path+`:12: acme.renew_check: must be at least 1s`,
	)
	if strings.Contains(err.Error(), "acme_hosts[0]") || strings.Contains(err.Error(), "listen_tls[0].certificates") {
		t.Errorf("a good name, or a listener with only acme_hosts, was refused:\n%v", err)
	}

	for _, c := range []struct{ src, want string }{
		{"listen_tls: [ { listen: \":8443\", acme_hosts: [a.example.com] } ]\n" + minimal,
			`b.yaml:1: listen_tls[0].acme_hosts: needs the acme block`},
		{"listen: \"off\"\nlisten_tls: [ { listen: \":8443\", acme_hosts: [a.example.com] } ]\nacme: { agree_terms: true, challenges: [http-01] }\n" + minimal,
			`b.yaml:3: acme.challenges[0]: http-01 is answered on the plain listener, and listen is off`},
		{"acme: { agree_terms: true }\n" + minimal, `b.yaml:1: acme: no listen_tls listener has acme_hosts`},
		// Port 0 with ACME: certmagic would open 80 or 443 itself.
		{"listen: 127.0.0.1:0\nlisten_tls: [ { listen: \":8443\", acme_hosts: [a.example.com] } ]\nacme: { agree_terms: true, challenges: [http-01] }\n" + minimal,
			`b.yaml:3: acme.challenges[0]: http-01 is answered on listen (127.0.0.1:0), which needs a fixed port`},
		{"listen_tls: [ { listen: \":8443\", certificates: [] }, { listen: \"127.0.0.1:0\", acme_hosts: [a.example.com] } ]\nacme: { agree_terms: true, challenges: [http-01, tls-alpn-01] }\n" + minimal,
			`b.yaml:2: acme.challenges[1]: tls-alpn-01 is answered on listen_tls[1] (127.0.0.1:0), which needs a fixed port`},
	} {
		_, err := Parse("b.yaml", []byte(c.src), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.src, err, c.want)
		}
	}
	ok := "listen_tls: [ { listen: \":8443\", acme_hosts: [a.example.com] } ]\nacme: { agree_terms: true, email: ops@example.com }\n" + minimal
	cfg, err := Parse("b.yaml", []byte(ok), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.ACME; a.CA != "https://acme-v02.api.letsencrypt.org/directory" || a.Storage.Type != "file" || len(a.Challenges) != 2 {
		t.Errorf("defaults: %+v", a)
	}
}
