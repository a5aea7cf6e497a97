package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
)

// FuzzQuotaListQuery throws arbitrary limit and cursor values at GET
// /admin/quotas over a file-backed store: no panic; 400 with an error or
// 200 with at most min(limit, 500) keys, all after the cursor's key, in
// order, and a next cursor after the page's last key or "".
func FuzzQuotaListQuery(f *testing.F) {
	q, _ := limiter.OpenLocalQuotas("", time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Cleanup(q.Close)
	for _, k := range []string{"", "a", "a|b", "b", "<i>x</i>", "\x00", "zz", "é"} {
		q.Take(k, 100, time.Hour)
	}
	h := Handler(Hooks{Quotas: q})
	f.Add("2", "a")
	f.Add("", "")
	f.Add("0", "")
	f.Add("-1", "b")
	f.Add("99999999999999999999", "")
	f.Add("3", "after:a|b")
	f.Add("1", "after:")
	f.Fuzz(func(t *testing.T, limit, cursor string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("GET")
		ctx.Request.SetRequestURI("/admin/quotas?limit=" + url.QueryEscape(limit) + "&cursor=" + url.QueryEscape(cursor))
		h(&ctx)
		var p quotaPage
		if err := json.Unmarshal(ctx.Response.Body(), &p); err != nil {
			t.Fatalf("not JSON: %q", ctx.Response.Body())
		}
		n, err := strconv.Atoi(limit)
		from, after := strings.CutPrefix(cursor, "after:")
		switch code := ctx.Response.StatusCode(); {
		case code == 400 && p.Error != "":
			if (limit == "" || err == nil && n >= 1) && (cursor == "" || after) {
				t.Fatalf("limit %q cursor %q refused: %s", limit, cursor, p.Error)
			}
			return
		case code != 200:
			t.Fatalf("limit %q cursor %q: %d %s", limit, cursor, code, ctx.Response.Body())
		}
		want := 100
		if limit != "" {
			want = min(n, 500)
		}
		if len(p.Quotas) > want || p.Limit != want {
			t.Fatalf("limit %q: %d keys, limit %d", limit, len(p.Quotas), p.Limit)
		}
		if cursor != "" && !after {
			t.Fatalf("cursor %q accepted", cursor)
		}
		for i, u := range p.Quotas {
			if after && u.Key <= from || i > 0 && u.Key <= p.Quotas[i-1].Key {
				t.Fatalf("cursor %q: key %q out of order: %+v", cursor, u.Key, p.Quotas)
			}
		}
		if p.Next != "" && (len(p.Quotas) == 0 || p.Next != "after:"+p.Quotas[len(p.Quotas)-1].Key) {
			t.Fatalf("next %q is not the page's last key (%d keys)", p.Next, len(p.Quotas))
		}
	})
}
