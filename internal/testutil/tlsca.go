package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
)

// CA is a certificate authority made for one test (crypto/x509, ECDSA
// P-256). Its certificate is in CertFile, for configs that name a CA
// bundle, and in Pool, for Go TLS clients and servers.
type CA struct {
	Cert     *x509.Certificate
	Key      *ecdsa.PrivateKey
	PEM      []byte
	CertFile string
	Pool     *x509.CertPool
	dir      string
	serial   atomic.Int64
}

// Leaf is a certificate issued by a CA, with its key, as files and as a
// tls.Certificate.
type Leaf struct {
	CertFile, KeyFile string
	CertPEM, KeyPEM   []byte
	TLS               tls.Certificate
	NotAfter          time.Time
}

// LeafOptions shape an issued certificate. Zero values: valid from an
// hour ago for a day, a server certificate for 127.0.0.1 and "localhost".
type LeafOptions struct {
	Name      string // file name stem and common name; default "leaf"
	DNS       []string
	IPs       []net.IP
	NotBefore time.Time
	NotAfter  time.Time
	Client    bool // a client certificate (ExtKeyUsageClientAuth)
}

// NewCA makes a CA whose files live in a temporary directory of t.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{Cert: cert, Key: key, dir: t.TempDir(), Pool: x509.NewCertPool()}
	ca.serial.Store(1)
	ca.PEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	ca.Pool.AddCert(cert)
	ca.CertFile = filepath.Join(ca.dir, name+"-ca.pem")
	WriteFile(t, ca.CertFile, ca.PEM)
	return ca
}

// Issue makes a certificate signed by the CA and writes it and its key to
// NAME.pem and NAME-key.pem in the CA's directory.
func (ca *CA) Issue(t testing.TB, o LeafOptions) *Leaf {
	t.Helper()
	if o.Name == "" {
		o.Name = "leaf"
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if len(o.DNS) == 0 && len(o.IPs) == 0 && !o.Client {
		o.DNS, o.IPs = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if o.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		Subject:      pkix.Name{CommonName: o.Name, Organization: []string{"sluice tests"}},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		DNSNames:     o.DNS,
		IPAddresses:  o.IPs,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	l := &Leaf{
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		NotAfter: o.NotAfter,
		CertFile: filepath.Join(ca.dir, o.Name+".pem"),
		KeyFile:  filepath.Join(ca.dir, o.Name+"-key.pem"),
	}
	if l.TLS, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM); err != nil {
		t.Fatal(err)
	}
	WriteFile(t, l.CertFile, l.CertPEM)
	WriteFile(t, l.KeyFile, l.KeyPEM)
	return l
}

// WriteFile writes data to path (mode 0600), atomically: a watcher never
// sees half a file.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// StartTLSUpstream runs a stub behind TLS with cfg on a free loopback
// port until the test ends. URL is https://127.0.0.1:PORT.
func StartTLSUpstream(t testing.TB, o stub.Options, cfg *tls.Config) *Upstream {
	t.Helper()
	ln := ListenRetry(t, "127.0.0.1:0")
	u := &Upstream{Server: stub.New(o), Addr: ln.Addr().String(), ln: ln}
	u.URL = "https://" + u.Addr
	go func() { _ = u.Serve(tls.NewListener(countingListener{ln, &u.conns}, cfg)) }()
	t.Cleanup(func() { _ = u.Server.Close() })
	return u
}
