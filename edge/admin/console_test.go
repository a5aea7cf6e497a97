package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

func TestPrometheusProxy(t *testing.T) {
	ok := testutil.StartRawUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("query") == "bad(" {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	}))
	html := testutil.StartRawUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>login</html>"))
	}))
	deadURL := "http://" + testutil.DeadAddr(t)
	// A redirect (to a JSON answer, which a followed redirect would relay)
	// and Prometheus's own refusals.
	odd := testutil.StartRawUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("query") {
		case "redirect":
			http.Redirect(w, r, ok.URL+"/api/v1/query?query=up", http.StatusFound)
		case "401", "403":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(map[string]int{"401": 401, "403": 403}[r.URL.Query().Get("query")])
			_, _ = w.Write([]byte(`{"status":"error","error":"unauthorized"}`))
		}
	}))

	prom := ok.URL
	h := Handler(Hooks{PrometheusURL: func() string { return prom }})
	cases := []struct {
		name, base, path string
		want             int
		body             string // a part of the answer
		upstreamTarget   string // what Prometheus was asked, when it was
	}{
		{"instant", ok.URL, "/ui/api/prom/query?query=up&time=17&evil=1", 200, `"resultType":"vector"`, "/api/v1/query?query=up&time=17"},
		{"range", ok.URL + "/", "/ui/api/prom/query_range?query=rate(x[1m])&start=1&end=2&step=1", 200, `"status":"success"`, "/api/v1/query_range?end=2&query=rate%28x%5B1m%5D%29&start=1&step=1"},
		{"Prometheus's own error passes through", ok.URL, "/ui/api/prom/query?query=bad(", 400, `"parse error"`, "/api/v1/query?query=bad%28"},
		{"no query", ok.URL, "/ui/api/prom/query", 400, "query is required", ""},
		{"other API", ok.URL, "/ui/api/prom/series?match[]=up", 404, "not found", ""},
		{"not JSON", html.URL, "/ui/api/prom/query?query=up", 502, "without JSON", ""},
		{"down", deadURL, "/ui/api/prom/query?query=up", 502, "did not answer", ""},
		{"not configured", "", "/ui/api/prom/query?query=up", 404, "admin.prometheus_url", ""},
		{"redirect not followed (RFC 9110 15.4)", odd.URL, "/ui/api/prom/query?query=redirect", 502, "without JSON", ""},
		{"Prometheus's 401 is not the console's", odd.URL, "/ui/api/prom/query?query=401", 502, "Prometheus refused", ""},
		{"Prometheus's 403 is not the console's", odd.URL, "/ui/api/prom/query?query=403", 502, "Prometheus refused", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prom = tc.base
			before := ok.Count()
			var ctx fasthttp.RequestCtx
			ctx.Request.SetRequestURI(tc.path)
			h(&ctx)
			if ctx.Response.StatusCode() != tc.want || !strings.Contains(string(ctx.Response.Body()), tc.body) {
				t.Errorf("%d %s, want %d with %q", ctx.Response.StatusCode(), ctx.Response.Body(), tc.want, tc.body)
			}
			if string(ctx.Response.Header.Peek("X-Content-Type-Options")) != "nosniff" || !strings.Contains(string(ctx.Response.Header.Peek("Content-Security-Policy")), "default-src 'none'") {
				t.Errorf("answer without nosniff and CSP: %s", ctx.Response.Header.String())
			}
			if tc.upstreamTarget != "" {
				reqs := ok.Requests()
				if len(reqs) != before+1 || reqs[len(reqs)-1].Target != tc.upstreamTarget {
					t.Errorf("Prometheus was asked %v, want %s (only the query API's own parameters)", reqs[before:], tc.upstreamTarget)
				}
			}
		})
	}
	prom = ""
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/ui/api/features")
	h(&ctx)
	if !strings.Contains(string(ctx.Response.Body()), `"prometheus": false`) {
		t.Errorf("features without a Prometheus: %s", ctx.Response.Body())
	}
}

// At most promMaxInFlight queries are proxied at once; one more is
// answered 503 with Retry-After at once, not queued.
func TestPrometheusProxyBoundsQueriesInFlight(t *testing.T) {
	arrived, release := make(chan struct{}, promMaxInFlight), make(chan struct{})
	slow := testutil.StartRawUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success"}`))
	}))
	h := Handler(Hooks{PrometheusURL: func() string { return slow.URL }})
	query := func() *fasthttp.RequestCtx {
		var ctx fasthttp.RequestCtx
		ctx.Request.SetRequestURI("/ui/api/prom/query?query=up")
		h(&ctx)
		return &ctx
	}
	done := make(chan int, promMaxInFlight)
	for i := 0; i < promMaxInFlight; i++ {
		go func() { done <- query().Response.StatusCode() }()
	}
	for i := 0; i < promMaxInFlight; i++ {
		<-arrived
	}
	extra := query()
	if extra.Response.StatusCode() != 503 || len(extra.Response.Header.Peek("Retry-After")) == 0 {
		t.Errorf("query %d in flight: %d %s, want 503 with Retry-After", promMaxInFlight+1, extra.Response.StatusCode(), extra.Response.Body())
	}
	close(release)
	for i := 0; i < promMaxInFlight; i++ {
		if code := <-done; code != 200 {
			t.Errorf("a query in flight: %d", code)
		}
	}
	if code := query().Response.StatusCode(); code != 200 {
		t.Errorf("after the others ended: %d", code)
	}
}
