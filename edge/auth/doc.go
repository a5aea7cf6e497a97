// Package auth verifies who a request is from: JWTs (HS/RS/PS/ES/EdDSA,
// static keys in keys.go and JWKS in jwks.go, verified in jwt.go) and API
// keys (apikeys.go: stored only as SHA-256, in a file or in Redis,
// store_redis.go).
//
// Invariants:
//   - A key's type pins the algorithms it verifies: an HMAC secret only
//     HS*, an RSA key only RS*/PS*, an EC key only the ES* of its curve, an
//     Ed25519 key only EdDSA. "none" is never accepted. So a token signed
//     with HS256 using an RSA public key as the secret is refused (key
//     confusion).
//   - Verification on the request path does no I/O except a rate-limited
//     JWKS refresh for an unknown kid; a verified token is cached until it
//     expires, and a cache hit allocates nothing. A hot API key is looked
//     up without I/O: from memory (FileStore) or from rueidis's client-side
//     cache, which Redis invalidates on revocation (RedisStore).
//   - Nothing here logs or returns a token or a key; a raw API key is
//     shown once, when it is created.
//
// auth imports nothing of sluice's; it never imports edge.
package auth
