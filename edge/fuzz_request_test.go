package edge

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/edge/pathnorm"
	"github.com/sluicegw/sluice/internal/testutil"
)

// Limits of the fuzzed gateway. The client half-closes after its bytes,
// so the gateway reads EOF next and no exchange should come near them;
// fuzzExchangeBound is what the test allows before calling it a hang.
const (
	fuzzReadTimeout   = time.Second
	fuzzWriteTimeout  = time.Second
	fuzzRouteTimeout  = time.Second
	fuzzExchangeBound = fuzzReadTimeout + fuzzWriteTimeout + fuzzRouteTimeout + 2*time.Second
)

func fuzzConfig(upURL string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
server: { read_timeout: %s, write_timeout: %s, idle_timeout: %s, max_header_bytes: 4KiB, max_body_bytes: 64KiB, buffer_body_bytes: 16KiB }
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
  - { name: all, match: { prefix: / }, upstream: up, timeout: %s }
`, fuzzReadTimeout, fuzzWriteTimeout, fuzzReadTimeout, upURL, fuzzRouteTimeout)
}

// FuzzRequestBytes writes arbitrary bytes to a real gateway in front of a
// recording upstream (one of each per fuzz worker, reused by every input;
// a new client connection per input) and checks what crossed it:
//   - no panic (a panic in the server takes the worker down with the input);
//   - the exchange ends within fuzzExchangeBound;
//   - every byte the upstream read is a well-framed request whose body is
//     as long as its framing says, with nothing left over, no framing a
//     proxy must not send (CL and TE, two CLs, obs-fold), and no
//     connection left holding part of a request; the only incomplete
//     request allowed is a streamed body cut short with its connection;
//   - the upstream read exactly one request per answer the client got from
//     it (X-Upstream-Seq), in order;
//   - differential: where net/http reads the input as requests too, the
//     request forwarded as the client's n-th has net/http's method, target
//     and body for the n-th.
//
// Seeds: every conformance case, and some pipelines.
func FuzzRequestBytes(f *testing.F) {
	for _, c := range conformanceCases() {
		f.Add([]byte(c.raw))
	}
	for _, raw := range []string{
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /%2e%2e/b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(raw))
	}
	up := testutil.StartRawUpstream(f, nil)
	g := startGateway(f, fuzzConfig(up.URL))
	f.Fuzz(func(t *testing.T, raw []byte) {
		before, faultsBefore := up.Count(), len(up.Faults())
		res := testutil.RawDo(t, g.addr, raw, testutil.RawOptions{HalfClose: true, Timeout: fuzzExchangeBound})
		if res.TimedOut {
			t.Fatalf("the exchange did not end within %v; got %s", fuzzExchangeBound, res.Summary())
		}
		partial, err := up.Quiesce(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		reqs, faults := up.Requests()[before:], up.Faults()[faultsBefore:]
		var problems []string
		fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		for _, f := range faults {
			if knownFault(f) == "" {
				fail("upstream fault: %s", f)
			}
		}
		for _, p := range partial {
			fail("after the exchange, upstream %s", p)
		}
		complete := 0
		for _, r := range reqs {
			switch {
			case r.Complete:
				complete++
			case r.Problem == "":
				fail("upstream request #%d: body still arriving after the exchange", r.Seq)
			case strings.HasPrefix(r.Problem, "body: ") && strings.HasSuffix(r.Problem, "EOF"):
				// A streamed body cut short, and its connection closed.
			default:
				fail("upstream request #%d: %s", r.Seq, r.Problem)
			}
		}

		// Which of the client's requests the upstream answered.
		ref := referenceRequests(raw)
		methods := make([]string, len(ref))
		for i, r := range ref {
			methods[i] = r.method
		}
		resps, _, perr := testutil.ParseResponsesFor(res.Data, methods)
		answered, final := 0, 0
		for _, resp := range resps {
			if resp.StatusCode < 200 {
				continue
			}
			n := final
			final++
			seqText := resp.Header.Get(testutil.UpstreamSeqHeader)
			if seqText == "" {
				continue
			}
			answered++
			seq, err := strconv.Atoi(seqText)
			if err != nil || seq <= before || seq > before+len(reqs) {
				fail("answer %d carries upstream seq %q, not one of this input's requests", n, seqText)
				continue
			}
			got := reqs[seq-before-1]
			if n < len(ref) {
				want := ref[n]
				if known := knownDifference(want, got); known != "" {
					continue
				}
				wantTarget, ok := normalisedTarget(want.target)
				if strings.HasPrefix(want.target, "/") && !ok {
					fail("request %d: %q went upstream as %q, but its path can't be normalised", n, want.target, got.Target)
					continue
				}
				if got.Method != want.method || string(got.Body) != string(want.body) ||
					strings.HasPrefix(want.target, "/") && got.Target != wantTarget {
					fail("request %d: net/http reads %s %q with a %d-byte body %q, the upstream got %s %q with a %d-byte body %q",
						n, want.method, want.target, len(want.body), clipRaw(string(want.body)), got.Method, got.Target, len(got.Body), clipRaw(string(got.Body)))
				}
			}
		}
		if perr == nil && answered != complete {
			fail("the upstream read %d complete requests, the client got %d answers from it", complete, answered)
		}
		if perr != nil && bytes.Count(res.Data, []byte("\r\n"+testutil.UpstreamSeqHeader+": ")) != complete {
			fail("the upstream read %d complete requests, and the answers (not all parsed: %v) name another number", complete, perr)
		}
		if len(problems) > 0 {
			t.Fatalf("input %q\n%s\nclient got %s", clipRaw(string(raw)), strings.Join(problems, "\n"), res.Summary())
		}
	})
}

// normalisedTarget is what sluice forwards for an origin-form target: the
// path normalised with the default server.path settings (what the fuzz
// gateway uses), the query as sent. ok is false when the path must be
// refused.
func normalisedTarget(target string) (string, bool) {
	path, query, hasQuery := strings.Cut(target, "?")
	out, _, err := pathnorm.Normalize(nil, []byte(path), pathnorm.Options{})
	if err != nil {
		return "", false
	}
	if hasQuery {
		return string(out) + "?" + query, true
	}
	return string(out), true
}

// fuzzKnownFailing: what the fuzz finds that a conformance case in
// knownFailing already tracks: a difference from net/http's reading of the
// input (diff), or an upstream fault (fault). They are not reported again
// while that case is listed; once it is fixed, they are.
var fuzzKnownFailing = []struct {
	conformanceCase string
	diff            func(want referenceRequest, got testutil.UpstreamRequest) bool
	fault           func(fault string) bool
}{
	{conformanceCase: "fragment in the target", diff: func(want referenceRequest, got testutil.UpstreamRequest) bool {
		before, _, found := strings.Cut(want.target, "#")
		return found && strings.HasPrefix(got.Target, before) && got.Method == want.method
	}},
	{conformanceCase: "invalid percent-encoding in the path", fault: func(f string) bool {
		return strings.Contains(f, "invalid URL escape")
	}},
}

func knownDifference(want referenceRequest, got testutil.UpstreamRequest) string {
	for _, k := range fuzzKnownFailing {
		if _, listed := knownFailing[k.conformanceCase]; listed && k.diff != nil && k.diff(want, got) {
			return k.conformanceCase
		}
	}
	return ""
}

func knownFault(fault string) string {
	for _, k := range fuzzKnownFailing {
		if _, listed := knownFailing[k.conformanceCase]; listed && k.fault != nil && k.fault(fault) {
			return k.conformanceCase
		}
	}
	return ""
}

type referenceRequest struct {
	method, target string
	body           []byte
}

// referenceRequests is how net/http reads raw as a pipeline of requests,
// up to the first it refuses.
func referenceRequests(raw []byte) []referenceRequest {
	br := bufio.NewReader(bytes.NewReader(raw))
	var out []referenceRequest
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return out
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return out
		}
		out = append(out, referenceRequest{req.Method, req.RequestURI, body})
		if req.Close {
			return out
		}
	}
}
