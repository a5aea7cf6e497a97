package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Key is one verification key and the algorithms it may verify.
type Key struct {
	ID   string
	Algs []string
	Key  any // []byte, *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey
}

func (k *Key) allows(alg string) bool {
	for _, a := range k.Algs {
		if a == alg {
			return true
		}
	}
	return false
}

// AlgFamily lists the algorithms a key of this type can verify.
func AlgFamily(key any) ([]string, error) {
	switch k := key.(type) {
	case []byte:
		return []string{"HS256", "HS384", "HS512"}, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 required", k.N.BitLen())
		}
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, errors.New("EC key on an unsupported curve")
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// NewKey makes a Key for alg (which must be in the key's family).
func NewKey(id, alg string, key any) (*Key, error) {
	family, err := AlgFamily(key)
	if err != nil {
		return nil, err
	}
	k := &Key{ID: id, Key: key}
	if alg == "" {
		k.Algs = family
		return k, nil
	}
	for _, a := range family {
		if a == alg {
			k.Algs = []string{alg}
			return k, nil
		}
	}
	return nil, fmt.Errorf("algorithm %s does not fit a %s key (it verifies %v)", alg, keyKind(key), family)
}

func keyKind(key any) string {
	switch key.(type) {
	case []byte:
		return "secret"
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "unknown"
}

// ParsePublicKeyPEM reads a PEM public key ("PUBLIC KEY", "RSA PUBLIC KEY")
// or certificate.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
}

// ParsePrivateKeyPEM reads a PEM private key (PKCS#8, PKCS#1 or SEC 1), for
// minting development tokens.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key %T", key)
	}
	return signer, nil
}
