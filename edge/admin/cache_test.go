package admin

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/sluicegw/sluice/edge/cache"
	"github.com/valyala/fasthttp"
)

func TestAdminCachePurge(t *testing.T) {
	m, err := cache.NewMemory(1<<20, cache.Events{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	now := time.Now().UnixNano()
	fill := func() {
		for _, k := range []string{"GET a.example/x", "GET a.example/x\x00v:accept-language=en", "GET a.example/xy", "GET b.example/x"} {
			e := &cache.Entry{Key: k, Status: 200, Lifetime: int64(time.Hour), ResponseTime: now}
			if k == "GET b.example/x" {
				e.Tags = []string{"t1"}
			}
			m.Set(context.Background(), e, now)
		}
	}
	h := Handler(Hooks{PurgeCache: func(p cache.Purge) (int, error) { return m.Purge(context.Background(), p) }})
	cases := []struct {
		body   string
		status int
		purged int
	}{
		{`{"key": "GET a.example/x"}`, 200, 2}, // the key and its variant, not /xy
		{`{"prefix": "GET a.example/"}`, 200, 3},
		{`{"tag": "t1"}`, 200, 1},
		{`{"prefix": ""}`, 200, 4},
		{`{"key": ""}`, 400, 0},
		{`{"key": "a", "tag": "b"}`, 400, 0},
		{`{"url": "x"}`, 400, 0},
		{`not json`, 400, 0},
	}
	for _, c := range cases {
		m.Purge(context.Background(), cache.Purge{Kind: cache.PurgePrefix})
		fill()
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/admin/cache/purge")
		ctx.Request.SetBodyString(c.body)
		h(&ctx)
		if ctx.Response.StatusCode() != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.body, ctx.Response.StatusCode(), c.status, ctx.Response.Body())
			continue
		}
		if c.status != 200 {
			continue
		}
		var out struct{ Purged int }
		if err := json.Unmarshal(ctx.Response.Body(), &out); err != nil || out.Purged != c.purged {
			t.Errorf("%s: %s, want purged %d", c.body, ctx.Response.Body(), c.purged)
		}
	}
}
