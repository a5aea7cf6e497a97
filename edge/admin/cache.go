package admin

import (
	"bytes"
	"encoding/json"

	"github.com/fasthttp/router"
	"github.com/sluicegw/sluice/edge/cache"
	"github.com/valyala/fasthttp"
)

// purgeRequest is the body of POST /admin/cache/purge: exactly one field.
type purgeRequest struct {
	Key    *string `json:"key"`    // "GET example.com/path?a=1": every entry stored for that URL (each route's, scheme's, variant, caller)
	Prefix *string `json:"prefix"` // every key starting with it
	Tag    *string `json:"tag"`    // every entry whose Surrogate-Key / Cache-Tag named it
}

// cacheRoutes serves the response cache's purge. With a Redis store the
// purge removes the shared copies and is published, so every instance's
// memory tier drops its own.
func cacheRoutes(r *router.Router, purge func(cache.Purge) (int, error)) {
	r.POST("/admin/cache/purge", func(ctx *fasthttp.RequestCtx) {
		var req purgeRequest
		dec := json.NewDecoder(bytes.NewReader(ctx.PostBody()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": `want a JSON body with one of "key", "prefix" or "tag"`})
			return
		}
		var p cache.Purge
		set := 0
		for _, f := range []struct {
			kind string
			v    *string
		}{{cache.PurgeKey, req.Key}, {cache.PurgePrefix, req.Prefix}, {cache.PurgeTag, req.Tag}} {
			if f.v != nil {
				p = cache.Purge{Kind: f.kind, Arg: *f.v}
				set++
			}
		}
		if set != 1 || !p.Valid() {
			writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": `set exactly one of "key", "prefix" or "tag" (key and tag not empty)`})
			return
		}
		n, err := purge(p)
		if err != nil {
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]any{"error": "cache store unavailable: the purge may be partial", "purged": n})
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"purged": n, p.Kind: p.Arg})
	})
}
