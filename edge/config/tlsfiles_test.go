package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

// `sluice validate` (Load) names the broken files of an upstream's tls
// block with file, line and field: a CA bundle that is missing or holds
// no certificate, a client certificate whose key belongs to another, one
// that has expired, and half a pair.
func TestUpstreamTLSFilesAreChecked(t *testing.T) {
	ca := testutil.NewCA(t, "ca")
	a := ca.Issue(t, testutil.LeafOptions{Name: "a", Client: true})
	b := ca.Issue(t, testutil.LeafOptions{Name: "b", Client: true})
	old := ca.Issue(t, testutil.LeafOptions{Name: "old", Client: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "notpem.pem")
	testutil.WriteFile(t, notPEM, []byte("hello\n"))
	src := `admin: { password: test-secret }
upstreams:
  good:
    targets: [ { url: "https://127.0.0.1:9001" } ]
    tls: { ca_file: ` + ca.CertFile + `, cert_file: ` + a.CertFile + `, key_file: ` + a.KeyFile + ` }
  missing:
    targets: [ { url: "https://127.0.0.1:9002" } ]
    tls: { ca_file: nope.pem }
  notpem:
    targets: [ { url: "https://127.0.0.1:9003" } ]
    tls: { ca_file: ` + notPEM + ` }
  mismatch:
    targets: [ { url: "https://127.0.0.1:9004" } ]
    tls: { cert_file: ` + a.CertFile + `, key_file: ` + b.KeyFile + ` }
  expired:
    targets: [ { url: "https://127.0.0.1:9005" } ]
    tls: { cert_file: ` + old.CertFile + `, key_file: ` + old.KeyFile + ` }
  half:
    targets: [ { url: "https://127.0.0.1:9006" } ]
    tls: { cert_file: ` + a.CertFile + ` }
routes:
  - { name: r, match: { prefix: / }, upstream: good }
`
	path, err := loadFile(t, dir, src)
	wantErrors(t, err, "broken TLS files",
		path+":8: upstreams.missing.tls.ca_file: "+filepath.Join(dir, "nope.pem")+" does not exist",
		path+":11: upstreams.notpem.tls.ca_file: "+notPEM+" holds no PEM certificate",
		path+":14: upstreams.mismatch.tls.cert_file: "+a.CertFile+" and "+b.KeyFile+": tls: private key does not match public key",
		path+":17: upstreams.expired.tls.cert_file: "+old.CertFile+`: certificate "old" expired at `,
		path+":20: upstreams.half.tls: cert_file and key_file go together",
	)
	if strings.Contains(err.Error(), "upstreams.good") {
		t.Errorf("the good tls block was refused:\n%v", err)
	}
}

// listen_tls: each certificate pair is checked like an upstream's, with
// file, line and field; listen: off needs a TLS listener.
func TestListenTLSValidated(t *testing.T) {
	ca := testutil.NewCA(t, "ca")
	a := ca.Issue(t, testutil.LeafOptions{Name: "a"})
	b := ca.Issue(t, testutil.LeafOptions{Name: "b"})
	dir := t.TempDir()
	src := `admin: { password: test-secret }
listen: ":8080"
listen_tls:
  - listen: ":8443"
    certificates:
      - { cert_file: ` + a.CertFile + `, key_file: ` + a.KeyFile + ` }
      - { cert_file: ` + a.CertFile + `, key_file: ` + b.KeyFile + ` }
      - { cert_file: missing.pem, key_file: missing-key.pem }
  - listen: ":8444"
    certificates: []
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: u }
`
	path, err := loadFile(t, dir, src)
	wantErrors(t, err, "broken listen_tls certificates",
		path+":7: listen_tls[0].certificates[1].cert_file: "+a.CertFile+" and "+b.KeyFile+": tls: private key does not match public key",
		path+":8: listen_tls[0].certificates[2].cert_file: "+filepath.Join(dir, "missing.pem")+" does not exist",
		path+":10: listen_tls[1].certificates: at least one certificate is required",
	)
	if strings.Contains(err.Error(), "certificates[0]") {
		t.Errorf("the good pair was refused:\n%v", err)
	}
	if _, err := Parse("x.yaml", []byte(strings.Replace(minimal, "admin:", "listen: \"off\"\nadmin:", 1)), nil); err == nil ||
		!strings.Contains(err.Error(), "listen: off needs at least one listen_tls listener") {
		t.Errorf("listen: off without TLS listeners: %v", err)
	}
}

// client_auth needs a mode and a CA bundle that holds certificates;
// auth: mtls takes no roles.
func TestClientAuthValidated(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "notpem.pem")
	testutil.WriteFile(t, notPEM, []byte("hello\n"))
	leaf := testutil.NewCA(t, "ca").Issue(t, testutil.LeafOptions{Name: "a"})
	src := `admin: { password: test-secret }
listen_tls:
  - listen: ":8443"
    certificates: [ { cert_file: ` + leaf.CertFile + `, key_file: ` + leaf.KeyFile + ` } ]
    client_auth: { mode: maybe, ca_file: ` + notPEM + ` }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: u, auth: mtls, roles: [admin] }
`
	path, err := loadFile(t, dir, src)
	wantErrors(t, err, "a bad client_auth block and roles on auth: mtls",
		path+`:5: listen_tls[0].client_auth.mode: want request or require, got "maybe"`,
		path+":5: listen_tls[0].client_auth.ca_file: "+notPEM+" holds no PEM certificate",
		path+":9: routes[0].roles: roles need auth",
	)
}
