package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/limiter"
	"github.com/valyala/fasthttp"
)

// quotaPage is GET /admin/quotas's answer.
type quotaPage struct {
	Quotas []limiter.QuotaUsage `json:"quotas"`
	Next   string               `json:"next"`
	Limit  int                  `json:"limit"`
	Error  string               `json:"error"`
}

func getQuotas(t *testing.T, h fasthttp.RequestHandler, query string) (int, quotaPage) {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/admin/quotas" + query)
	h(&ctx)
	var p quotaPage
	if err := json.Unmarshal(ctx.Response.Body(), &p); err != nil {
		t.Fatalf("GET /admin/quotas%s: not JSON: %v\n%s", query, err, ctx.Response.Body())
	}
	return ctx.Response.StatusCode(), p
}

func keysOf(p quotaPage) string {
	ks := make([]string, len(p.Quotas))
	for i, u := range p.Quotas {
		ks[i] = u.Key
	}
	return strings.Join(ks, " ")
}

// GET /admin/quotas lists every consumer with usage, a page at a time:
// limit defaults to 100 and is capped at 500; a bad limit or cursor is
// 400, the store failing 503.
func TestQuotaList(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	local, _ := limiter.OpenLocalQuotas("", time.Hour, log)
	defer local.Close()
	for i, k := range []string{"k0", "k1", "k2", "k3", "k4", "k5", "<b>k6</b>|x"} {
		for range i + 1 {
			local.Take(k, 100, time.Hour)
		}
	}
	r := testutil.StartRedis(t)
	fb, _ := limiter.OpenLocalQuotas("", time.Hour, log)
	defer fb.Close()
	rq := &limiter.RedisQuotas{Client: testutil.RedisClient(t, r.Addr), Timeout: time.Second, Fallback: fb, Log: log}
	rq.Take("r1", 5, time.Hour)
	downRedis := testutil.StartRedis(t)
	down := &limiter.RedisQuotas{Client: testutil.RedisClient(t, downRedis.Addr), Timeout: time.Second, Fallback: fb, Log: log}
	downRedis.Stop()

	for _, tc := range []struct {
		name   string
		store  limiter.Quotas
		query  string
		status int
		keys   string // the page's keys in order ("*": not checked)
		next   bool   // a next cursor is given
		limit  int
		err    string // part of the error
	}{
		{name: "first page, default limit", store: local, query: "", status: 200, keys: "<b>k6</b>|x k0 k1 k2 k3 k4 k5", limit: 100},
		{name: "a page of 3", store: local, query: "?limit=3", status: 200, keys: "<b>k6</b>|x k0 k1", next: true, limit: 3},
		{name: "after a cursor", store: local, query: "?limit=3&cursor=after:k1", status: 200, keys: "k2 k3 k4", next: true, limit: 3},
		{name: "the last page", store: local, query: "?limit=3&cursor=after:k4", status: 200, keys: "k5", limit: 3},
		{name: "limit capped", store: local, query: "?limit=100000", status: 200, keys: "*", limit: 500},
		{name: "limit zero", store: local, query: "?limit=0", status: 400, err: "limit must be"},
		{name: "limit negative", store: local, query: "?limit=-4", status: 400, err: "limit must be"},
		{name: "limit not a number", store: local, query: "?limit=ten", status: 400, err: "limit must be"},
		{name: "a cursor the store did not give", store: local, query: "?cursor=k1", status: 400, err: "bad cursor"},
		{name: "redis", store: rq, query: "?limit=10", status: 200, keys: "r1", limit: 10},
		{name: "redis, a cursor it did not give", store: rq, query: "?cursor=" + url.QueryEscape("k1"), status: 400, err: "bad cursor"},
		{name: "redis down", store: down, query: "", status: 503, err: "quota store unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, p := getQuotas(t, Handler(Hooks{Quotas: tc.store}), tc.query)
			if code != tc.status {
				t.Fatalf("status %d, want %d (%+v)", code, tc.status, p)
			}
			if tc.err != "" {
				if !strings.Contains(p.Error, tc.err) {
					t.Errorf("error %q, want it to say %q", p.Error, tc.err)
				}
				return
			}
			if got := keysOf(p); tc.keys != "*" && got != tc.keys {
				t.Errorf("keys %q, want %q", got, tc.keys)
			}
			if (p.Next != "") != tc.next || p.Limit != tc.limit {
				t.Errorf("next %q limit %d, want a next cursor: %v, limit %d", p.Next, p.Limit, tc.next, tc.limit)
			}
			for _, u := range p.Quotas {
				if u.Per != "1h0m0s" || u.Used < 1 {
					t.Errorf("listed %+v, want its usage over the hour", u)
				}
			}
		})
	}
	// Following next from page to page lists each key once, with its
	// usage (k3 was counted 4 times).
	h := Handler(Hooks{Quotas: local})
	seen, cursor := map[string]int{}, ""
	for pages := 0; ; pages++ {
		if pages == 10 {
			t.Fatal("no end to the pages")
		}
		code, p := getQuotas(t, h, "?limit=2&cursor="+url.QueryEscape(cursor))
		if code != 200 {
			t.Fatalf("page %d: %d %+v", pages, code, p)
		}
		for _, u := range p.Quotas {
			seen[u.Key]++
			if u.Key == "k3" && u.Used != 4 {
				t.Errorf("k3 listed with %d used, want 4", u.Used)
			}
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if len(seen) != 7 {
		t.Errorf("paging by 2 saw %v, want the 7 keys once each", seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", k, n)
		}
	}
}

// Quota keys are any bytes, "." and ".." included (review L2), which a
// browser can't put in a path segment (RFC 3986 section 5.2.4 removes
// them; the URL standard reads "%2e%2e" as ".." too): GET
// /admin/quotas?key= and POST /admin/quotas/reset?key= reach them, and
// the console uses that form.
func TestQuotaKeysInTheQuery(t *testing.T) {
	q, _ := limiter.OpenLocalQuotas("", time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer q.Close()
	h := Handler(Hooks{Quotas: q})
	for _, key := range []string{".", "..", "a/b", "reset", "x y|z", "%2E", ""} {
		t.Run(key, func(t *testing.T) {
			q.Take(key, 10, time.Hour)
			esc := url.QueryEscape(key)
			if code, body, _ := call(h, "GET", "/admin/quotas?key="+esc); code != 200 || body["used"] != float64(1) {
				t.Fatalf("usage of %q: %d %v", key, code, body)
			}
			if code, body, _ := call(h, "POST", "/admin/quotas/reset?key="+esc); code != 200 || body["reset"] != key {
				t.Fatalf("reset of %q: %d %v", key, code, body)
			}
			if code, _, _ := call(h, "GET", "/admin/quotas?key="+esc); code != 404 {
				t.Fatalf("after the reset: %d, want 404", code)
			}
		})
	}
	if code, _, _ := call(h, "POST", "/admin/quotas/reset"); code != 400 {
		t.Errorf("reset without a key: %d, want 400", code)
	}
}
