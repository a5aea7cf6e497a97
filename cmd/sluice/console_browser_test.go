package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// console drives the web console in one Chromium tab.
type console struct {
	t     *testing.T
	ctx   context.Context
	admin string // http://host:port of the admin listener
	shots string // where screenshots go
}

// do runs chromedp steps, failing the test with what was being done.
func (c *console) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.t.Fatalf("chromium: %s: %v", what, err)
	}
}

// waitJS waits until a JavaScript expression is truthy in the page: the
// test waits on what the page shows, never on a fixed delay. An
// evaluation that fails (the page navigating away meanwhile) is tried
// again.
func (c *console) waitJS(what, expr string) {
	c.t.Helper()
	deadline := time.Now().Add(40 * time.Second) // generous: a loaded 2-core machine, and waiting costs nothing when it is there
	for {
		ok, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || c.ctx.Err() != nil {
			body, _ := chromedp.Run(c.ctx, chromedp.Evaluate[string](`document.body.innerText`))
			c.t.Fatalf("chromium: waiting for %s (%s): last error %v\npage text:\n%s", what, expr, err, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// js evaluates an expression and returns its value as a string.
func (c *console) js(expr string) string {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		c.t.Fatalf("chromium: %s: %v", expr, err)
	}
	return v
}

// page opens a console page by its hash and waits for it to render.
func (c *console) page(name, ready string) {
	c.t.Helper()
	c.do("opening #/"+name, chromedp.Evaluate[chromedp.Void](`location.hash = "#/`+name+`"`))
	c.waitJS(name+" page", `document.getElementById("main").dataset.page === "`+name+`" && !!document.querySelector(`+strconvQuote(ready)+`)`)
}

// shot writes a PNG of the whole page.
func (c *console) shot(name string) {
	c.t.Helper()
	png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100)) // quality 100 makes a PNG (below: JPEG)
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(c.shots, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *console) login(user, password string) {
	c.t.Helper()
	c.do("opening the console", chromedp.Navigate(c.admin+"/ui/"))
	c.waitJS("the login form", `!!document.getElementById("login-password")`)
	// By keyboard: the password field's Enter submits the form.
	c.do("logging in",
		chromedp.SetValue(chromedp.ID("login-user"), user),
		chromedp.SendKeys(chromedp.ID("login-password"), password+"\r"))
}

// screenshotDir is $SLUICE_SCREENSHOTS (kept) or a temporary directory.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("SLUICE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// meteredGet sends one request as user on the route with a quota keyed by
// X-User, and returns the status and X-Quota-Remaining.
func meteredGet(t *testing.T, data, user string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", data+"/metered/x", nil)
	req.Header.Set("X-User", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Quota-Remaining")
}

// adminCall calls the JSON admin API with Basic credentials.
func adminCall(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.SetBasicAuth("admin", "console-pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestConsoleInChromium drives the web console (/ui/ on the admin
// listener) in real headless Chromium against a real sluice, upstream and
// Prometheus: login (by keyboard; a wrong password refused), the
// overview's live figures moving with traffic, an API key created in the
// page working on the data plane and refused once revoked in the page, an
// open circuit breaker reset, quota usage shown and reset, a broken
// config's reload error shown with file and line, PromQL through the
// admin proxy, a key name full of HTML shown as text, a cross-site form
// POST refused for want of the CSRF token, the phone layout, logout, and
// a session that expires. Each page is screenshotted.
func TestConsoleInChromium(t *testing.T) {
	testutil.Chromium(t)
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	promAddr := testutil.DeadAddr(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, password: console-pw, prometheus_url: "http://%s" }
auth: { api_keys: { file: %s } }
upstreams:
  up: { targets: [ { url: "%s" } ] }
  dead: { targets: [ { url: "http://%s" } ], circuit: { failures: 2, open_for: 10m }, retry: { attempts: 1 } }
routes:
  - { name: public, match: { prefix: /public/ }, upstream: up }
  - { name: keyed, match: { prefix: /keyed/ }, upstream: up, auth: api_key, quota: { limit: 1000, per: 24h } }
  - { name: down, match: { prefix: /down/ }, upstream: dead }
  - { name: metered, match: { prefix: /metered/ }, upstream: up, quota: { limit: 5, per: 1h, key: "header:X-User" } }
`, promAddr, filepath.Join(dir, "apikeys.json"), up.URL, testutil.DeadAddr(t))
	s := testutil.StartSluice(t, cfg)
	data, admin := "http://"+s.Addr, "http://"+s.AdminAddr
	prom := testutil.StartPrometheus(t, promAddr, s.AdminAddr, "admin", "console-pw")

	c := &console{t: t, ctx: testutil.StartBrowser(t, 5*time.Minute), admin: admin, shots: screenshotDir(t)}
	t.Logf("screenshots in %s", c.shots)

	// Wrong password: refused, and no page behind the login.
	c.login("admin", "not-the-password")
	c.waitJS("the wrong-password message", `document.getElementById("login-error").textContent.includes("Wrong user name or password")`)
	if c.js(`String(document.getElementById("nav").hidden)`) != "true" {
		t.Error("the navigation shows after a wrong password")
	}
	// The focus goes back to the password field, with a visible ring.
	if got := c.js(`document.activeElement.id + " " + getComputedStyle(document.activeElement).outlineStyle`); got != "login-password solid" {
		t.Errorf("after a wrong password the focus is on %q, want the password field with a solid outline", got)
	}
	c.shot("login")

	c.login("admin", "console-pw")
	c.waitJS("the overview", `document.getElementById("main").dataset.page === "overview" && !!document.getElementById("stat-rps")`)
	if c.js(`String(document.cookie.includes("sluice_session"))`) != "false" {
		t.Error("the session cookie is readable by script: want HttpOnly")
	}

	// Live figures: before any traffic the page shows 0 req/s; traffic
	// through the data plane (with a 404 in each batch) moves the rps and
	// 4xx figures and the chart. Requests go in small batches until the
	// page shows them (bounded: at most 100 batches).
	c.waitJS("the first rate", `document.getElementById("stat-rps").dataset.value !== ""`)
	if v := c.js(`document.getElementById("stat-rps").dataset.value`); v != "0" {
		t.Errorf("req/s before any traffic: %s, want 0", v)
	}
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("the overview's rps and 4xx figures never rose above 0 after 1100 requests")
		}
		for j := 0; j < 10; j++ {
			testutil.Get(t, data+"/public/x")
		}
		testutil.Get(t, data+"/nowhere")
		if c.js(`String(Number(document.getElementById("stat-rps").dataset.value) > 0 && Number(document.getElementById("stat-e4").dataset.value) > 0 && Number(document.getElementById("chart-rps").dataset.points) >= 2)`) == "true" {
			break
		}
		time.Sleep(100 * time.Millisecond) // pacing the traffic, not waiting for a result
	}
	c.waitJS("p50 latency shown", `document.getElementById("stat-p50").textContent.endsWith(" ms")`)
	// The page's quantiles are Prometheus's histogram_quantile over the
	// buckets' increase: linear within the bucket the rank falls in.
	got := c.js(`import("/ui/metrics.js").then(m => {
  const at = (n, ...counts) => ({count: n, buckets: new Map([[0.001, counts[0]], [0.01, counts[1]], [0.1, counts[2]], [Number.MAX_VALUE, n]])});
  const now = at(150, 60, 130, 150), before = at(50, 10, 40, 50);
  const q = [m.quantile(0.5, now, before), m.quantile(0.99, now, before), m.quantile(0.5, before, before)];
  return JSON.stringify(q.map(v => v === null ? null : +v.toFixed(9)));
})`)
	if got != "[0.001,0.091,null]" {
		t.Errorf("quantiles over the increase (50 in le 0.001, 40 in le 0.01, 10 in le 0.1): %s, want p50 0.001, p99 0.091, and none without requests", got)
	}
	c.shot("overview")

	// Routes, reached by keyboard: the navigation is links, Enter follows
	// one. Every route shows its match, upstream and auth.
	c.do("following the Routes link by keyboard",
		chromedp.Focus(chromedp.CSS(`nav a[data-page="routes"]`)),
		chromedp.KeyEvent("\r"))
	c.waitJS("the routes page", `document.getElementById("main").dataset.page === "routes" && !!document.getElementById("routes-table")`)
	if got := c.js(`document.activeElement.id`); got != "main" {
		t.Errorf("after following a link the focus is on %q, want the page (main)", got)
	}
	rows := c.js(`document.getElementById("routes-table").innerText`)
	for _, want := range []string{"public", "prefix /public/", "keyed", "api_key", "quota 1000 per 24h0m0s", "down", "dead"} {
		if !strings.Contains(rows, want) {
			t.Errorf("routes table lacks %q:\n%s", want, rows)
		}
	}
	c.waitJS("the public route's live rate", `[...document.querySelectorAll("#routes-table tr")].some(r => r.cells[0].textContent === "public" && r.cells[5].textContent !== "–")`)
	c.shot("routes")

	// API keys: create in the page, use on the data plane, revoke in the
	// page, refused on the data plane.
	c.page("keys", "#key-name")
	c.do("creating a key",
		chromedp.SetValue(chromedp.ID("key-name"), "ui-test"),
		chromedp.SetValue(chromedp.ID("key-roles"), "reader"),
		chromedp.SetValue(chromedp.ID("key-quota"), "500"),
		chromedp.Click(chromedp.ID("key-create")))
	c.waitJS("the new key", `document.getElementById("new-key-value") && document.getElementById("new-key-value").textContent.startsWith("sluice_")`)
	raw := c.js(`document.getElementById("new-key-value").textContent`)
	c.waitJS("the key listed", `document.getElementById("keys-table") && document.getElementById("keys-table").innerText.includes("ui-test")`)
	c.shot("keys")
	if code := authedGet(t, data+"/keyed/x", "X-API-Key", raw); code != 200 {
		t.Fatalf("the key created in the console: %d on the data plane, want 200", code)
	}
	c.do("closing the new key panel", chromedp.Click(chromedp.ID("new-key-done")))
	if c.js(`String(document.body.innerText.includes(`+strconvQuote(raw)+`))`) != "false" {
		t.Error("the raw key is still on the page after Done")
	}

	// Limits & quotas: every consumer with usage is listed, a page at a
	// time: the API key (by id, with its name), and the consumers of a
	// header-keyed quota (5 an hour per X-User): alice (3 used), bob (2),
	// one whose name is markup, and eleven more, so that at 10 a page
	// the list takes "More". Resetting alice in the page gives her whole
	// quota back on the data plane; bob's is untouched.
	const evilUser = `<img src=x onerror="window.__xss=2">`
	users := map[string]int{"alice": 3, "bob": 2, evilUser: 1}
	for i := range 11 {
		users[fmt.Sprintf("user-%02d", i)] = 1
	}
	for user, n := range users {
		for i := range n {
			if code, left := meteredGet(t, data, user); code != 200 || left != fmt.Sprint(4-i) {
				t.Fatalf("%s's request %d: %d with %s remaining, want 200 and %d", user, i+1, code, left, 4-i)
			}
		}
	}
	c.page("limits", "#quota-table")
	c.do("10 rows a page", chromedp.SetValue(chromedp.ID("quota-page-size"), "10"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("quota-page-size").dispatchEvent(new Event("change"))`))
	c.waitJS("a first page of 10 and a More button", `document.querySelectorAll("#quota-table tbody tr").length === 10 && !document.getElementById("quota-more").hidden`)
	for i := 0; c.js(`String(document.getElementById("quota-more").hidden)`) == "false"; i++ {
		if i == 5 {
			t.Fatal("More is still offered after 5 more pages of 10, for 15 consumers")
		}
		n := c.js(`String(document.querySelectorAll("#quota-table tbody tr").length)`)
		c.do("the next page", chromedp.Click(chromedp.ID("quota-more")))
		c.waitJS("more rows, or no More", `document.querySelectorAll("#quota-table tbody tr").length > `+n+` || document.getElementById("quota-more").hidden`)
	}
	row := func(key string) string {
		return `[...document.querySelectorAll("#quota-table tbody tr")].find(r => r.dataset.key === ` + strconvQuote(key) + `)`
	}
	if got := c.js(`String(document.querySelectorAll("#quota-table tbody tr").length)`); got != "15" {
		t.Errorf("%s consumers listed after the last page, want 15 (the API key and 14 users):\n%s", got, c.js(`document.getElementById("quota-table").innerText`))
	}
	for user, n := range users {
		if got := c.js(`(r => r ? r.cells[0].textContent + " " + r.cells[2].textContent + " " + r.cells[3].textContent : "missing")(` + row(user) + `)`); got != fmt.Sprintf("%s %d 1h0m0s", user, n) {
			t.Errorf("consumer %q: row %q, want its %d used of the hour", user, got, n)
		}
	}
	c.waitJS("the API key's row with its name", `[...document.querySelectorAll("#quota-table tbody tr")].some(r => r.cells[1].textContent === "ui-test" && Number(r.cells[2].textContent) >= 1)`)
	if got := c.js(`String(document.querySelectorAll("main img").length) + " " + String(window.__xss)`); got != "0 undefined" {
		t.Errorf("a consumer key became markup: img elements and window.__xss: %s", got)
	}
	c.shot("limits")
	c.do("resetting alice's quota", chromedp.Evaluate[chromedp.Void](`document.querySelector('[aria-label="Reset the quota of alice"]').click()`))
	c.waitJS("alice's row gone", `!`+row("alice")+` && !!`+row("bob"))
	if code, left := meteredGet(t, data, "alice"); code != 200 || left != "4" {
		t.Errorf("alice after the reset in the console: %d with %s remaining, want 200 and 4 (a whole quota)", code, left)
	}
	if code, left := meteredGet(t, data, "bob"); code != 200 || left != "2" {
		t.Errorf("bob after alice's reset: %d with %s remaining, want 200 and 2 (his 2 used stay)", code, left)
	}
	// The API key's quota resets the same way.
	c.do("resetting the key's quota", chromedp.Evaluate[chromedp.Void](`document.querySelector('[aria-label^="Reset the quota of ui-test ("]').click()`))
	c.waitJS("the key's row gone", `![...document.querySelectorAll("#quota-table tbody tr")].some(r => r.cells[1].textContent === "ui-test")`)
	c.do("refreshing the list", chromedp.Click(chromedp.ID("quota-refresh")))
	c.waitJS("alice listed again, with the one request since her reset", `(r => r && r.cells[2].textContent === "1")(`+row("alice")+`)`)

	// Revoke in the page; the data plane refuses the key.
	c.page("keys", "#keys-table")
	c.do("revoking the key", chromedp.Evaluate[chromedp.Void](`document.querySelector('[aria-label="Revoke key ui-test"]').click()`))
	c.waitJS("the key shown revoked", `[...document.querySelectorAll("#keys-table tr")].some(r => r.cells[0].textContent === "ui-test" && r.innerText.includes("revoked"))`)
	if code := authedGet(t, data+"/keyed/x", "X-API-Key", raw); code != 401 {
		t.Errorf("the key revoked in the console: %d on the data plane, want 401", code)
	}

	// Hostile key name: shown as text, never parsed as HTML.
	const evil = `<img src=x onerror="window.__xss=1">`
	c.do("creating a key with HTML in its name",
		chromedp.SetValue(chromedp.ID("key-name"), evil),
		chromedp.Click(chromedp.ID("key-create")))
	c.waitJS("the HTML-named key listed as text", `[...document.querySelectorAll("#keys-table tr")].some(r => r.cells[0].textContent === `+strconvQuote(evil)+`)`)
	if got := c.js(`String(document.querySelectorAll("main img").length) + " " + String(window.__xss)`); got != "0 undefined" {
		t.Errorf("a key name became markup: img elements and window.__xss: %s", got)
	}
	c.do("closing the new key panel", chromedp.Click(chromedp.ID("new-key-done")))

	// Upstreams: open the dead upstream's breaker with traffic, then reset
	// it in the page.
	for i := 0; i < 3; i++ {
		testutil.Get(t, data+"/down/x")
	}
	if _, body := adminCall(t, "GET", admin+"/admin/circuit-breakers"); !strings.Contains(body, `"state": "open"`) {
		t.Fatalf("the breaker did not open: %s", body)
	}
	c.page("upstreams", `[data-breaker]`)
	c.waitJS("the open breaker with its reset button enabled", `document.querySelector("[data-breaker]") && !document.querySelector("[data-breaker]").disabled`)
	if txt := c.js(`document.querySelector('[data-upstream="dead"]').innerText`); !strings.Contains(txt, "open") {
		t.Errorf("the dead upstream's table does not show the open circuit:\n%s", txt)
	}
	c.shot("upstreams")
	c.do("resetting the breaker", chromedp.Evaluate[chromedp.Void](`document.querySelector("[data-breaker]").click()`))
	c.waitJS("the breaker shown closed", `document.querySelector('[data-upstream="dead"]').innerText.includes("closed")`)
	if _, body := adminCall(t, "GET", admin+"/admin/circuit-breakers"); !strings.Contains(body, `"state": "closed"`) {
		t.Errorf("the breaker is not closed after the console's reset: %s", body)
	}

	// Config: a broken file's reload error shows with file and line; the
	// old config keeps serving.
	c.page("config", "#config-json:not(:empty)")
	if cfgText := c.js(`document.getElementById("config-json").textContent`); strings.Contains(cfgText, "console-pw") || !strings.Contains(cfgText, "[redacted]") {
		t.Error("the config page shows the admin password, or redacts nothing")
	}
	good, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ConfigPath, append(good, "  - { name: broken, match: { prefix: /b/ }, upstream: nowhere }\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	// A login elsewhere in this browser (another tab) replaces the
	// session and its token under the page: the page takes the new token
	// and its next change still goes through.
	if st := c.js(`fetch("/ui/login", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({username: "admin", password: "console-pw"})}).then(r => String(r.status))`); st != "200" {
		t.Fatalf("second login: %s", st)
	}
	c.do("reloading", chromedp.Click(chromedp.ID("reload")))
	c.waitJS("the reload error", `document.getElementById("reload-error") && document.getElementById("reload-error").innerText.includes("sluice.yaml:13")`)
	c.waitJS("the last reload error in the status", `!!document.getElementById("last-reload-error")`)
	if txt := c.js(`document.getElementById("reload-error").innerText`); !strings.Contains(txt, "nowhere") {
		t.Errorf("the reload error does not name the bad upstream:\n%s", txt)
	}
	c.shot("config")
	if err := os.WriteFile(s.ConfigPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	c.do("reloading the good config", chromedp.Click(chromedp.ID("reload")))
	c.waitJS("the reload success", `document.getElementById("reload-result").innerText.includes("Reloaded")`)

	// Query: PromQL through the admin listener's proxy to Prometheus.
	testutil.WaitForWithin(t, time.Minute, "Prometheus to have scraped sluice's requests", func() bool {
		code, body := testutil.Get(t, prom.URL+"/api/v1/query?query=sum(sluice_requests_total)")
		return code == 200 && strings.Contains(body, `"result":[{`)
	})
	c.page("query", "#promql")
	c.do("an instant query",
		chromedp.SetValue(chromedp.ID("promql"), `sum(sluice_requests_total)`),
		chromedp.SetValue(chromedp.ID("prom-range"), "0"),
		chromedp.Click(chromedp.ID("prom-run")))
	c.waitJS("the instant result", `document.getElementById("prom-table") && Number(document.querySelector("#prom-table td.num").textContent) >= 10`)
	c.do("a range query",
		chromedp.SetValue(chromedp.ID("promql"), `sum by (code) (sluice_requests_total)`),
		chromedp.SetValue(chromedp.ID("prom-range"), "300"),
		chromedp.Click(chromedp.ID("prom-run")))
	c.waitJS("the range chart", `document.getElementById("prom-chart") && Number(document.getElementById("prom-chart").dataset.points) >= 1`)
	c.shot("query")
	c.do("a bad query",
		chromedp.SetValue(chromedp.ID("promql"), `sum(`),
		chromedp.Click(chromedp.ID("prom-run")))
	c.waitJS("Prometheus's parse error", `document.getElementById("prom-error") && document.getElementById("prom-error").textContent.includes("parse error")`)

	// Phone width: no page scrolls sideways (wide tables scroll inside
	// their own box).
	c.do("phone viewport", chromedp.EmulateViewport(390, 844))
	for _, p := range []struct{ name, ready string }{
		{"overview", "#stat-rps"}, {"routes", "#routes-table"}, {"upstreams", "[data-upstream]"}, {"keys", "#keys-table"},
		{"limits", "#quota-table"}, {"config", "#config-json:not(:empty)"}, {"query", "#promql"},
	} {
		c.page(p.name, p.ready)
		if w := c.js(`String(document.documentElement.scrollWidth)`); c.js(`String(document.documentElement.scrollWidth <= window.innerWidth)`) != "true" {
			t.Errorf("the %s page scrolls sideways at phone width (%s px wide in 390)", p.name, w)
		}
	}
	c.page("overview", "#stat-rps")
	c.shot("overview-phone")
	c.do("laptop viewport", chromedp.EmulateViewport(1280, 900))

	// Dark mode follows prefers-color-scheme: light text on a dark page.
	c.do("dark mode", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	}))
	lum := `(c => { const [r, g, b] = c.match(/\d+/g).map(Number); return 0.2126 * r + 0.7152 * g + 0.0722 * b; })`
	c.waitJS("the dark palette", lum+`(getComputedStyle(document.body).backgroundColor) < 60 && `+lum+`(getComputedStyle(document.body).color) > 180 && document.getElementById("chart-rps").dataset.scheme === "dark"`)
	c.shot("overview-dark")
	c.do("light mode", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}})
		return err
	}))
	c.waitJS("the light palette", lum+`(getComputedStyle(document.body).backgroundColor) > 200`)

	// A cross-site form POST (another port of 127.0.0.1 is the same site,
	// so the browser sends the session cookie along) carries no CSRF
	// token: 403, and the breaker state does not change.
	for i := 0; i < 3; i++ {
		testutil.Get(t, data+"/down/x")
	}
	other := testutil.ServePage(t)
	c.do("opening another origin", chromedp.Navigate(other+"/"))
	c.do("posting a form to the admin listener", chromedp.Evaluate[chromedp.Void](`(() => {
  const f = document.createElement("form");
  f.method = "POST";
  f.action = `+strconvQuote(admin+"/admin/circuit-breakers/reset")+`;
  document.body.appendChild(f);
  f.submit();
})()`))
	c.waitJS("the admin listener's answer", `location.href.startsWith(`+strconvQuote(admin)+`) && document.body.innerText.includes("error")`)
	if body := c.js(`document.body.innerText`); !strings.Contains(body, "CSRF") {
		t.Errorf("the cross-site POST was answered %q, want the CSRF refusal (403)", body)
	}
	if _, body := adminCall(t, "GET", admin+"/admin/circuit-breakers"); !strings.Contains(body, `"state": "open"`) {
		t.Errorf("the cross-site POST reset the breaker: %s", body)
	}

	// Logout: back to the login form; the cookie no longer reads anything.
	c.do("back to the console", chromedp.Navigate(admin+"/ui/"))
	c.waitJS("the overview", `!!document.getElementById("stat-rps")`)
	c.do("logging out", chromedp.Click(chromedp.ID("logout")))
	c.waitJS("the login form", `!!document.getElementById("login-password")`)
	status := c.js(`fetch("/info", {headers: {"X-Sluice-Console": "1"}}).then(r => String(r.status))`)
	if status != "401" {
		t.Errorf("GET /info after logout: %s, want 401", status)
	}
}

// TestConsoleSessionExpires: with admin.session_ttl 2s, the console
// drops back to the login form by itself once the session has expired,
// and the old cookie is refused.
func TestConsoleSessionExpires(t *testing.T) {
	testutil.Chromium(t)
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	s := testutil.StartSluice(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0, password: console-pw, session_ttl: 2s }
upstreams: { up: { targets: [ { url: "%s" } ] } }
routes: [ { name: public, match: { prefix: / }, upstream: up } ]
`, up.URL))
	c := &console{t: t, ctx: testutil.StartBrowser(t, time.Minute), admin: "http://" + s.AdminAddr, shots: screenshotDir(t)}
	c.login("admin", "console-pw")
	c.waitJS("the overview", `!!document.getElementById("stat-rps")`)
	if c.js(`document.querySelector("nav a[data-page=query]").hidden ? "hidden" : "shown"`) != "hidden" {
		t.Error("the Query page is offered with no admin.prometheus_url")
	}
	// The cookie as Chromium stored it (CDP sees HttpOnly cookies too).
	cookies, err := chromedp.Run(c.ctx, chromedp.Action[[]*network.Cookie](func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
		return r.Cookies, err
	}))
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, ck := range cookies {
		if ck.Name == "sluice_session" {
			session = ck
		}
	}
	if session == nil {
		t.Fatalf("no session cookie in the browser: %+v", cookies)
	}
	if !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || session.Secure || session.Session || session.Path != "/" {
		t.Errorf("session cookie: HttpOnly %v SameSite %q Secure %v (plain HTTP) session-only %v path %q; want HttpOnly, Strict, not Secure, an expiry, /",
			session.HTTPOnly, session.SameSite, session.Secure, session.Session, session.Path)
	}
	c.waitJS("the session-ended message", `!!document.getElementById("login-error") && document.getElementById("login-error").textContent.includes("session has ended")`)
	// The browser dropped its cookie (Max-Age); sluice refuses the old
	// one on its own as well.
	req, _ := http.NewRequest("GET", c.admin+"/info", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("GET /info with the expired session's cookie: %d, want 401", resp.StatusCode)
	}
}
