package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// readSmallFile reads a key or certificate file, saying what is wrong in
// words a config error can carry ("" when nothing is).
func readSmallFile(path string) ([]byte, string) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Sprintf("%s does not exist (a relative path is relative to the config file)", path)
		}
		return nil, err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Sprintf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes))
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", path, err)
	}
	return data, ""
}

// ReadCABundle reads a PEM bundle of CA certificates. The message is ""
// when the bundle holds at least one certificate and all of them parse.
func ReadCABundle(path string) ([]byte, string) {
	data, msg := readSmallFile(path)
	if msg != "" {
		return nil, msg
	}
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return nil, fmt.Sprintf("%s: certificate %d: %v", path, n+1, err)
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Sprintf("%s holds no PEM certificate (want a CA bundle)", path)
	}
	return data, ""
}

// KeyPair is a certificate file and its key file, read and checked.
type KeyPair struct {
	CertPEM, KeyPEM []byte
	Cert            tls.Certificate // Leaf is set
}

// CheckKeyPair reads a certificate and its key and checks that they
// belong together and that the certificate is valid at now. The message
// is "" when all is well.
func CheckKeyPair(certFile, keyFile string, now time.Time) (*KeyPair, string) {
	certPEM, msg := readSmallFile(certFile)
	if msg != "" {
		return nil, msg
	}
	keyPEM, msg := readSmallFile(keyFile)
	if msg != "" {
		return nil, msg
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Sprintf("%s and %s: %v", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Sprintf("%s: %v", certFile, err)
		}
		cert.Leaf = leaf
	}
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Sprintf("%s: certificate %q expired at %s", certFile, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Sprintf("%s: certificate %q is not valid before %s", certFile, leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &KeyPair{CertPEM: certPEM, KeyPEM: keyPEM, Cert: cert}, ""
}

// MaxTicketKeys bounds a ticket keys file: every key is tried on every
// resumption attempt that the first does not decrypt.
const MaxTicketKeys = 16

// ParseTicketKeys reads a session ticket keys file: one key per line,
// each 32 random bytes in standard base64 (`openssl rand -base64 32`),
// newest first. Blank lines and lines starting with # are skipped. The
// first key encrypts new tickets; all of them decrypt, so a rotation
// writes a new key at the top and drops the oldest.
func ParseTicketKeys(data []byte) ([][32]byte, error) {
	var keys [][32]byte
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("line %d: want 32 bytes in base64 (openssl rand -base64 32)", n+1)
		}
		if len(keys) == MaxTicketKeys {
			return nil, fmt.Errorf("line %d: more than %d keys", n+1, MaxTicketKeys)
		}
		keys = append(keys, [32]byte(raw))
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key (one per line, newest first, each from openssl rand -base64 32)")
	}
	return keys, nil
}

// ReadTicketKeys reads and parses a ticket keys file; the message is ""
// when all is well.
func ReadTicketKeys(path string) ([][32]byte, string) {
	data, msg := readSmallFile(path)
	if msg != "" {
		return nil, msg
	}
	keys, err := ParseTicketKeys(data)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", path, err)
	}
	return keys, ""
}
