package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicegw/sluice/internal/testutil"
)

// Cache poisoning: a request header the key does not hold must not
// change what other clients get. sluice replaces a client's
// X-Forwarded-Host (the client is not a trusted proxy), so an upstream
// that builds links from it can't be made to store an attacker's host.
func TestCachePoisoningUnkeyedForwardedHost(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("<a href=//" + r.Header.Get("X-Forwarded-Host") + "/login>"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	g.do(t, request{path: "/page", host: "shop.example", headers: map[string]string{"X-Forwarded-Host": "evil.example"}})
	r := g.do(t, request{path: "/page", host: "shop.example"})
	if strings.Contains(r.body, "evil") || r.body != "<a href=//shop.example/login>" {
		t.Fatalf("victim got %q", r.body)
	}
}

// A header that changes the answer is keyed when the route says so
// (key.headers): two values, two entries, neither served for the other.
func TestCacheKeyedHeader(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("variant " + r.Header.Get("X-Tenant")))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{ key: { headers: [X-Tenant] } }"))
	for i, tenant := range []string{"a", "b", "a", "b"} {
		r := g.do(t, request{path: "/t", headers: map[string]string{"x-tenant": tenant}})
		if r.body != "variant "+tenant {
			t.Fatalf("request %d for tenant %s got %q", i, tenant, r.body)
		}
	}
	if n := up.hits.Load(); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2", n)
	}
}

// A route that caches requests with credentials (authorized: true) keys
// them by the caller: one caller never gets another's answer, even when
// the upstream forgets to say private.
func TestCacheAuthorizedKeyedByIdentity(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("account of " + r.Header.Get("Authorization")))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{ authorized: true }"))
	for i, who := range []string{"Bearer alice", "Bearer bob", "Bearer alice", "Bearer bob"} {
		r := g.do(t, request{path: "/me", headers: map[string]string{"Authorization": who}})
		if r.body != "account of "+who {
			t.Fatalf("request %d as %q got %q", i, who, r.body)
		}
	}
	if n := up.hits.Load(); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2 (one per caller)", n)
	}
	// Without credentials: its own entry, not alice's or bob's.
	if r := g.get(t, "/me"); r.body != "account of " {
		t.Fatalf("anonymous got %q", r.body)
	}
}

// An upstream varying on a huge list of fields would turn the cache into
// one entry per request: it is not stored (max_vary).
func TestCacheHugeVaryNotStored(t *testing.T) {
	names := make([]string, 100)
	for i := range names {
		names[i] = "X-F" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", strings.Join(names, ", "))
		w.Write([]byte("v"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	if r := g.get(t, "/v"); r.header.Get("Cache-Status") != "sluice; fwd=miss; detail=vary" {
		t.Fatalf("Cache-Status %q", r.header.Get("Cache-Status"))
	}
}

// Answers above max_object_bytes pass through whole and are not stored;
// streamed answers (above the buffer, or chunked) are never held before
// they are relayed.
func TestCacheLargeAnswersPassThrough(t *testing.T) {
	big := strings.Repeat("x", 300<<10)
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/huge" {
			for range 40 { // 12 MiB, streamed
				w.Write([]byte(big))
			}
			return
		}
		w.Header().Set("Content-Length", "307200")
		w.Write([]byte(big))
	})
	g := startGateway(t, cacheConfig(up.URL, "server: { buffer_response_bytes: 1MiB }", "{ max_object_bytes: 100KiB }"))
	for range 2 {
		r := g.get(t, "/big")
		if len(r.body) != len(big) || r.header.Get("Cache-Status") != "sluice; fwd=miss; detail=too-large" {
			t.Fatalf("/big: %d bytes, %q", len(r.body), r.header.Get("Cache-Status"))
		}
		r = g.get(t, "/huge")
		if len(r.body) != 40*len(big) || r.header.Get("Cache-Status") != "sluice; fwd=miss; detail=streamed" {
			t.Fatalf("/huge: %d bytes, %q", len(r.body), r.header.Get("Cache-Status"))
		}
	}
	if n := up.hits.Load(); n != 4 {
		t.Fatalf("upstream saw %d requests, want 4 (nothing stored)", n)
	}
}

// An upstream whose Content-Length promises more than it sends (then
// hangs up): the client gets an error, and the short body is never
// stored for the next client.
func TestCacheLyingContentLengthNotStored(t *testing.T) {
	ln := testutil.Listen(t)
	var reqs atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				req.Body.Close()
				reqs.Add(1)
				c.Write([]byte("HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 100\r\n\r\nshort"))
			}()
		}
	}()
	g := startGateway(t, cacheConfig("http://"+ln.Addr().String(), "", "{}"))
	for i := range 2 {
		status, body, whole := rawGet(t, g.addr, "/lie")
		if status == 200 && body == "short" && whole {
			t.Fatalf("request %d: a truncated answer was served as complete", i)
		}
	}
	if n := reqs.Load(); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2 (the short answer not stored)", n)
	}
}

// rawGet sends one GET on a new connection and reads the status line and
// whatever body arrives before the connection ends; whole: the body ended
// where its framing said.
func rawGet(t *testing.T, addr, path string) (status int, body string, whole bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", false
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return resp.StatusCode, sb.String(), err == io.EOF
		}
	}
}

// A streamed answer whose Content-Length fits max_object_bytes is copied
// as it is relayed and stored once all of it has gone by; one the
// upstream breaks off midway is never stored (the next client does not
// get a truncated body). A chunked answer is not stored: its end can't be
// told from the upstream hanging up between chunks.
func TestCacheStreamedAnswers(t *testing.T) {
	body := strings.Repeat("s", 200<<10) // above the 64 KiB buffer below, within max_object_bytes
	ln := testutil.Listen(t)
	var reqs atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					reqs.Add(1)
					switch req.URL.Path {
					case "/whole":
						c.Write([]byte("HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 204800\r\n\r\n" + body))
					case "/broken":
						c.Write([]byte("HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 204800\r\n\r\n" + body[:100<<10]))
						return // hangs up halfway
					case "/chunked":
						c.Write([]byte("HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
					}
				}
			}()
		}
	}()
	g := startGateway(t, cacheConfig("http://"+ln.Addr().String(), "server: { buffer_response_bytes: 64KiB }", "{}"))
	if r := g.get(t, "/whole"); r.body != body || r.header.Get("Cache-Status") != "sluice; fwd=miss; detail=stored-when-complete" {
		t.Fatalf("first: %d bytes, %q", len(r.body), r.header.Get("Cache-Status"))
	}
	testutil.WaitFor(t, "the streamed answer to be stored", func() bool {
		_, ok := g.res.cacheMem.Get(t.Context(), primaryKey("GET "+g.addr+"/whole", "all"))
		return ok
	})
	if r := g.get(t, "/whole"); r.body != body || !strings.HasPrefix(r.header.Get("Cache-Status"), "sluice; hit") {
		t.Fatalf("second: %d bytes, %q", len(r.body), r.header.Get("Cache-Status"))
	}
	for i := range 2 {
		if status, _, whole := rawGet(t, g.addr, "/broken"); status == 200 && whole {
			t.Fatalf("request %d: the broken answer was served as if whole", i)
		}
	}
	for range 2 {
		if r := g.get(t, "/chunked"); r.body != "hello" || r.header.Get("Cache-Status") != "sluice; fwd=miss; detail=streamed" {
			t.Fatalf("chunked: %q %q", r.body, r.header.Get("Cache-Status"))
		}
	}
	if n := reqs.Load(); n != 5 {
		t.Fatalf("upstream saw %d requests, want 5 (/whole once, /broken and /chunked twice)", n)
	}
}
