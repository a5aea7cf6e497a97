package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

// Regression tests for the second review of the response cache: each is
// named for the failure it pins.

// RFC 9111 4.4: a successful unsafe request invalidates the target URI's
// stored responses. On an authorized: true route the caller's entries
// carry its identity hash in the key, so purging the bare key missed
// them: the caller kept reading its own stale profile after a POST.
func TestCacheAuthorizedUnsafeRequestInvalidatesCallersEntry(t *testing.T) {
	var v atomic.Int64
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			v.Add(1)
			w.Write([]byte("ok"))
			return
		}
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte("profile v" + strconv.FormatInt(v.Load(), 10)))
	})
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
auth:
  jwt:
    keys: [ { id: k1, algorithm: HS256, secret: "`+testSecret+`" } ]
    issuer: https://idp.test
    audience: [api]
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: up, auth: jwt, cache: { authorized: true } }
`)
	tok := map[string]string{"Authorization": "Bearer " + signHS(t, map[string]any{})}
	if r := g.do(t, request{path: "/profile", headers: tok}); r.body != "profile v0" {
		t.Fatalf("first: %q", r.body)
	}
	if r := g.do(t, request{path: "/profile", headers: tok}); r.body != "profile v0" || !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("second: %q %s", r.body, r.header.Get("Cache-Status"))
	}
	if r := g.do(t, request{method: "POST", path: "/profile", headers: tok}); r.status != 200 {
		t.Fatalf("post: %d", r.status)
	}
	if r := g.do(t, request{path: "/profile", headers: tok}); r.body != "profile v1" {
		t.Fatalf("after POST the caller's own entry was not invalidated: got %q (%s)", r.body, r.header.Get("Cache-Status"))
	}
}

// The copy of a streamed answer kept for the cache grows with the bytes
// that arrived, not with the declared Content-Length: four misses each
// declaring 64 MiB and sending 256 KiB used to hold 256 MiB of heap at
// once (an upstream, or whoever can make one answer slowly, could
// exhaust the gateway with a few requests).
func TestCacheStreamedCopyGrowsWithBodyNotDeclaredLength(t *testing.T) {
	const sent, declared, n = 256 << 10, 64 << 20, 4
	grew := stalledStreamedMisses(t, "", "{ max_object_bytes: 64MiB }", sent, declared, n)
	// Before the fix: n * 64 MiB. Now about n * 256 KiB (plus noise).
	if grew > 32<<20 {
		t.Fatalf("%d misses with %d KiB of body each grew the heap by %d MiB: the copy is sized by the declared length", n, sent>>10, grew>>20)
	}
}

// stalledStreamedMisses sends n misses on their own connections for a
// cacheable answer that declares declared bytes, sends sent of them and
// stalls, reads the sent bytes on each, and returns how much the heap
// grew meanwhile; the answers are released when the test ends.
func stalledStreamedMisses(t *testing.T, top, routeCache string, sent, declared, n int) (grew int64) {
	block := make(chan struct{})
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(declared))
		w.Write(bytes.Repeat([]byte("x"), sent))
		w.(http.Flusher).Flush()
		<-block
	})
	g := startGateway(t, cacheConfig(up.URL, top, routeCache))
	var conns []net.Conn
	defer func() { // before the cleanups: they wait for these requests
		close(block)
		for _, cn := range conns {
			cn.Close()
		}
	}()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	for i := range n {
		cn, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, cn)
		fmt.Fprintf(cn, "GET /big?i=%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
		// Wait until the sent bytes reached the client: the copy has
		// seen them all.
		br := bufio.NewReader(cn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("head: %v", err)
			}
			if line == "\r\n" {
				break
			}
		}
		if _, err := io.ReadFull(br, make([]byte, sent)); err != nil {
			t.Fatalf("body: %v", err)
		}
	}
	return int64(heap()) - int64(before)
}

// Behind a trusted proxy the key must describe what the upstream is told
// (RFC 9110 5.3: several lines of a field are one list). A request with
// two X-Forwarded-Proto (or -Host) lines reached the upstream with both
// but was keyed by the first, so its answer was served to clients sending
// only that one; and X-Forwarded-Proto: HTTPS was keyed as https while
// the upstream saw HTTPS. Now several lines are not cached, and the
// scheme reaches the upstream as it is keyed, in lower case.
func TestCacheTrustedForwardedLinesKeyedAsForwarded(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "proto=%s host=%s", strings.Join(r.Header.Values("X-Forwarded-Proto"), ","),
			strings.Join(r.Header.Values("X-Forwarded-Host"), ","))
	})
	g := startGateway(t, cacheConfig(up.URL, "server: { trusted_proxies: [127.0.0.0/8] }", "{}"))
	get := func(path string, fields ...string) string {
		t.Helper()
		raw := "GET " + path + " HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n"
		for _, f := range fields {
			raw += f + "\r\n"
		}
		out := testutil.RawExchange(t, g.addr, raw+"\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, tc := range []struct{ path, twice, once, want string }{
		{"/proto", "X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http", "X-Forwarded-Proto: https", "proto=https host=shop.example"},
		{"/host", "X-Forwarded-Host: a.example\r\nX-Forwarded-Host: evil.example", "X-Forwarded-Host: a.example", "proto=http host=a.example"},
	} {
		get(tc.path, tc.twice)
		if got := get(tc.path, tc.once); got != tc.want {
			t.Errorf("%s: a client sending one line got %q, want %q (the answer to two lines was stored for it)", tc.path, got, tc.want)
		}
	}
	if got := get("/case", "X-Forwarded-Proto: HTTPS"); got != "proto=https host=shop.example" {
		t.Errorf("X-Forwarded-Proto: HTTPS reached the upstream as %q, but is keyed as https", got)
	}
}

// RFC 9111 5.2.1.3: min-fresh asks for an answer that stays fresh for at
// least that many seconds more. It was parsed and ignored: a client asking
// for 120 s got an entry fresh for 60 at most.
func TestCacheRequestMinFresh(t *testing.T) {
	up := startCacheUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("v"))
	})
	g := startGateway(t, cacheConfig(up.URL, "", "{}"))
	g.do(t, request{path: "/m"})
	cc := func(v string) map[string]string { return map[string]string{"Cache-Control": v} }
	if r := g.do(t, request{path: "/m", headers: cc("min-fresh=120")}); strings.Contains(r.header.Get("Cache-Status"), "hit") || up.hits.Load() != 2 {
		t.Fatalf("min-fresh=120 on an entry fresh for at most 60 s: %s, %d upstream requests", r.header.Get("Cache-Status"), up.hits.Load())
	}
	if r := g.do(t, request{path: "/m", headers: cc("min-fresh=10")}); !strings.Contains(r.header.Get("Cache-Status"), "hit") {
		t.Fatalf("min-fresh=10 on an entry fresh for ~60 s more: %s, want a hit", r.header.Get("Cache-Status"))
	}
}

// The identity hash of an authorized route's key wrote its parts with a
// separator and no counts, so parts could slide from one list to the
// next: roles [X-Tenant, t1] hashed as no roles and a forwarded
// X-Tenant: t1 claim. Each list is now counted and each part
// length-prefixed: different callers never share an entry.
func TestCacheIdentityHashPartsCannotSlide(t *testing.T) {
	c := &routeCache{}
	key := func(id *auth.Identity) string {
		x := &exchange{exchangeState: exchangeState{ctx: &fasthttp.RequestCtx{}, identity: id}}
		return string(c.appendIdentity(nil, x))
	}
	for _, tc := range []struct {
		name string
		a, b *auth.Identity
	}{
		{"roles vs forwarded claim", &auth.Identity{Subject: "s", Roles: []string{"X-Tenant", "t1"}},
			&auth.Identity{Subject: "s", Headers: [][2][]byte{{[]byte("X-Tenant"), []byte("t1")}}}},
		{"subject vs role", &auth.Identity{Subject: "s\x00admin"}, &auth.Identity{Subject: "s", Roles: []string{"admin"}}},
		{"role split", &auth.Identity{Subject: "s", Roles: []string{"a\x00b"}}, &auth.Identity{Subject: "s", Roles: []string{"a", "b"}}},
	} {
		if ka, kb := key(tc.a), key(tc.b); ka == kb {
			t.Errorf("%s: two callers share the identity key %q", tc.name, ka)
		}
	}
}

// The copies of streamed answers in flight share one budget, the memory
// tier's size (cache.memory_bytes): past it an answer is relayed without
// a copy. Eight stalled answers of 3 MiB each, each within a 4 MiB
// max_object_bytes, used to hold 8 copies at once.
func TestCacheStreamedCopiesShareOneBudget(t *testing.T) {
	const sent, declared, n = 3 << 20, 4 << 20, 8
	grew := stalledStreamedMisses(t, "cache: { memory_bytes: 4MiB }", "{ max_object_bytes: 4MiB }", sent, declared, n)
	// Without the budget: n copies of 4 MiB (the doubling's last step).
	if grew > 16<<20 {
		t.Fatalf("%d stalled answers of %d MiB grew the heap by %d MiB: the copies are not bounded by cache.memory_bytes", n, sent>>20, grew>>20)
	}
}
