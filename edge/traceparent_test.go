package edge

import (
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

func TestValidTraceparent(t *testing.T) {
	cases := map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":        true,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00":        true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future": true, // a later version, 00 layout first
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra":  false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":        false,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":        false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":        false,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":        false, // upper case
		"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01":        false,
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01":        false,
		"":        false,
		"garbage": false,
	}
	for in, want := range cases {
		if got := validTraceparent([]byte(in)); got != want {
			t.Errorf("validTraceparent(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestTraceContextPropagation(t *testing.T) {
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	g := startGateway(t, oneUpstream(up.URL, catchAll))
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	e, _ := g.echo(t, request{path: "/__stub/echo", headers: map[string]string{"traceparent": in, "tracestate": "vendor=x"}})
	got := e.Headers["Traceparent"][0]
	if !validTraceparent([]byte(got)) || got[:36] != in[:36] || got[52:] != in[52:] || got[36:52] == in[36:52] {
		t.Errorf("traceparent upstream %q: want the same trace id and flags, a new parent id", got)
	}
	if e.Headers["Tracestate"][0] != "vendor=x" {
		t.Errorf("tracestate not passed through: %v", e.Headers["Tracestate"])
	}
	// None, or an invalid one: a new trace, and tracestate dropped with it.
	for _, bad := range []string{"", "00-zz-00-01"} {
		hdr := map[string]string{"tracestate": "vendor=x"}
		if bad != "" {
			hdr["traceparent"] = bad
		}
		e, _ := g.echo(t, request{path: "/__stub/echo", headers: hdr})
		got := e.Headers["Traceparent"]
		if len(got) != 1 || !validTraceparent([]byte(got[0])) || !strings.HasSuffix(got[0], "-00") {
			t.Errorf("traceparent %q in: upstream got %v", bad, got)
		}
		if e.Headers["Tracestate"] != nil {
			t.Errorf("tracestate kept with a restarted trace: %v", e.Headers["Tracestate"])
		}
	}
	// Two requests without a traceparent get different traces.
	a, _ := g.echo(t, request{path: "/__stub/echo"})
	b, _ := g.echo(t, request{path: "/__stub/echo"})
	if a.Headers["Traceparent"][0][3:35] == b.Headers["Traceparent"][0][3:35] {
		t.Error("two new traces share a trace id")
	}
}

// Headers sluice sets with SetCanonical skip fasthttp's key normalisation;
// a constant not in canonical form would be stored beside the client's
// copy instead of replacing it.
func TestHeaderConstantsAreCanonical(t *testing.T) {
	for _, k := range [][]byte{headerRequestID, headerTraceparent, headerTracestate, headerXFF, headerXFP, headerXFH, headerVia, headerRetryCount,
		headerXRLLimit, headerXRLRemaining, headerXRLReset, headerRLPolicy, headerRL} {
		var h fasthttp.RequestHeader
		h.SetBytesKV(k, []byte("v")) // normalises the key
		found := false
		for key := range h.All() {
			found = found || string(key) == string(k)
		}
		if !found {
			t.Errorf("%q is not in fasthttp's canonical form", k)
		}
	}
}
