package cache

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestAppendKey(t *testing.T) {
	cases := []struct {
		name          string
		rules         KeyRules
		host, path, q string
		tls           bool
		headers       map[string]string
		want          string
		ok            bool
	}{
		{"query sorted", KeyRules{}, "a.example", "/p", "b=2&a=1&&c", false, nil, "GET a.example/p?a=1&b=2&c", true},
		{"same name: order kept", KeyRules{}, "a.example", "/p", "id=2&b=1&id=1", false, nil, "GET a.example/p?b=1&id=2&id=1", true},
		{"names compare decoded", KeyRules{}, "a.example", "/p", "id=2&i%64=1&a=0", false, nil, "GET a.example/p?a=0&id=2&i%64=1", true},
		{"allow matches decoded names", KeyRules{Query: QueryAllow, QueryList: [][]byte{[]byte("id")}}, "a.example", "/p", "i%64=evil&id=1&x=2", false, nil, "GET a.example/p?i%64=evil&id=1", true},
		{"deny matches decoded names", KeyRules{Query: QueryDeny, QueryList: [][]byte{[]byte("utm source")}}, "a.example", "/p", "utm+source=x&utm%20source=y&id=1", false, nil, "GET a.example/p?id=1", true},
		{"allow: malformed name not keyed", KeyRules{Query: QueryAllow, QueryList: [][]byte{[]byte("id")}}, "a.example", "/p", "i%6=1&id=1", false, nil, "", false},
		{"deny: semicolon not keyed", KeyRules{Query: QueryDeny, QueryList: [][]byte{[]byte("utm_source")}}, "a.example", "/p", "utm_source=x;id=2", false, nil, "", false},
		{"query none", KeyRules{Query: QueryNone}, "a.example", "/p", "b=2", false, nil, "GET a.example/p", true},
		{"query allow", KeyRules{Query: QueryAllow, QueryList: [][]byte{[]byte("id")}}, "a.example", "/p", "utm=x&id=3", false, nil, "GET a.example/p?id=3", true},
		{"query deny", KeyRules{Query: QueryDeny, QueryList: [][]byte{[]byte("utm")}}, "a.example", "/p", "utm=x&id=3", false, nil, "GET a.example/p?id=3", true},
		{"host case, default port, dot", KeyRules{}, "A.Example.:80", "/", "", false, nil, "GET a.example/", true},
		{"https default port", KeyRules{}, "a.example:443", "/", "", true, nil, "GET a.example/", true},
		{"other port kept", KeyRules{}, "a.example:8080", "/", "", false, nil, "GET a.example:8080/", true},
		{"host can't forge a path", KeyRules{}, "a.example/evil?x", "/", "", false, nil, "GET a.example_evil_x/", true},
		{"keyed header", KeyRules{Headers: [][]byte{[]byte("x-tenant")}}, "h", "/", "", false, map[string]string{"X-TENANT": " acme "}, "GET h/\x00h:x-tenant=acme", true},
		{"NUL in query can't forge a part", KeyRules{}, "h", "/", "a=\x00h:x", false, nil, "GET h/?a= h:x", true},
		{"too many parameters", KeyRules{}, "h", "/", strings.Repeat("a=1&", MaxQueryParams+1), false, nil, "", false},
	}
	for _, c := range cases {
		var h fasthttp.RequestHeader
		h.DisableNormalizing()
		for k, v := range c.headers {
			h.Set(k, v)
		}
		got, ok := c.rules.AppendKey(nil, []byte("GET"), []byte(c.host), []byte(c.path), []byte(c.q), c.tls, &h)
		if ok != c.ok || (ok && string(got) != c.want) {
			t.Errorf("%s: %q %v, want %q %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// RFC 9111 4.1: the secondary key normalises whitespace, folds case only
// for fields whose values are case-insensitive.
func TestAppendVary(t *testing.T) {
	key := func(hs ...string) string {
		var h fasthttp.RequestHeader
		h.DisableNormalizing()
		for i := 0; i < len(hs); i += 2 {
			h.Add(hs[i], hs[i+1])
		}
		return string(AppendVary(nil, []string{"accept-encoding", "cookie"}, &h))
	}
	if a, b := key("Accept-Encoding", "gzip,  BR"), key("accept-encoding", "gzip", "accept-encoding", "br"); a != b {
		t.Errorf("equivalent Accept-Encoding gave %q and %q", a, b)
	}
	if a, b := key("Cookie", "s=ABC"), key("Cookie", "s=abc"); a == b {
		t.Error("cookies differing in case share a variant (one caller's answer to another)")
	}
}

func BenchmarkAppendKey(b *testing.B) {
	var h fasthttp.RequestHeader
	h.Set("X-Tenant", "acme")
	r := KeyRules{Headers: [][]byte{[]byte("x-tenant")}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = r.AppendKey(buf[:0], []byte("GET"), []byte("shop.example"), []byte("/api/items/42"), []byte("b=2&a=1&c=3"), false, &h)
	}
}

// FuzzAppendKey: any host, path and query key without panic, and the URL
// part never holds a NUL (which separates the key's parts).
func FuzzAppendKey(f *testing.F) {
	f.Add([]byte("Example.com:80"), []byte("/p"), []byte("b=1&a=2"))
	f.Add([]byte("[::1]:443"), []byte("/"), []byte("&&="))
	f.Add([]byte("h"), []byte("/"), []byte("i%64=1&id=2&a+b=%&x;id=1"))
	f.Fuzz(func(t *testing.T, host, path, q []byte) {
		var h fasthttp.RequestHeader
		list := [][]byte{[]byte("id"), []byte("a b")}
		for _, r := range []KeyRules{{}, {Query: QueryAllow, QueryList: list}, {Query: QueryDeny, QueryList: list}} {
			k, ok := r.AppendKey(nil, []byte("GET"), host, path, q, false, &h)
			if ok && strings.Contains(string(k), "\x00") {
				t.Fatalf("key %q holds a NUL", k)
			}
		}
	})
}
