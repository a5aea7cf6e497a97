package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/fasthttp/router"
	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
)

// keyRoutes serves the API key admin API (seed 001's shapes). The raw key
// is returned once, by create; hashes are never returned.
func keyRoutes(r *router.Router, keys auth.KeyStore, gate *WriteGate) {
	r.POST("/admin/apikeys", gate.wrap(func(ctx *fasthttp.RequestCtx) {
		var spec auth.KeySpec
		dec := json.NewDecoder(bytes.NewReader(ctx.PostBody()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "bad request body: " + err.Error()})
			return
		}
		if err := spec.Validate(time.Now()); err != nil {
			writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		rec, raw, err := keys.Create(ctx, spec)
		if err != nil {
			writeJSON(ctx, fasthttp.StatusInternalServerError, map[string]string{"error": "could not store the key"})
			return
		}
		writeJSON(ctx, fasthttp.StatusCreated, map[string]any{
			"api_key": rec, "raw_key": raw,
			"message": "store raw_key now: it is not shown again",
		})
	}))
	r.GET("/admin/apikeys", func(ctx *fasthttp.RequestCtx) {
		list, err := keys.List(ctx)
		if err != nil {
			writeJSON(ctx, fasthttp.StatusInternalServerError, map[string]string{"error": "could not list keys"})
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, list)
	})
	r.GET("/admin/apikeys/{id}", func(ctx *fasthttp.RequestCtx) {
		rec, err := keys.Get(ctx, ctx.UserValue("id").(string))
		keyAnswer(ctx, rec, err)
	})
	r.POST("/admin/apikeys/{id}/revoke", gate.wrap(func(ctx *fasthttp.RequestCtx) {
		rec, err := keys.Revoke(ctx, ctx.UserValue("id").(string))
		keyAnswer(ctx, rec, err)
	}))
	r.DELETE("/admin/apikeys/{id}", gate.wrap(func(ctx *fasthttp.RequestCtx) {
		id := ctx.UserValue("id").(string)
		if err := keys.Delete(ctx, id); err != nil {
			keyAnswer(ctx, auth.KeyRecord{}, err)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"deleted": id})
	}))
}

func keyAnswer(ctx *fasthttp.RequestCtx, rec auth.KeyRecord, err error) {
	switch {
	case errors.Is(err, auth.ErrKeyNotFound):
		writeJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "no such api key"})
	case err != nil:
		writeJSON(ctx, fasthttp.StatusInternalServerError, map[string]string{"error": "key store failed"})
	default:
		writeJSON(ctx, fasthttp.StatusOK, rec)
	}
}

// Paging of GET /admin/quotas: limit's default and cap, so one answer
// stays small however many consumers there are.
const (
	quotaPageDefault = 100
	quotaPageMax     = 500
)

// quotaRoutes serves GET /admin/quotas (every key with usage, a page at
// a time; with ?key=, that key's usage), GET /admin/quotas/{key}, POST
// /admin/quotas/{key}/reset and POST /admin/quotas/reset?key=.
// {key} is the quota key: for key: api_key, the API key's id; for
// combined keys, the values joined by '|'.
func quotaRoutes(r *router.Router, q limiter.Quotas, gate *WriteGate) {
	r.GET("/admin/quotas", func(ctx *fasthttp.RequestCtx) {
		if ctx.QueryArgs().Has("key") { // one key, whatever its bytes (see the reset below)
			u, err := q.Usage(string(ctx.QueryArgs().Peek("key")))
			quotaAnswer(ctx, err, u)
			return
		}
		limit := quotaPageDefault
		if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 1 {
				writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "limit must be a whole number from 1 (at most " + strconv.Itoa(quotaPageMax) + " are listed a page)"})
				return
			}
			limit = min(n, quotaPageMax)
		}
		page, next, err := q.List(string(ctx.QueryArgs().Peek("cursor")), limit)
		if errors.Is(err, limiter.ErrBadCursor) {
			writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "bad cursor: pass the next value of the previous page, or none to start"})
			return
		}
		if page == nil {
			page = []limiter.QuotaUsage{}
		}
		quotaAnswer(ctx, err, map[string]any{"quotas": page, "next": next, "limit": limit})
	})
	r.GET("/admin/quotas/{key}", func(ctx *fasthttp.RequestCtx) {
		u, err := q.Usage(ctx.UserValue("key").(string))
		quotaAnswer(ctx, err, u)
	})
	// A key can be any bytes, "." and ".." included, which no path
	// segment can carry past a browser (the URL standard resolves "%2e%2e"
	// as ".."): ?key= can. The console uses this form for every key.
	r.POST("/admin/quotas/reset", gate.wrap(func(ctx *fasthttp.RequestCtx) {
		if !ctx.QueryArgs().Has("key") {
			writeJSON(ctx, fasthttp.StatusBadRequest, map[string]string{"error": "want ?key=QUOTA_KEY (or POST /admin/quotas/{key}/reset)"})
			return
		}
		key := string(ctx.QueryArgs().Peek("key"))
		quotaAnswer(ctx, q.Reset(key), map[string]string{"reset": key})
	}))
	r.POST("/admin/quotas/{key}/reset", gate.wrap(func(ctx *fasthttp.RequestCtx) {
		key := ctx.UserValue("key").(string)
		quotaAnswer(ctx, q.Reset(key), map[string]string{"reset": key})
	}))
}

func quotaAnswer(ctx *fasthttp.RequestCtx, err error, ok any) {
	switch {
	case errors.Is(err, limiter.ErrNoQuota):
		writeJSON(ctx, fasthttp.StatusNotFound, map[string]string{"error": "no quota usage for this key"})
	case err != nil:
		writeJSON(ctx, fasthttp.StatusServiceUnavailable, map[string]string{"error": "quota store unavailable"})
	default:
		writeJSON(ctx, fasthttp.StatusOK, ok)
	}
}
