package edge

import (
	"bufio"
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
// answers above the buffer stream through, never held to be stored.
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
		status, body := rawGet(t, g.addr, "/lie")
		if status == 200 && body == "short" {
			t.Fatalf("request %d: a truncated answer was served as complete", i)
		}
	}
	if n := reqs.Load(); n != 2 {
		t.Fatalf("upstream saw %d requests, want 2 (the short answer not stored)", n)
	}
}

// rawGet sends one GET on a new connection and reads the status line and
// whatever body arrives before the connection ends.
func rawGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, sb.String()
}
