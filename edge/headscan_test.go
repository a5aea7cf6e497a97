package edge

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// The headers sluice reads, replaces or removes on every request are
// looked up only when the raw header block has them (scanHead): whatever
// case a client writes them in, they must still be found, and their
// absence must still give the upstream sluice's own values. RFC 9110
// 5.1: field names are case-insensitive.
func TestHeaderScanFindsEveryCase(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, "  - { name: all, match: { prefix: / }, upstream: up, rewrite: { replace_path: /__stub/echo } }\n"))
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	cases := []struct {
		name    string
		headers string
		check   func(t *testing.T, h map[string][]string)
	}{
		{"none of them", "", func(t *testing.T, h map[string][]string) {
			if id := h["X-Request-Id"]; len(id) != 1 || len(id[0]) != requestIDLen {
				t.Errorf("X-Request-Id %v, want one generated id", id)
			}
			if v := h["Via"]; len(v) != 1 || v[0] != "1.1 sluice" {
				t.Errorf("Via %v", v)
			}
			if p := h["Traceparent"]; len(p) != 1 || !validTraceparent([]byte(p[0])) {
				t.Errorf("Traceparent %v", p)
			}
		}},
		{"lower case", "x-request-id: client-id-1\r\nvia: 1.0 front\r\ntraceparent: " + tp + "\r\ntracestate: v=1\r\nx-api-key-id: forged\r\n",
			func(t *testing.T, h map[string][]string) {
				if id := h["X-Request-Id"]; len(id) != 1 || id[0] != "client-id-1" {
					t.Errorf("X-Request-Id %v, want the client's", id)
				}
				if v := h["Via"]; len(v) != 1 || v[0] != "1.0 front, 1.1 sluice" {
					t.Errorf("Via %v, want the earlier hop kept", v)
				}
				if p := h["Traceparent"]; len(p) != 1 || p[0][:36] != tp[:36] {
					t.Errorf("Traceparent %v, want trace %s continued", p, tp[3:35])
				}
				if s := h["Tracestate"]; len(s) != 1 || s[0] != "v=1" {
					t.Errorf("Tracestate %v, want it passed on", s)
				}
				if k := h["X-Api-Key-Id"]; k != nil {
					t.Errorf("identity header forged by the client reached the upstream: %v", k)
				}
			}},
		{"odd case", "X-REQUEST-ID: client-id-2\r\nVIA: 1.0 front\r\nTraceParent: " + tp + "\r\nX-Api-KEY-Id: forged\r\n",
			func(t *testing.T, h map[string][]string) {
				if id := h["X-Request-Id"]; len(id) != 1 || id[0] != "client-id-2" {
					t.Errorf("X-Request-Id %v, want the client's", id)
				}
				if v := h["Via"]; len(v) != 1 || v[0] != "1.0 front, 1.1 sluice" {
					t.Errorf("Via %v", v)
				}
				if p := h["Traceparent"]; len(p) != 1 || p[0][:36] != tp[:36] {
					t.Errorf("Traceparent %v", p)
				}
				if k := h["X-Api-Key-Id"]; k != nil {
					t.Errorf("identity header forged by the client reached the upstream: %v", k)
				}
			}},
		{"console cookie on the second of two Cookie lines, odd case", "COOKIE: a=1\r\ncookie: sluice_session=x; b=2\r\n",
			func(t *testing.T, h map[string][]string) {
				if c := strings.Join(h["Cookie"], "; "); strings.Contains(c, "sluice_session") || !strings.Contains(c, "a=1") || !strings.Contains(c, "b=2") {
					t.Errorf("Cookie %v, want a=1 and b=2 without sluice_session", h["Cookie"])
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := testutil.RawExchange(t, g.addr, "GET /x HTTP/1.1\r\nHost: h\r\n"+c.headers+"Connection: close\r\n\r\n")
			_, body, ok := strings.Cut(raw, "\r\n\r\n")
			if !strings.HasPrefix(raw, "HTTP/1.1 200") || !ok {
				t.Fatalf("answer:\n%s", raw)
			}
			var e stub.Echo
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("%v:\n%s", err, raw)
			}
			c.check(t, e.Headers)
		})
	}
}
