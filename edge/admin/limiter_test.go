package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func fromIP(ip string) reqOpt {
	return func(r *fasthttp.Request) { r.Header.Set("X-Test-Remote", ip) }
}

// remoteFromHeader sets the connection's address from X-Test-Remote, so
// a test can speak for many clients through one handler.
func remoteFromHeader(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if ip := ctx.Request.Header.Peek("X-Test-Remote"); len(ip) > 0 {
			ctx.SetRemoteAddr(&net.TCPAddr{IP: net.ParseIP(string(ip)), Port: 40000})
		}
		h(ctx)
	}
}

func basicAuth(u, p string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
}

// Every credential check shares one limiter: after freeFailures wrong
// guesses by any means, the client is locked out of all of them, and the
// right credential is refused with 429 and Retry-After (RFC 6585 section
// 4) while it waits; other clients are not.
func TestCredentialFailuresLockOutEveryCheck(t *testing.T) {
	type try func(c *consoleClient, right bool, opts ...reqOpt) int
	basic := func(c *consoleClient, right bool, opts ...reqOpt) int {
		pass := "guess"
		if right {
			pass = "s3cret"
		}
		resp, _ := c.do("GET", "/admin/config", "", append(opts, withHeader("Authorization", basicAuth("admin", pass)))...)
		return resp.StatusCode()
	}
	bearer := func(c *consoleClient, right bool, opts ...reqOpt) int {
		tok := "guess"
		if right {
			tok = "tok3n"
		}
		resp, _ := c.do("GET", "/admin/config", "", append(opts, withHeader("Authorization", "Bearer "+tok))...)
		return resp.StatusCode()
	}
	login := func(c *consoleClient, right bool, opts ...reqOpt) int {
		body := `{"username":"admin","password":"guess"}`
		if right {
			body = `{"username":"admin","password":"s3cret"}`
		}
		resp, _ := c.do("POST", "/ui/login", body, opts...)
		return resp.StatusCode()
	}
	kinds := map[string]try{"basic": basic, "bearer": bearer, "login": login}
	for guessName, guess := range kinds {
		for rightName, right := range kinds {
			t.Run(guessName+"-then-"+rightName, func(t *testing.T) {
				now := time.Unix(1e9, 0)
				a, h := newTestAuth(t, &now)
				a.hasToken, a.token = true, sha256Of("tok3n")
				c := &consoleClient{h: remoteFromHeader(h)}
				for i := 0; i <= freeFailures; i++ {
					if code := guess(c, false, fromIP("192.0.2.7")); code != 401 {
						t.Fatalf("wrong guess %d: %d, want 401", i+1, code)
					}
				}
				if code := right(c, true, fromIP("192.0.2.7")); code != 429 {
					t.Fatalf("right credential while locked out: %d, want 429", code)
				}
				if code := right(c, true, fromIP("192.0.2.8")); code != 200 {
					t.Fatalf("another client: %d, want 200", code)
				}
				now = now.Add(time.Second)
				if code := right(c, true, fromIP("192.0.2.7")); code != 200 {
					t.Fatalf("right credential after the lockout: %d, want 200", code)
				}
			})
		}
	}
}

// The 429 is JSON with a Retry-After in seconds, doubling per failure.
func TestCredentialLockoutAnswer(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: h}
	for i := 0; i < freeFailures+2; i++ {
		c.do("GET", "/admin/config", "", withHeader("Authorization", basicAuth("admin", "x")))
		now = now.Add(time.Second)
	}
	resp, m := c.do("GET", "/admin/config", "", withHeader("Authorization", basicAuth("admin", "s3cret")))
	if resp.StatusCode() != 429 || string(resp.Header.Peek("Retry-After")) != "1" || m["error"] == nil {
		t.Fatalf("%d Retry-After %q body %v; want 429, 1 (2 s lock, 1 s gone), a JSON error", resp.StatusCode(), resp.Header.Peek("Retry-After"), m)
	}
}

// Guesses spread over many addresses (each under its own free count) run
// into the global budget; IPv6 addresses in one /64 count as one client.
func TestCredentialGlobalBudgetAndIPv6(t *testing.T) {
	now := time.Unix(1e9, 0)
	_, h := newTestAuth(t, &now)
	c := &consoleClient{h: remoteFromHeader(h)}
	// A scraper whose credentials were right just before the guessing.
	if resp, _ := c.do("GET", "/info", "", fromIP("192.0.2.9"), withHeader("Authorization", basicAuth("admin", "s3cret"))); resp.StatusCode() != 200 {
		t.Fatalf("scraper before the guessing: %d", resp.StatusCode())
	}
	for i := 0; i < globalFailures; i++ {
		ip := "10.0." + strconv.Itoa(i/200) + "." + strconv.Itoa(i%200)
		if resp, _ := c.do("GET", "/info", "", fromIP(ip), withHeader("Authorization", basicAuth("admin", "x"))); resp.StatusCode() != 401 {
			t.Fatalf("guess %d from %s: %d", i, ip, resp.StatusCode())
		}
	}
	resp, _ := c.do("GET", "/info", "", fromIP("203.0.113.1"), withHeader("Authorization", basicAuth("admin", "x")))
	if resp.StatusCode() != 429 || len(resp.Header.Peek("Retry-After")) == 0 {
		t.Fatalf("past the global budget: %d, want 429 with Retry-After", resp.StatusCode())
	}
	// The guessing doesn't lock out a client known to be right (nor blind
	// the monitoring that scrapes /metrics).
	if resp, _ := c.do("GET", "/info", "", fromIP("192.0.2.9"), withHeader("Authorization", basicAuth("admin", "s3cret"))); resp.StatusCode() != 200 {
		t.Fatalf("a client right just before, past the global budget: %d, want 200", resp.StatusCode())
	}
	now = now.Add(globalWindow)
	if resp, _ := c.do("GET", "/info", "", fromIP("203.0.113.1"), withHeader("Authorization", basicAuth("admin", "s3cret"))); resp.StatusCode() != 200 {
		t.Fatalf("after the window: %d", resp.StatusCode())
	}
	for i := 0; i <= freeFailures; i++ {
		c.do("GET", "/info", "", fromIP("2001:db8::"+strconv.Itoa(i+1)), withHeader("Authorization", basicAuth("admin", "x")))
	}
	if resp, _ := c.do("GET", "/info", "", fromIP("2001:db8::ffff"), withHeader("Authorization", basicAuth("admin", "s3cret"))); resp.StatusCode() != 429 {
		t.Fatalf("same /64 after %d failures: %d, want 429", freeFailures+1, resp.StatusCode())
	}
}

// Attempts are counted when they start (review L1): of many guesses in
// flight at once, no more than freeFailures get checked.
func TestCredentialAttemptsCountedWhenBegun(t *testing.T) {
	l := newFailureLimiter()
	allowed := 0
	for i := 0; i < 200; i++ {
		if l.begin("192.0.2.1") == 0 {
			allowed++
		}
	}
	if allowed != freeFailures {
		t.Fatalf("%d attempts in flight allowed, want %d", allowed, freeFailures)
	}
}

func sha256Of(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// A full table makes room for a new client by forgetting the
// longest-idle record that holds no lockout (review M2: it used to drop
// arbitrary records, a lockout included, so a flood could wipe one).
func TestCredentialLockoutSurvivesAFlood(t *testing.T) {
	now := time.Unix(1e9, 0)
	l := newFailureLimiter()
	l.now = func() time.Time { return now }
	for i := 0; i <= freeFailures; i++ {
		l.begin("192.0.2.66")
		l.end("192.0.2.66", false)
	}
	l.m["192.0.2.66"].last = now.Add(-10 * time.Minute) // the longest idle, but locked
	l.m["192.0.2.66"].lockedUntil = now.Add(time.Minute)
	l.m["idle"] = &clientFailures{n: 1, last: now.Add(-5 * time.Minute)}
	for i := 0; len(l.m) < maxClients; i++ {
		l.m["flood-"+strconv.Itoa(i)] = &clientFailures{n: 1, last: now.Add(-time.Minute)}
	}
	if l.begin("198.51.100.1") != 0 {
		t.Fatal("new client refused")
	}
	l.end("198.51.100.1", false)
	if l.m["idle"] != nil {
		t.Error("the longest-idle unlocked record was kept")
	}
	if d := l.begin("192.0.2.66"); d <= 0 {
		t.Error("the new client wiped the lockout")
	}
	if len(l.m) > maxClients {
		t.Errorf("%d records kept, want at most %d", len(l.m), maxClients)
	}
}
