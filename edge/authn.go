package edge

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/fasthttp"
)

// User-value keys under which the auth step leaves who the caller is, for
// later steps (rate limits). Pointers in an interface: no allocation.
const (
	userValueIdentity = "sluice.identity" // *auth.Identity (JWT)
	userValueAPIKey   = "sluice.apikey"   // *auth.KeyRecord
)

var (
	headerAuthorization = []byte("Authorization")
	headerAPIKeyID      = []byte("X-API-Key-ID")
	bearerPrefix        = []byte("Bearer ")
)

// compileAuth builds the snapshot's JWT verifier and API key settings.
func (s *Snapshot) compileAuth(cfg *config.Config, env buildEnv) error {
	s.keys = env.keys
	ak := cfg.Auth.APIKeys
	s.apiKeyHeader = []byte(ak.Header)
	s.apiKeyBearer = ak.Bearer == nil || *ak.Bearer
	s.identityHeaders = [][]byte{headerAPIKeyID}
	j := cfg.Auth.JWT
	if j == nil {
		return nil
	}
	vc := auth.VerifierConfig{
		Algorithms: j.Algorithms, Issuer: j.Issuer, Audience: j.Audience, Leeway: j.Leeway.D(),
		RequiredClaims: j.RequiredClaims, RolesClaim: j.RolesClaim, Forward: j.ForwardClaims, CacheSize: j.CacheSize,
		KeepClaims: limitClaims(cfg),
	}
	for i, k := range j.Keys {
		key, err := loadKey(cfg, k)
		if err != nil {
			return fmt.Errorf("auth.jwt.keys[%d]: %w", i, err)
		}
		vc.Keys = append(vc.Keys, key)
	}
	if j.JWKS != nil && env.jwks != nil {
		vc.JWKS = env.jwks(j.JWKS)
	}
	v, err := auth.NewVerifier(vc)
	if err != nil {
		return err
	}
	s.verifier = v
	for _, h := range j.ForwardClaims {
		s.identityHeaders = append(s.identityHeaders, []byte(h))
	}
	return nil
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
var authFaults = func() map[auth.Reason]*Fault {
	m := map[auth.Reason]*Fault{}
	for _, r := range []auth.Reason{auth.ReasonMissing, auth.ReasonMalformed, auth.ReasonTooLarge, auth.ReasonExpired,
		auth.ReasonNotYet, auth.ReasonIssuedLater, auth.ReasonSignature, auth.ReasonAudience, auth.ReasonIssuer,
		auth.ReasonUnknownKey, auth.ReasonAlgorithm, auth.ReasonClaim, auth.ReasonInvalid, auth.ReasonCritical} {
		m[r] = &Fault{fasthttp.StatusUnauthorized, string(r), FromClient}
	}
	return m
}()

var (
	faultNoCredentials        = &Fault{fasthttp.StatusUnauthorized, "missing credentials", FromClient}
	faultBadAPIKey            = &Fault{fasthttp.StatusUnauthorized, "invalid api key", FromClient}
	faultForbidden            = &Fault{fasthttp.StatusForbidden, "insufficient role", FromClient}
	faultKeyStoreDown         = &Fault{fasthttp.StatusServiceUnavailable, "api key store unavailable", FromGateway}
	faultDuplicateCredentials = &Fault{fasthttp.StatusBadRequest, "more than one credential header", FromClient}
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
	authFailureReason = func() map[*Fault]string {
		faults := append(slices.Collect(maps.Values(authFaults)), faultNoCredentials, faultBadAPIKey, faultForbidden, faultDuplicateCredentials)
		m := map[*Fault]string{}
		for _, f := range faults {
			m[f] = strings.ReplaceAll(f.Msg, " ", "_")
		}
		return m
	}()
	wwwAuthForbidden = []byte(`Bearer realm="sluice", error="insufficient_scope"`)
	wwwAuthAPIKey    = []byte(`Bearer realm="sluice", error="invalid_token", error_description="invalid api key"`)
)

// authStep checks the caller per the route's auth mode and roles, then
// sets the identity headers for the upstream. Every refusal goes through
// writeFault; a client can never supply the identity headers itself (they
// are removed for every request in ServeHTTP).
func (s *Snapshot) authStep(rt *Route) Middleware {
	return func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			h := &ctx.Request.Header
			rid := h.PeekBytes(headerRequestID)
			// Two credentials of one kind: the gateway would check one and
			// the upstream might believe the other. Refuse.
			if len(h.PeekAll("Authorization")) > 1 || len(h.PeekAll(string(s.apiKeyHeader))) > 1 {
				s.refuse(ctx, faultDuplicateCredentials, wwwAuth[auth.ReasonMissing], rid)
				return
			}
			apiKey := h.PeekBytes(s.apiKeyHeader)
			bearer := h.PeekBytes(headerAuthorization)
			if bytes.HasPrefix(bearer, bearerPrefix) {
				bearer = bytes.TrimSpace(bearer[len(bearerPrefix):])
			} else {
				bearer = nil
			}
			if len(apiKey) == 0 && s.apiKeyBearer && auth.LooksLikeKey(bearer) {
				apiKey, bearer = bearer, nil
			}
			mode := rt.auth
			if mode == "any" {
				mode = "jwt"
				if len(apiKey) > 0 {
					mode = "api_key"
				}
			}
			var id *auth.Identity
			switch mode {
			case "api_key":
				if len(apiKey) == 0 {
					s.refuse(ctx, faultNoCredentials, wwwAuth[auth.ReasonMissing], rid)
					return
				}
				rec, err := s.keys.Lookup(apiKey, time.Now())
				if errors.Is(err, auth.ErrKeyNotFound) {
					s.refuse(ctx, faultBadAPIKey, wwwAuthAPIKey, rid)
					return
				}
				if err != nil {
					// Fail closed: an unverifiable key is not a valid one.
					s.log.Warn("api key store unavailable", "error", err.Error())
					s.metrics.AuthFailure("key_store_unavailable")
					writeFault(ctx, faultKeyStoreDown, rid)
					return
				}
				if !auth.HasRoles(rec.Roles, rt.roles, rt.allRoles) {
					s.refuse(ctx, faultForbidden, wwwAuthForbidden, rid)
					return
				}
				// The key itself goes no further than the gateway.
				h.DelBytes(s.apiKeyHeader)
				if len(bearer) == 0 {
					h.DelBytes(headerAuthorization)
				}
				h.SetBytesK(headerAPIKeyID, rec.ID)
				ctx.SetUserValue(userValueAPIKey, rec)
			default: // jwt
				var reason auth.Reason
				id, reason = s.verifier.Verify(bearer)
				if id == nil {
					s.refuse(ctx, authFaults[reason], wwwAuth[reason], rid)
					return
				}
				if !id.HasRoles(rt.roles, rt.allRoles) {
					s.refuse(ctx, faultForbidden, wwwAuthForbidden, rid)
					return
				}
				for _, kv := range id.Headers {
					h.SetBytesKV(kv[0], kv[1])
				}
				ctx.SetUserValue(userValueIdentity, id)
			}
			next(ctx)
		}
	}
}

func (s *Snapshot) refuse(ctx *fasthttp.RequestCtx, f *Fault, www, rid []byte) {
	s.metrics.AuthFailure(authFailureReason[f])
	writeFault(ctx, f, rid)
	ctx.Response.Header.SetBytesV("WWW-Authenticate", www)
}
