package config

import (
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"sort"
	"time"
)

// maxKeyFileBytes bounds what checkFiles reads of a key file: a PEM key or
// certificate is a few KiB; a wrong path (a log, a binary) is not read whole.
const maxKeyFileBytes = 1 << 20

// checkFiles checks the files a config reads at start (Load and
// ParseChecked do; Parse does not): each auth.jwt.keys[].public_key_file,
// resolved as Resolve says, exists, is a regular file and holds a PEM
// block. What the block holds (a key of the right type for the algorithm)
// is edge/auth's to check when the gateway starts.
func (c *Config) checkFiles() Errors {
	v := &validator{}
	if j := c.Auth.JWT; j != nil {
		for i, k := range j.Keys {
			if k.PublicKeyFile == "" {
				continue
			}
			if msg := checkPEMFile(c.Resolve(k.PublicKeyFile)); msg != "" {
				v.add(fmt.Sprintf("auth.jwt.keys[%d].public_key_file", i), "%s", msg)
			}
		}
	}
	for i, l := range c.ListenTLS {
		for j, cf := range l.Certificates {
			if cf.CertFile == "" || cf.KeyFile == "" {
				continue
			}
			if _, msg := CheckKeyPair(c.Resolve(cf.CertFile), c.Resolve(cf.KeyFile), time.Now()); msg != "" {
				v.add(fmt.Sprintf("listen_tls[%d].certificates[%d].cert_file", i, j), "%s", msg)
			}
		}
		if l.TicketKeysFile != "" {
			if _, msg := ReadTicketKeys(c.Resolve(l.TicketKeysFile)); msg != "" {
				v.add(fmt.Sprintf("listen_tls[%d].ticket_keys_file", i), "%s", msg)
			}
		}
		if ca := l.ClientAuth; ca != nil && ca.CAFile != "" {
			if _, msg := ReadCABundle(c.Resolve(ca.CAFile)); msg != "" {
				v.add(fmt.Sprintf("listen_tls[%d].client_auth.ca_file", i), "%s", msg)
			}
		}
	}
	if a := c.ACME; a != nil && a.CARootFile != "" {
		if _, msg := ReadCABundle(c.Resolve(a.CARootFile)); msg != "" {
			v.add("acme.ca_root_file", "%s", msg)
		}
	}
	names := make([]string, 0, len(c.Upstreams))
	for name := range c.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		u := c.Upstreams[name]
		if u == nil || u.TLS == nil {
			continue
		}
		p := "upstreams." + name + ".tls"
		if u.TLS.CAFile != "" {
			if _, msg := ReadCABundle(c.Resolve(u.TLS.CAFile)); msg != "" {
				v.add(p+".ca_file", "%s", msg)
			}
		}
		if u.TLS.CertFile != "" && u.TLS.KeyFile != "" {
			if _, msg := CheckKeyPair(c.Resolve(u.TLS.CertFile), c.Resolve(u.TLS.KeyFile), time.Now()); msg != "" {
				v.add(p+".cert_file", "%s", msg)
			}
		}
	}
	return v.errs
}

// checkPEMFile returns what is wrong with the PEM file at path, or "".
func checkPEMFile(path string) string {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Sprintf("%s does not exist (a relative path is relative to the config file)", path)
		}
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Sprintf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes))
	if err != nil {
		return fmt.Sprintf("%s: %v", path, err)
	}
	if b, _ := pem.Decode(data); b == nil {
		return fmt.Sprintf("%s holds no PEM block (want a PEM public key or certificate)", path)
	}
	return ""
}
