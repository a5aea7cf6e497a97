package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/config"
)

// mintToken implements `sluice token`: a development token signed with a
// secret from the config (HS*) or a private key file (RS/PS/ES/EdDSA), with
// the config's issuer and first audience.
func mintToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", envOr("SLUICE_CONFIG", "sluice.yaml"), "config file (for auth.jwt)")
	keyID := fs.String("key", "", "id of the auth.jwt key to sign with (default: the first)")
	privFile := fs.String("private-key", "", "PEM private key file (for RS/PS/ES/EdDSA keys)")
	sub := fs.String("sub", "dev", "subject")
	roles := fs.String("roles", "", "comma-separated roles")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	j := cfg.Auth.JWT
	if j == nil || len(j.Keys) == 0 {
		fmt.Fprintln(stderr, "sluice token: the config has no auth.jwt.keys")
		return 1
	}
	k := j.Keys[0]
	if *keyID != "" {
		found := false
		for _, kk := range j.Keys {
			if kk.ID == *keyID {
				k, found = kk, true
			}
		}
		if !found {
			fmt.Fprintf(stderr, "sluice token: no auth.jwt key with id %q\n", *keyID)
			return 1
		}
	}
	method := jwt.GetSigningMethod(k.Algorithm)
	var signKey any
	if k.Secret != "" {
		signKey = []byte(k.Secret)
	} else {
		if *privFile == "" {
			fmt.Fprintf(stderr, "sluice token: key %q verifies with a public key; give its private key with -private-key\n", k.ID)
			return 1
		}
		data, err := os.ReadFile(*privFile)
		if err == nil {
			var signer any
			signer, err = auth.ParsePrivateKeyPEM(data)
			switch s := signer.(type) {
			case *rsa.PrivateKey, *ecdsa.PrivateKey:
				signKey = s
			case ed25519.PrivateKey:
				signKey = s
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "sluice token:", err)
			return 1
		}
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": *sub, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(*ttl).Unix()}
	if *roles != "" {
		claims[j.RolesClaim] = strings.Split(*roles, ",")
	}
	if j.Issuer != "" {
		claims["iss"] = j.Issuer
	}
	if len(j.Audience) > 0 {
		claims["aud"] = j.Audience[0]
	}
	t := jwt.NewWithClaims(method, claims)
	if k.ID != "" {
		t.Header["kid"] = k.ID
	}
	signed, err := t.SignedString(signKey)
	if err != nil {
		fmt.Fprintln(stderr, "sluice token:", err)
		return 1
	}
	fmt.Fprintln(stdout, signed)
	return 0
}
