package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Reason is why a token was refused; its text goes into the 401 body and
// the WWW-Authenticate error_description (RFC 6750). Never the token.
type Reason string

const (
	ReasonMissing     Reason = "missing token"
	ReasonMalformed   Reason = "malformed token"
	ReasonTooLarge    Reason = "token too large"
	ReasonExpired     Reason = "token expired"
	ReasonNotYet      Reason = "token not valid yet"
	ReasonIssuedLater Reason = "token issued in the future"
	ReasonSignature   Reason = "bad signature"
	ReasonAudience    Reason = "wrong audience"
	ReasonIssuer      Reason = "wrong issuer"
	ReasonUnknownKey  Reason = "unknown signing key"
	ReasonAlgorithm   Reason = "algorithm not allowed"
	ReasonClaim       Reason = "missing required claim"
	ReasonInvalid     Reason = "invalid token"
	// ReasonCritical: the header's crit names an extension sluice does
	// not implement (it implements none), RFC 7515 section 4.1.11.
	ReasonCritical Reason = "unsupported critical header"
)

// MaxTokenBytes bounds a token; longer ones are refused unparsed.
const MaxTokenBytes = 8 << 10

// Identity is what a verified token or API key says about the caller. It
// is shared by every request carrying the same token and must not be
// modified.
type Identity struct {
	Subject string
	Roles   []string
	// Headers are sent upstream: forwarded claims (or the API key's id).
	Headers [][2][]byte
	// Expires is when the identity stops being valid (zero: never).
	Expires time.Time
	// Claims holds the string values of the claims named in
	// VerifierConfig.KeepClaims (for rate-limit keys).
	Claims map[string]string
}

// HasRoles checks the caller's roles against a route's: any one of them,
// or all of them.
func (id *Identity) HasRoles(want []string, all bool) bool { return HasRoles(id.Roles, want, all) }

// HasRoles reports whether have holds any (or, with all, every) role of
// want; no wanted roles always passes.
func HasRoles(have, want []string, all bool) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		found := false
		for _, r := range have {
			if r == w {
				found = true
				break
			}
		}
		if found && !all {
			return true
		}
		if !found && all {
			return false
		}
	}
	return all
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	Keys           []*Key // static keys; one without an ID matches tokens without a kid
	JWKS           *JWKS  // optional
	Algorithms     []string
	Issuer         string
	Audience       []string
	Leeway         time.Duration
	RequiredClaims []string
	RolesClaim     string            // "roles" (list) or e.g. "scope" (space separated)
	Forward        map[string]string // claim -> header
	KeepClaims     []string          // claims whose values Identity.Claims keeps
	CacheSize      int
	Now            func() time.Time // for tests
}

// Verifier checks JWTs. Safe for concurrent use; built once per config.
type Verifier struct {
	cfg     VerifierConfig
	byID    map[string]*Key
	noKid   *Key
	parser  *jwt.Parser
	cache   *tokenCache
	forward [][2]string // sorted claim, header
}

// NewVerifier checks cfg and builds a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.Keys) == 0 && cfg.JWKS == nil {
		return nil, errors.New("jwt: no keys and no jwks")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, byID: map[string]*Key{}, cache: newTokenCache(cfg.CacheSize)}
	allowed := map[string]bool{}
	for _, a := range cfg.Algorithms {
		if a == "none" || a == "" {
			return nil, errors.New(`jwt: algorithm "none" is never allowed`)
		}
		allowed[a] = true
	}
	for _, k := range cfg.Keys {
		if k.ID == "" {
			if v.noKid != nil {
				return nil, errors.New("jwt: more than one key without an id")
			}
			v.noKid = k
		} else {
			v.byID[k.ID] = k
		}
		if len(cfg.Algorithms) == 0 {
			for _, a := range k.Algs {
				allowed[a] = true
			}
		}
	}
	if len(cfg.Algorithms) == 0 && cfg.JWKS != nil {
		for _, a := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"} {
			allowed[a] = true
		}
	}
	methods := make([]string, 0, len(allowed))
	for a := range allowed {
		methods = append(methods, a)
	}
	// Strict decoding refuses non-canonical base64 (set padding bits), so
	// one signature has exactly one spelling: no malleable tokens.
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(cfg.Leeway), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(cfg.Now), jwt.WithStrictDecoding()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if len(cfg.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audience...))
	}
	v.parser = jwt.NewParser(opts...)
	for claim, header := range cfg.Forward {
		v.forward = append(v.forward, [2]string{claim, header})
	}
	return v, nil
}

// Verify checks a raw token (the part after "Bearer "). raw may alias a
// request buffer: it is copied before being kept.
func (v *Verifier) Verify(raw []byte) (*Identity, Reason) {
	if len(raw) == 0 {
		return nil, ReasonMissing
	}
	if len(raw) > MaxTokenBytes {
		return nil, ReasonTooLarge
	}
	now := v.cfg.Now()
	if id := v.cache.get(raw, now); id != nil {
		return id, ""
	}
	if r := checkShape(raw); r != "" {
		return nil, r
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(string(raw), claims, v.keyFunc)
	if err != nil {
		return nil, reasonFor(err)
	}
	for _, c := range v.cfg.RequiredClaims {
		if _, ok := claims[c]; !ok {
			return nil, ReasonClaim
		}
	}
	id := &Identity{Roles: v.roles(claims)}
	id.Subject, _ = claims["sub"].(string)
	for _, f := range v.forward {
		if val, ok := claims[f[0]]; ok {
			id.Headers = append(id.Headers, [2][]byte{[]byte(f[1]), []byte(claimString(val))})
		}
	}
	for _, name := range v.cfg.KeepClaims {
		if val, ok := claims[name]; ok {
			if id.Claims == nil {
				id.Claims = map[string]string{}
			}
			id.Claims[name] = claimString(val)
		}
	}
	exp, _ := claims.GetExpirationTime()
	if exp != nil {
		id.Expires = exp.Time
	}
	v.cache.put(raw, id, now)
	return id, ""
}

// checkShape refuses what golang-jwt lets through, before any signature
// work (the header checks of RFC 7515 section 5.2 steps 2 to 5 come before
// the signature's, step 8): duplicate member names in the header or the
// claims (RFC 7515 section 4, RFC 7519 section 4), and a crit header
// parameter (RFC 7515 section 4.1.11). It decodes both segments once more
// than golang-jwt does, on a cache miss only; a cached token never gets
// here, so the cache hit stays free of allocations.
func checkShape(raw []byte) Reason {
	h, rest, ok := bytes.Cut(raw, dot)
	if !ok {
		return ReasonMalformed
	}
	p, _, ok := bytes.Cut(rest, dot)
	if !ok {
		return ReasonMalformed
	}
	enc := segmentEncoding
	buf := make([]byte, enc.DecodedLen(len(h))+enc.DecodedLen(len(p)))
	n, err := enc.Decode(buf, h)
	if err != nil {
		return ReasonMalformed
	}
	header := buf[:n]
	s := newMemberScan()
	crit, err := s.scan(header)
	if err != nil {
		return ReasonMalformed
	}
	if crit {
		return checkCrit(header)
	}
	m, err := enc.Decode(buf[n:], p)
	if err != nil {
		return ReasonMalformed
	}
	if _, err := s.scan(buf[n : n+m]); err != nil {
		return ReasonMalformed
	}
	return ""
}

var (
	dot = []byte{'.'}
	// segmentEncoding decodes as golang-jwt's WithStrictDecoding does.
	// Made once: Strict returns a new Encoding each call.
	segmentEncoding = base64.RawURLEncoding.Strict()
)

// registeredHeaders are the Header Parameters of RFC 7515 section 4.1,
// which a crit list must not name (4.1.11: producers "MUST NOT include
// Header Parameter names defined by this specification").
var registeredHeaders = map[string]bool{
	"alg": true, "jku": true, "jwk": true, "kid": true, "x5u": true, "x5c": true,
	"x5t": true, "x5t#S256": true, "typ": true, "cty": true, "crit": true,
}

// checkCrit judges a header with a crit member (whose names scanMembers
// has found unique). RFC 7515 section 4.1.11: "If any of the listed
// extension Header Parameters are not understood and supported by the
// recipient, then the JWS is invalid." sluice supports no extension (not
// even RFC 7797's b64, which changes what the signature covers), so a
// well-formed crit is ReasonCritical. One that breaks the section's rules
// (not an array of strings, empty, a registered or repeated name, or a
// name the header does not carry) is ReasonMalformed.
func checkCrit(header []byte) Reason {
	var h map[string]any
	if json.Unmarshal(header, &h) != nil {
		return ReasonMalformed
	}
	list, ok := h["crit"].([]any)
	if !ok || len(list) == 0 {
		return ReasonMalformed
	}
	seen := make(map[string]bool, len(list))
	for _, x := range list {
		name, ok := x.(string)
		if !ok || registeredHeaders[name] || seen[name] {
			return ReasonMalformed
		}
		if _, present := h[name]; !present {
			return ReasonMalformed
		}
		seen[name] = true
	}
	return ReasonCritical
}

func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	var k *Key
	switch {
	case kid == "" && v.noKid != nil:
		k = v.noKid
	case kid != "":
		if k = v.byID[kid]; k == nil && v.cfg.JWKS != nil {
			k = v.cfg.JWKS.Get(kid)
		}
	}
	if k == nil {
		return nil, errUnknownKey
	}
	if !k.allows(t.Method.Alg()) {
		return nil, errWrongAlg
	}
	return k.Key, nil
}

var (
	errUnknownKey = errors.New("unknown key")
	errWrongAlg   = errors.New("algorithm does not match the key")
)

func reasonFor(err error) Reason {
	switch {
	case errors.Is(err, errUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, errWrongAlg):
		return ReasonAlgorithm
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if strings.Contains(err.Error(), "signing method") {
			return ReasonAlgorithm
		}
		return ReasonSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return ReasonNotYet
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonIssuedLater
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ReasonAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonIssuer
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ReasonClaim
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return ReasonAlgorithm
	}
	return ReasonInvalid
}

// roles reads the roles claim: a list of strings, or one space-separated
// string (OAuth's "scope").
func (v *Verifier) roles(c jwt.MapClaims) []string {
	name := v.cfg.RolesClaim
	if name == "" {
		name = "roles"
	}
	switch r := c[name].(type) {
	case []any:
		out := make([]string, 0, len(r))
		for _, x := range r {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return strings.Fields(r)
	}
	return nil
}

func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return sanitizeHeaderValue(x)
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x))
		}
		return fmt.Sprint(x)
	case bool:
		return fmt.Sprint(x)
	}
	return ""
}

// sanitizeHeaderValue drops control characters, so a claim can't inject a
// header line upstream.
func sanitizeHeaderValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// tokenCache remembers verified tokens until they expire. Keys are a hash
// of the token; a hit also compares the whole token, so a hash collision
// can never pass for a verified token. Sharded to keep cores apart; when a
// shard is full an arbitrary entry goes (a cache of recent tokens needs
// nothing smarter). A hit allocates nothing.
type tokenCache struct {
	shards [16]cacheShard
	per    int
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]*cacheEntry
}

type cacheEntry struct {
	token []byte
	id    *Identity
	until time.Time
}

// maxCacheTTL bounds how long a token without an exp is trusted from cache.
const maxCacheTTL = time.Minute

func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		size = 10000
	}
	c := &tokenCache{per: max(size/16, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry)
	}
	return c
}

// tokenSeed randomises the cache's hash per process, so nobody can craft
// tokens that all land in one shard.
var tokenSeed = maphash.MakeSeed()

func hashToken(b []byte) uint64 { return maphash.Bytes(tokenSeed, b) }

func (c *tokenCache) get(raw []byte, now time.Time) *Identity {
	h := hashToken(raw)
	s := &c.shards[h%16]
	s.mu.RLock()
	e := s.m[h]
	s.mu.RUnlock()
	if e == nil || !bytes.Equal(e.token, raw) || !now.Before(e.until) {
		return nil
	}
	return e.id
}

func (c *tokenCache) put(raw []byte, id *Identity, now time.Time) {
	until := now.Add(maxCacheTTL)
	if !id.Expires.IsZero() && id.Expires.Before(until) {
		until = id.Expires
	}
	h := hashToken(raw)
	s := &c.shards[h%16]
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= c.per {
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[h] = &cacheEntry{token: bytes.Clone(raw), id: id, until: until}
}
