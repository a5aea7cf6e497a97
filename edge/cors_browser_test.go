package edge

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// TestCORSInChromium checks the policy where it matters: in a browser. A
// page served from one loopback origin calls sluice on another (another
// port is another origin) with fetch(): a PUT with a JSON body and a
// custom header, so Chromium sends a preflight first (Fetch 4.8), and
// then the PUT with credentials (3.3.5). From the allowed origin the page
// reads the answer and the exposed header but not an unexposed one
// (3.3.3); from another origin the preflight is refused at the edge and
// the PUT never reaches the upstream, and a simple GET (no preflight) is
// served but withheld from the page (4.10). The strict security headers
// are on too: Cross-Origin-Resource-Policy limits no-cors loads only, so
// it doesn't get in the way of CORS.
func TestCORSInChromium(t *testing.T) {
	browser := testutil.Chromium(t)
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	allowedPage, otherPage := testutil.ServePage(t), testutil.ServePage(t)
	g := startGateway(t, `
security_headers: { preset: strict }
cors:
  allow_origins: ["`+allowedPage+`"]
  allow_methods: [GET, PUT]
  allow_headers: [Content-Type, X-Client]
  expose_headers: [X-Request-Id]
  allow_credentials: true
`+oneUpstream(up.URL, "  - { name: api, match: { prefix: /api/ }, upstream: up, rewrite: { replace_path: /__stub/echo } }\n"))

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	defer cancelBrowser()

	type result struct {
		OK     bool   `json:"ok"`
		Error  string `json:"error"`
		Status int    `json:"status"`
		ID     string `json:"id"`
		Via    string `json:"via"`
		Body   string `json:"body"`
	}
	// fetchFrom opens the page on origin and runs fetch() there; the
	// promise is awaited, so the test waits on the browser, not a clock.
	fetchFrom := func(origin, init string) result {
		t.Helper()
		js := `(async () => {
  try {
    const r = await fetch(` + strconvQuote(g.url+"/api/x") + `, ` + init + `);
    return JSON.stringify({ok: true, status: r.status, id: r.headers.get("X-Request-Id") || "", via: r.headers.get("Via") || "",
      body: await r.text()});
  } catch (e) {
    return JSON.stringify({ok: false, error: String(e)});
  }
})()`
		if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/")); err != nil {
			t.Fatalf("chromium: opening %s: %v", origin, err)
		}
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		var r result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("page said %q: %v", out, err)
		}
		return r
	}
	const put = `{method: "PUT", credentials: "include", headers: {"Content-Type": "application/json", "X-Client": "page"}, body: '{"n":1}'}`

	before := up.Requests()
	r := fetchFrom(allowedPage, put)
	if !r.OK || r.Status != 200 {
		t.Fatalf("allowed origin: %+v", r)
	}
	var echo stub.Echo
	if err := json.Unmarshal([]byte(r.Body), &echo); err != nil || echo.Method != "PUT" || len(echo.Headers["X-Client"]) != 1 || echo.Headers["X-Client"][0] != "page" {
		t.Errorf("the page read %q, want the upstream's echo of its PUT", r.Body)
	}
	if r.ID == "" || r.Via != "" {
		t.Errorf("exposed X-Request-Id %q (want it), unexposed Via %q (want it hidden)", r.ID, r.Via)
	}
	if n := up.Requests() - before; n != 1 {
		t.Errorf("the upstream saw %d requests, want 1: the preflight is answered by sluice", n)
	}

	before = up.Requests()
	r = fetchFrom(otherPage, put)
	if r.OK || !strings.Contains(r.Error, "TypeError") {
		t.Errorf("another origin's PUT: %+v, want a failed fetch", r)
	}
	if n := up.Requests() - before; n != 0 {
		t.Errorf("the upstream saw %d requests from a refused origin's PUT, want 0", n)
	}

	before = up.Requests()
	r = fetchFrom(otherPage, `{}`)
	if r.OK || up.Requests()-before != 1 {
		t.Errorf("another origin's simple GET: %+v, upstream +%d; want sent (no preflight) and withheld from the page", r, up.Requests()-before)
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
