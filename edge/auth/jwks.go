package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// JWKS is a set of keys fetched from a URL (RFC 7517), refreshed on an
// interval and, rate-limited, when a token names an unknown kid. When the
// endpoint fails, the last good set stays in use.
type JWKS struct {
	URL         string
	Refresh     time.Duration // periodic refresh; default 5m
	MinInterval time.Duration // between on-demand refreshes; default 30s
	Timeout     time.Duration // per fetch; default 5s
	Log         *slog.Logger

	keys      atomic.Pointer[map[string]*Key]
	lastFetch atomic.Int64 // unix ns of the last attempt
	mu        sync.Mutex   // one fetch at a time
	client    *http.Client
	cancel    context.CancelFunc
}

// Start fetches once (a failure is logged, not fatal: the refresh loop
// keeps trying) and refreshes until Stop.
func (j *JWKS) Start() {
	if j.Refresh <= 0 {
		j.Refresh = 5 * time.Minute
	}
	if j.MinInterval <= 0 {
		j.MinInterval = 30 * time.Second
	}
	if j.Timeout <= 0 {
		j.Timeout = 5 * time.Second
	}
	j.client = &http.Client{Timeout: j.Timeout}
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	if err := j.fetch(); err != nil {
		j.Log.Warn("jwks fetch failed", "url", j.URL, "error", err.Error())
	}
	go func() {
		t := time.NewTicker(j.Refresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := j.fetch(); err != nil {
					j.Log.Warn("jwks refresh failed; keeping the last good keys", "url", j.URL, "error", err.Error())
				}
			}
		}
	}()
}

// Stop ends the refresh loop.
func (j *JWKS) Stop() {
	if j.cancel != nil {
		j.cancel()
	}
}

// Get finds a key by kid. An unknown kid triggers a refresh, at most once
// per MinInterval, which the caller waits for (bounded by Timeout).
func (j *JWKS) Get(kid string) *Key {
	if k := j.lookup(kid); k != nil {
		return k
	}
	if time.Since(time.Unix(0, j.lastFetch.Load())) < j.MinInterval {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	// Callers that waited for the lock find the result of the refresh the
	// first one made, and don't fetch again.
	if k := j.lookup(kid); k != nil {
		return k
	}
	if time.Since(time.Unix(0, j.lastFetch.Load())) < j.MinInterval {
		return nil
	}
	if err := j.fetchLocked(); err != nil {
		j.Log.Warn("jwks refresh for an unknown kid failed", "url", j.URL, "error", err.Error())
	}
	return j.lookup(kid)
}

func (j *JWKS) lookup(kid string) *Key {
	if m := j.keys.Load(); m != nil {
		return (*m)[kid]
	}
	return nil
}

// Len is how many keys the set holds.
func (j *JWKS) Len() int {
	if m := j.keys.Load(); m != nil {
		return len(*m)
	}
	return 0
}

func (j *JWKS) fetch() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fetchLocked()
}

func (j *JWKS) fetchLocked() error {
	j.lastFetch.Store(time.Now().UnixNano())
	resp, err := j.client.Get(j.URL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	keys, err := ParseJWKS(body)
	if err != nil {
		return err
	}
	j.keys.Store(&keys)
	return nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS reads a JWK Set. Keys not for signatures ("use": "enc"),
// symmetric keys (a JWKS is public) and keys it can't read are skipped;
// a set with no usable key is an error.
func ParseJWKS(data []byte) (map[string]*Key, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	out := map[string]*Key{}
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			continue
		}
		key, err := NewKey(k.Kid, k.Alg, pub)
		if err != nil {
			continue
		}
		out[k.Kid] = key
	}
	if len(out) == 0 {
		return nil, errors.New("jwks: no usable signing key")
	}
	return out, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func (k jwk) publicKey() (any, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64(k.N)
		e, err2 := b64(k.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA key")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, errors.New("unsupported curve")
		}
		x, err1 := b64(k.X)
		y, err2 := b64(k.Y)
		size := (curve.Params().BitSize + 7) / 8
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC key")
		}
		// The uncompressed point form; parsing it checks it is on the curve.
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, errors.New("EC point not on curve")
		}
		return pub, nil
	case "OKP":
		x, err := b64(k.X)
		if err != nil || k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad OKP key")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, errors.New("unsupported kty")
}
