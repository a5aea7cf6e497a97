package edge

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/observe"
	"github.com/valyala/fasthttp"
)

var (
	headerAuthorization = []byte("Authorization")
	headerAPIKeyID      = []byte("X-API-Key-ID")
	bearerPrefix        = []byte("Bearer ")
)

// authSettings is the snapshot's auth config, compiled once and shared by
// every route's auth step: the JWT verifier and where API keys come from.
type authSettings struct {
	verifier     *auth.Verifier // nil without auth.jwt
	keys         auth.KeyStore
	apiKeyHeader []byte
	apiKeyName   string // apiKeyHeader as a string, for PeekAll
	apiKeyBearer bool   // an API key may come as "Authorization: Bearer sk_..."
	mtlsSubject  []byte // auth.mtls.subject_header
	mtlsSHA256   []byte // auth.mtls.fingerprint_header
	metrics      *observe.Metrics
	log          *slog.Logger
}

// roles is what a route asks of the caller's roles.
type roles struct {
	names []string
	all   bool // every one of names, not any
}

// The auth steps, one per mode, chosen when the snapshot is built. Each
// checks the caller and the route's roles, sets the identity headers for
// the upstream and records who called on the exchange. A client can never
// supply the identity headers itself (stripIdentityHeaders).
type (
	jwtAuth struct {
		*authSettings
		roles roles
	}
	apiKeyAuth struct {
		*authSettings
		roles roles
	}
	// anyAuth takes an API key when the request has one, else a JWT.
	anyAuth struct {
		*authSettings
		roles roles
	}
)

var (
	_ step = (*jwtAuth)(nil)
	_ step = (*apiKeyAuth)(nil)
	_ step = (*anyAuth)(nil)
)

// step returns the auth step for a route's mode, nil for auth: none.
func (a *authSettings) step(rc *config.Route) step {
	r := roles{names: rc.Roles, all: rc.RolesMatch == "all"}
	switch rc.Auth {
	case "jwt":
		return &jwtAuth{a, r}
	case "api_key":
		return &apiKeyAuth{a, r}
	case "any":
		return &anyAuth{a, r}
	case "mtls":
		return &mtlsAuth{a}
	}
	return nil
}

func (st *jwtAuth) serve(x *exchange) {
	if _, bearer, ok := st.credentials(x); ok && st.checkJWT(x, bearer, st.roles) {
		x.next()
	}
}

func (st *apiKeyAuth) serve(x *exchange) {
	if key, _, ok := st.credentials(x); ok && st.checkKey(x, key, st.roles) {
		x.next()
	}
}

func (st *anyAuth) serve(x *exchange) {
	key, bearer, ok := st.credentials(x)
	if !ok {
		return
	}
	if len(key) > 0 {
		ok = st.checkKey(x, key, st.roles)
	} else {
		ok = st.checkJWT(x, bearer, st.roles)
	}
	if ok {
		x.next()
	}
}

// credentials reads the API key and the bearer token. A bearer token that
// has the shape of an API key is taken as the key. Two credentials (of one
// kind, or an API key beside a bearer token) are refused with 400 (false):
// the gateway would check one and the upstream might believe the other.
func (a *authSettings) credentials(x *exchange) (key, bearer []byte, ok bool) {
	h := &x.ctx.Request.Header
	// One scan per name: PeekAll's result is reused by the next call, so
	// the value is taken out first.
	lines := h.PeekAll("Authorization")
	n := len(lines)
	if n == 1 {
		bearer = lines[0]
	}
	if lines = h.PeekAll(a.apiKeyName); len(lines) == 1 {
		key = lines[0]
	}
	if n > 1 || len(lines) > 1 {
		a.refuse(x, faultDuplicateCredentials, wwwAuth[auth.ReasonMissing])
		return nil, nil, false
	}
	if bytes.HasPrefix(bearer, bearerPrefix) {
		bearer = bytes.TrimSpace(bearer[len(bearerPrefix):])
	} else {
		bearer = nil
	}
	if len(key) == 0 && a.apiKeyBearer && auth.LooksLikeKey(bearer) {
		key, bearer = bearer, nil
	}
	// An API key and a bearer token together: whichever sluice checked,
	// the upstream might believe the other. One credential per request.
	if len(key) > 0 && len(bearer) > 0 {
		a.refuse(x, faultDuplicateCredentials, wwwAuth[auth.ReasonMissing])
		return nil, nil, false
	}
	return key, bearer, true
}

// checkKey looks the API key up; false when it answered.
func (a *authSettings) checkKey(x *exchange, key []byte, r roles) bool {
	if len(key) == 0 {
		a.refuse(x, faultNoCredentials, wwwAuth[auth.ReasonMissing])
		return false
	}
	rec, err := a.keys.Lookup(key, time.Now())
	if errors.Is(err, auth.ErrKeyNotFound) {
		a.refuse(x, faultBadAPIKey, wwwAuthAPIKey)
		return false
	}
	if err != nil {
		// Fail closed: an unverifiable key is not a valid one.
		a.log.Warn("api key store unavailable", "error", err.Error())
		a.metrics.AuthFailure("key_store_unavailable")
		x.fail(faultKeyStoreDown)
		return false
	}
	if !auth.HasRoles(rec.Roles, r.names, r.all) {
		a.refuse(x, faultForbidden, wwwAuthForbidden)
		return false
	}
	// The key itself goes no further than the gateway, nor does any other
	// Authorization (credentials() refused a bearer token beside the key).
	h := &x.ctx.Request.Header
	h.DelBytes(a.apiKeyHeader)
	h.DelBytes(headerAuthorization)
	h.SetBytesK(headerAPIKeyID, rec.ID)
	x.apiKey = rec
	return true
}

// checkJWT verifies the bearer token; false when it answered.
func (a *authSettings) checkJWT(x *exchange, bearer []byte, r roles) bool {
	id, reason := a.verifier.Verify(bearer)
	if id == nil {
		a.refuse(x, authFaults[reason], wwwAuth[reason])
		return false
	}
	if !id.HasRoles(r.names, r.all) {
		a.refuse(x, faultForbidden, wwwAuthForbidden)
		return false
	}
	h := &x.ctx.Request.Header
	for _, kv := range id.Headers {
		h.SetBytesKV(kv[0], kv[1])
	}
	x.identity = id
	return true
}

func (a *authSettings) refuse(x *exchange, f *fault, www []byte) {
	a.metrics.AuthFailure(authFailureReason[f])
	x.fail(f)
	x.ctx.Response.Header.SetBytesV("WWW-Authenticate", www)
}

// identityHeaders are the headers only sluice may set (the API key's id,
// forwarded JWT claims).
func identityHeaders(cfg *config.Config) [][]byte {
	out := [][]byte{headerAPIKeyID, []byte(cfg.Auth.MTLS.SubjectHeader), []byte(cfg.Auth.MTLS.FingerprintHeader)}
	if j := cfg.Auth.JWT; j != nil {
		for _, h := range j.ForwardClaims {
			out = append(out, []byte(h))
		}
	}
	return out
}

// stripIdentityHeaders removes the identity headers from every request
// before any auth step runs, so a client can't claim an identity.
func (x *exchange) stripIdentityHeaders() {
	for _, k := range x.snap.identityHeaders {
		x.ctx.Request.Header.DelBytes(k)
	}
}

// compileAuth builds the snapshot's JWT verifier and API key settings.
func (s *Snapshot) compileAuth(cfg *config.Config) (*authSettings, error) {
	ak := cfg.Auth.APIKeys
	a := &authSettings{
		keys: s.res.keys, apiKeyHeader: []byte(ak.Header), apiKeyName: ak.Header,
		apiKeyBearer: ak.Bearer == nil || *ak.Bearer, metrics: s.metrics, log: s.log,
		mtlsSubject: []byte(cfg.Auth.MTLS.SubjectHeader), mtlsSHA256: []byte(cfg.Auth.MTLS.FingerprintHeader),
	}
	j := cfg.Auth.JWT
	if j == nil {
		return a, nil
	}
	vc := auth.VerifierConfig{
		Algorithms: j.Algorithms, Issuer: j.Issuer, Audience: j.Audience, Leeway: j.Leeway.D(),
		RequiredClaims: j.RequiredClaims, RolesClaim: j.RolesClaim, Forward: j.ForwardClaims, CacheSize: j.CacheSize,
		KeepClaims: limitClaims(cfg),
	}
	for i, k := range j.Keys {
		key, err := loadKey(cfg, k)
		if err != nil {
			return nil, fmt.Errorf("auth.jwt.keys[%d]: %w", i, err)
		}
		vc.Keys = append(vc.Keys, key)
	}
	if j.JWKS != nil {
		vc.JWKS = s.res.jwksFor(j.JWKS)
	}
	v, err := auth.NewVerifier(vc)
	if err != nil {
		return nil, err
	}
	a.verifier = v
	return a, nil
}

func loadKey(cfg *config.Config, k config.JWTKey) (*auth.Key, error) {
	if k.Secret != "" {
		return auth.NewKey(k.ID, k.Algorithm, []byte(k.Secret))
	}
	pemData := []byte(k.PublicKey)
	if k.PublicKeyFile != "" {
		data, err := os.ReadFile(cfg.Resolve(k.PublicKeyFile))
		if err != nil {
			return nil, err
		}
		pemData = data
	}
	pub, err := auth.ParsePublicKeyPEM(pemData)
	if err != nil {
		return nil, err
	}
	return auth.NewKey(k.ID, k.Algorithm, pub)
}

// Faults for auth answers, one per reason so bodies stay constant phrases.
var authFaults = func() map[auth.Reason]*fault {
	m := map[auth.Reason]*fault{}
	for _, r := range []auth.Reason{auth.ReasonMissing, auth.ReasonMalformed, auth.ReasonTooLarge, auth.ReasonExpired,
		auth.ReasonNotYet, auth.ReasonIssuedLater, auth.ReasonSignature, auth.ReasonAudience, auth.ReasonIssuer,
		auth.ReasonUnknownKey, auth.ReasonAlgorithm, auth.ReasonClaim, auth.ReasonCritical, auth.ReasonInvalid} {
		m[r] = &fault{fasthttp.StatusUnauthorized, string(r)}
	}
	return m
}()

var (
	faultNoCredentials        = &fault{fasthttp.StatusUnauthorized, "missing credentials"}
	faultBadAPIKey            = &fault{fasthttp.StatusUnauthorized, "invalid api key"}
	faultForbidden            = &fault{fasthttp.StatusForbidden, "insufficient role"}
	faultKeyStoreDown         = &fault{fasthttp.StatusServiceUnavailable, "api key store unavailable"}
	faultDuplicateCredentials = &fault{fasthttp.StatusBadRequest, "more than one credential header"}
	// precomputed WWW-Authenticate values (RFC 6750 3)
	wwwAuth = func() map[auth.Reason][]byte {
		m := map[auth.Reason][]byte{}
		for r := range authFaults {
			m[r] = []byte(`Bearer realm="sluice", error="invalid_token", error_description="` + string(r) + `"`)
		}
		m[auth.ReasonMissing] = []byte(`Bearer realm="sluice"`)
		return m
	}()
	// authFailureReason is the reason label of sluice_auth_failures_total:
	// the refusal's message in snake case ("token_expired").
	authFailureReason = func() map[*fault]string {
		faults := append(slices.Collect(maps.Values(authFaults)), faultNoCredentials, faultBadAPIKey, faultForbidden, faultDuplicateCredentials)
		m := map[*fault]string{}
		for _, f := range faults {
			m[f] = strings.ReplaceAll(f.msg, " ", "_")
		}
		return m
	}()
	wwwAuthForbidden = []byte(`Bearer realm="sluice", error="insufficient_scope"`)
	wwwAuthAPIKey    = []byte(`Bearer realm="sluice", error="invalid_token", error_description="invalid api key"`)
)
