package edge

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

// Request-side conformance (issue #13, section 6, phase 1): raw request
// bytes written to a real gateway in front of an upstream that records
// exactly what reached it. Each case names the rule it checks, what the
// client must get back, and what may reach the upstream.
//
// Cases that fail today are listed in knownFailing with the reason; they
// still run, and are skipped with what sluice did instead. A listed case
// that passes fails the suite, so the entry is removed when its fix lands.

// The items of issue #13 section 6 a case belongs to.
const (
	itemBaseline    = "baseline (the setup works)"
	itemFraming     = "13.6 framing sluice already refuses"
	itemFold        = "13.6 obsolete line folding"
	itemVersion     = "13.6 HTTP version"
	itemMethod      = "13.6 method token"
	itemHost        = "13.6 Host"
	itemAbsolute    = "13.6 absolute-form target"
	itemForwarded   = "13.6 Forwarded / X-Real-IP from untrusted peers"
	itemLinger      = "13.6 request timeout and lingering close"
	itemTransparent = "13.6 transparency"
	itemTraversal   = "13.6 path traversal encodings"
)

// knownFailing: case name -> what sluice does instead today. The edge
// refactor empties it as fixes land (issue #13 section 6, phase 2).
var knownFailing = map[string]string{
	"bare LF line ends in the head, answered at once": "a head ending in LF LF is not seen as ended: no answer until read_timeout, then 400",
	"chunk extension with NUL":                        "chunk extensions are skipped unchecked: 200, the body forwarded re-chunked",
	"chunk extension 8KiB long":                       "no limit on chunk extensions: 200, the body forwarded re-chunked",
	"bare LF after chunk data":                        "a bare LF after chunk data is accepted: 200, upstream gets \"hello\"",
}

// upstreamRule is what may reach the upstream for a case.
type upstreamRule uint8

const (
	// upNone: nothing reaches the upstream (not even a partial head).
	upNone upstreamRule = iota
	// upOne: exactly one complete, well-framed request, which check accepts.
	upOne
	// upMaybeOne: nothing, or upOne (the RFC lets a server refuse or
	// accept; either way what arrives must be right).
	upMaybeOne
	// upNoComplete: no complete request; a head whose streamed body was
	// cut short is allowed (a streamed body can't be recalled), since the
	// upstream connection then ends with it.
	upNoComplete
	// upNeverProtected: whatever arrives, no decoding of its target
	// reaches a protected prefix (traversal cases).
	upNeverProtected
)

type confSetup uint8

const (
	setupPlain     confSetup = iota // host route for a.example, /secret behind a JWT, default route for the rest
	setupTraversal                  // public /api/ beside auth-protected /__stub/ and /admin/
)

type confCase struct {
	name  string
	item  string
	rfc   string
	setup confSetup
	raw   string
	// status: the acceptable final statuses; 0 means the connection closes
	// without an answer.
	status []int
	// close: the connection must be closed (not reset) after the answer.
	close bool
	up    upstreamRule
	// check inspects the request the upstream got (upOne, upMaybeOne) and
	// returns what is wrong with it.
	check func(r *testutil.UpstreamRequest) string
	opts  testutil.RawOptions
}

// Plain setup limits, small so that cases stay small.
const (
	confReadTimeout    = time.Second
	confMaxHeaderBytes = 4 << 10
	confMaxBodyBytes   = 64 << 10
)

const confSecret = "conformance-secret-0123456789abcdef"

func plainConfig(upURL, keyFile string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
server: { read_timeout: %s, max_header_bytes: %d, max_body_bytes: %d, buffer_body_bytes: 16KiB }
auth:
  jwt: { keys: [ { id: k1, algorithm: HS256, secret: "%s" } ] }
  api_keys: { file: "%s" }
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
  - { name: host-a, match: { prefix: /, host: a.example }, upstream: up, request_headers: { set: { X-Route: host-a } } }
  - { name: secret, match: { path: /secret }, upstream: up, auth: jwt }
  - { name: default, match: { prefix: / }, upstream: up, request_headers: { set: { X-Route: default } } }
`, confReadTimeout, confMaxHeaderBytes, confMaxBodyBytes, confSecret, keyFile, upURL)
}

func traversalConfig(upURL, keyFile string) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
auth:
  jwt: { keys: [ { id: k1, algorithm: HS256, secret: "%s" } ] }
  api_keys: { file: "%s" }
upstreams:
  up: { targets: [ { url: "%s" } ] }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: up }
  - { name: stub, match: { prefix: /__stub/ }, upstream: up, auth: jwt }
  - { name: admin, match: { prefix: /admin/ }, upstream: up, auth: api_key }
`, confSecret, keyFile, upURL)
}

// protectedPrefixes are the traversal setup's routes behind auth.
var protectedPrefixes = []string{"/__stub", "/admin"}

// traversalUpstream is a decoding upstream: net/http's FileServer, which
// percent-decodes the path and resolves dot segments (path.Clean), so
// /api/..%2F__stub/echo is the file __stub/echo. (A ServeMux in front would
// redirect such a path instead; many real upstreams serve it.)
func traversalUpstream() http.Handler {
	return http.FileServer(http.FS(fstest.MapFS{
		"api/echo":     {Data: []byte("public\n")},
		"__stub/echo":  {Data: []byte("PROTECTED stub\n")},
		"admin/secret": {Data: []byte("PROTECTED admin\n")},
	}))
}

type confEnv struct {
	plain, traversal     *testGateway
	plainUp, traversalUp *testutil.RawUpstream
}

func startConformance(t *testing.T) *confEnv {
	e := &confEnv{}
	e.plainUp = testutil.StartRawUpstream(t, nil)
	e.plain = startGateway(t, plainConfig(e.plainUp.URL, filepath.Join(t.TempDir(), "keys.json")))
	e.traversalUp = testutil.StartRawUpstream(t, traversalUpstream())
	e.traversal = startGateway(t, traversalConfig(e.traversalUp.URL, filepath.Join(t.TempDir(), "keys.json")))
	return e
}

func TestRequestConformance(t *testing.T) {
	env := startConformance(t)
	seen := map[string]bool{}
	for _, c := range conformanceCases() {
		if seen[c.name] {
			t.Fatalf("two cases named %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			problems, today := env.run(t, c)
			t.Logf("today: %s", today)
			reason, known := knownFailing[c.name]
			switch {
			case known && len(problems) == 0:
				t.Errorf("passes now: remove it from knownFailing (%q)", reason)
			case known:
				t.Skipf("known failing: %s [%s; %s]\n  problems: %s\n  today: %s", reason, c.item, c.rfc,
					strings.Join(problems, "; "), today)
			case len(problems) > 0:
				t.Errorf("[%s; %s]\n  problems: %s\n  today: %s\n  request: %q", c.item, c.rfc,
					strings.Join(problems, "; "), today, clipRaw(c.raw))
			}
		})
	}
	for name := range knownFailing {
		if !seen[name] {
			t.Errorf("knownFailing names %q, which is no case", name)
		}
	}
	// Every client has hung up: the gateway holds no connection open
	// (lingering closes end within lingerTimeout).
	deadline := time.Now().Add(lingerTimeout + 3*time.Second)
	for env.plain.OpenConnections()+env.traversal.OpenConnections() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := env.plain.OpenConnections() + env.traversal.OpenConnections(); n > 0 {
		t.Errorf("the gateway still holds %d client connections after every client hung up", n)
	}
}

func clipRaw(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// run does one case and returns what is wrong, and a description of what
// happened (the client's answer, what the upstream got).
func (e *confEnv) run(t *testing.T, c confCase) (problems []string, today string) {
	g, up := e.plain, e.plainUp
	if c.setup == setupTraversal {
		g, up = e.traversal, e.traversalUp
	}
	before, faultsBefore := up.Count(), len(up.Faults())
	o := c.opts
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	wantAnswer := !slices.Equal(c.status, []int{0})
	if o.Responses == 0 && wantAnswer {
		o.Responses = 1
	}
	if o.Linger == 0 {
		o.Linger = 50 * time.Millisecond
		if c.close {
			o.Linger = lingerTimeout + time.Second
		}
	}
	res := testutil.RawDo(t, g.addr, []byte(c.raw), o)
	reqs, faults, partial := settledUpstream(t, up, before, faultsBefore)
	today = describe(res, reqs, append(faults, partial...))
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// The client's side.
	st := res.Status()
	final := finalResponse(res)
	fromUpstream := final != nil && final.Header.Get(testutil.UpstreamSeqHeader) != ""
	switch {
	case res.TimedOut:
		fail("no answer within %v", o.Timeout)
	case slices.Contains(c.status, st):
	case c.up == upNeverProtected && fromUpstream && len(protectedHits(reqs)) == 0:
		// Forwarded, and no decoding of it leaves the public route: harmless.
	case st == 0:
		fail("no answer, want %v", c.status)
	default:
		fail("status %d, want %v", st, c.status)
	}
	if res.ParseErr != nil {
		fail("answer is not valid HTTP/1.1: %v", res.ParseErr)
	}
	if wantAnswer && res.Reset {
		fail("connection reset (a lingering close lets the client read the answer)")
	}
	if c.close && !res.Closed && !res.Reset {
		fail("connection left open after the answer, want closed")
	}
	if o.Flood > 0 && res.WriteErr != nil {
		fail("the client could not finish sending (%v): the server stopped reading instead of a lingering close", res.WriteErr)
	}

	// The upstream's side.
	for _, f := range faults {
		fail("upstream read bytes that are not a request: %s", f)
	}
	for _, p := range partial {
		fail("after the exchange, upstream %s", p)
	}
	for _, r := range reqs {
		if !r.Complete && c.up != upNoComplete {
			fail("upstream got an incomplete or misframed request #%d: %s", r.Seq, r.Problem)
		}
	}
	switch c.up {
	case upNoComplete:
		for _, r := range reqs {
			if r.Complete {
				fail("upstream got a complete request #%d, want at most a cut-short one", r.Seq)
			}
		}
	case upNone:
		if len(reqs) > 0 {
			fail("upstream got %d request(s), want none", len(reqs))
		}
	case upOne, upMaybeOne:
		if len(reqs) == 0 && c.up == upOne {
			fail("upstream got nothing, want one request")
		}
		if len(reqs) > 1 {
			fail("upstream got %d requests, want one", len(reqs))
		}
		if len(reqs) == 1 && c.check != nil {
			if p := c.check(&reqs[0]); p != "" {
				fail("upstream request: %s", p)
			}
		}
	case upNeverProtected:
		for _, p := range protectedHits(reqs) {
			fail("%s", p)
		}
		if final != nil && strings.Contains(strings.Join(res.Bodies, ""), "PROTECTED") {
			fail("the client read a protected resource")
		}
	}
	return problems, today
}

func finalResponse(res testutil.RawResult) *http.Response {
	for _, r := range res.Responses {
		if r.StatusCode >= 200 {
			return r
		}
	}
	return nil
}

// settledUpstream waits until the upstream has read everything the case
// made the gateway send (a streamed head can arrive after the client has
// its 400), and returns the requests that arrived after before, the new
// faults, and the connections left holding part of a request.
func settledUpstream(t testing.TB, up *testutil.RawUpstream, before, faultsBefore int) ([]testutil.UpstreamRequest, []string, []string) {
	partial, err := up.Quiesce(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return up.Requests()[before:], up.Faults()[faultsBefore:], partial
}

// describe says what happened, for skip and failure messages.
func describe(res testutil.RawResult, reqs []testutil.UpstreamRequest, faults []string) string {
	var b strings.Builder
	b.WriteString("client got " + res.Summary())
	if len(reqs) == 0 {
		b.WriteString("; upstream got nothing")
	}
	for _, r := range reqs {
		fmt.Fprintf(&b, "; upstream got %s %q %s (Host %q", r.Method, r.Target, r.Proto, r.Host)
		for _, name := range []string{"X-Route", "Content-Type", "Content-Length", "Transfer-Encoding",
			"Forwarded", "X-Real-Ip", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Folded"} {
			if v := r.HeaderValues(name); len(v) > 0 {
				fmt.Fprintf(&b, ", %s %q", name, v)
			}
		}
		for k, v := range r.Header {
			if strings.Contains(k, "_") {
				fmt.Fprintf(&b, ", %s %q", k, v)
			}
		}
		if r.Chunked {
			b.WriteString(", chunked")
		}
		fmt.Fprintf(&b, ", body %q)", clipRaw(string(r.Body)))
		switch {
		case !r.Complete && r.Problem == "":
			b.WriteString(" incomplete: body still arriving")
		case !r.Complete:
			fmt.Fprintf(&b, " incomplete: %s", r.Problem)
		}
	}
	for _, f := range faults {
		b.WriteString("; upstream fault: " + f)
	}
	return b.String()
}

// protectedHits lists the requests whose target an upstream may resolve
// to a protected prefix.
func protectedHits(reqs []testutil.UpstreamRequest) []string {
	var out []string
	for _, r := range reqs {
		for _, v := range decodedViews(r.Target) {
			for _, p := range protectedPrefixes {
				hit := fmt.Sprintf("upstream received %q, which resolves to %q", r.Target, v)
				if (v == p || strings.HasPrefix(v, p+"/")) && !slices.Contains(out, hit) {
					out = append(out, hit)
				}
			}
		}
	}
	return out
}

var overlong = strings.NewReplacer("%c0%ae", ".", "%C0%AE", ".", "%c0%AE", ".", "%C0%ae", ".",
	"%c0%af", "/", "%C0%AF", "/", "%c0%AF", "/", "%C0%af", "/",
	"%e0%80%ae", ".", "%E0%80%AE", ".", "%c1%9c", `\`, "%C1%9C", `\`)

// decodedViews is how real upstreams may read a request target's path: a
// percent-decode then dot-segment removal (net/http, most servers, RFC 3986
// section 5.2.4), also with backslash as a separator (IIS, Windows file
// servers), with ";params" dropped from each segment (Tomcat, Jetty:
// "..;/"), and with overlong UTF-8 for '.', '/' and '\' accepted (old
// decoders; %c0%ae).
func decodedViews(target string) []string {
	p := target
	if i := strings.Index(p, "://"); i >= 0 && !strings.HasPrefix(p, "/") {
		p = p[i+3:]
		if j := strings.IndexByte(p, '/'); j >= 0 {
			p = p[j:]
		} else {
			p = "/"
		}
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	var views []string
	add := func(s string) {
		views = append(views, path.Clean("/"+s))
		views = append(views, path.Clean("/"+strings.ReplaceAll(s, `\`, "/")))
		views = append(views, path.Clean("/"+dropParams(strings.ReplaceAll(s, `\`, "/"))))
	}
	if d, err := url.PathUnescape(p); err == nil {
		add(d)
	}
	if d, err := url.PathUnescape(overlong.Replace(p)); err == nil {
		add(d)
	}
	return views
}

// dropParams removes ";..." from each path segment.
func dropParams(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if j := strings.IndexByte(s, ';'); j >= 0 {
			segs[i] = s[:j]
		}
	}
	return strings.Join(segs, "/")
}

// Checks on the request the upstream got.

func allOf(checks ...func(*testutil.UpstreamRequest) string) func(*testutil.UpstreamRequest) string {
	return func(r *testutil.UpstreamRequest) string {
		var out []string
		for _, c := range checks {
			if p := c(r); p != "" {
				out = append(out, p)
			}
		}
		return strings.Join(out, "; ")
	}
}

func wantTarget(target string) func(*testutil.UpstreamRequest) string {
	return func(r *testutil.UpstreamRequest) string {
		if r.Target != target {
			return fmt.Sprintf("target %q, want %q", r.Target, target)
		}
		return ""
	}
}

func wantBody(body string) func(*testutil.UpstreamRequest) string {
	return func(r *testutil.UpstreamRequest) string {
		if string(r.Body) != body {
			return fmt.Sprintf("body %q, want %q", r.Body, body)
		}
		return ""
	}
}

// wantHeader: every value of the header, in order, is exactly want.
func wantHeader(name string, want ...string) func(*testutil.UpstreamRequest) string {
	return func(r *testutil.UpstreamRequest) string {
		if got := r.HeaderValues(name); !slices.Equal(got, want) {
			return fmt.Sprintf("%s %q, want %q", name, got, want)
		}
		return ""
	}
}

func noHeader(name string) func(*testutil.UpstreamRequest) string {
	return func(r *testutil.UpstreamRequest) string {
		if v := r.HeaderValues(name); len(v) > 0 {
			return fmt.Sprintf("%s %q reached the upstream", name, v)
		}
		return ""
	}
}

// headerNotContaining: no value of the header mentions s.
func headerNotContaining(name, s string) func(*testutil.UpstreamRequest) string {
	return func(r *testutil.UpstreamRequest) string {
		for _, v := range r.HeaderValues(name) {
			if strings.Contains(v, s) {
				return fmt.Sprintf("%s %q: the client's value reached the upstream", name, v)
			}
		}
		return ""
	}
}

// wantHost: the request has a Host (net/http refuses a head with two),
// and it is want when want is not "".
func wantHost(want string) func(*testutil.UpstreamRequest) string {
	return func(r *testutil.UpstreamRequest) string {
		switch {
		case r.Host == "":
			return "no Host"
		case want != "" && r.Host != want:
			return fmt.Sprintf("Host %q, want %q", r.Host, want)
		}
		return ""
	}
}

var (
	statusBad      = []int{http.StatusBadRequest}
	statusBadOr501 = []int{http.StatusBadRequest, http.StatusNotImplemented}
	statusOK       = []int{http.StatusOK}
	statusRefused  = []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound}
)

// reqWith is a POST to /f on host x with extra header lines and a body.
func reqWith(headers, body string) string {
	return "POST /f HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n" + body
}

const chunkedHello = "5\r\nhello\r\n0\r\n\r\n"

// flood keeps sending after an early answer, and reads only then.
var flood = testutil.RawOptions{Flood: 300 * time.Millisecond, ReadAfterWrite: true, Timeout: 10 * time.Second}

// conformanceCases is the table, also the seed corpus of FuzzRequestBytes.
func conformanceCases() []confCase {
	cases := []confCase{
		// Baseline: the setup forwards what it should.
		{name: "baseline GET", item: itemBaseline, rfc: "RFC 9112 3",
			raw:    "GET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
			status: statusOK, up: upOne, check: allOf(wantTarget("/b?q=1"), wantHeader("X-Route", "default"), wantHost(""))},
		{name: "baseline Content-Length body", item: itemBaseline, rfc: "RFC 9112 6.2",
			raw:    reqWith("Content-Length: 5\r\n", "hello"),
			status: statusOK, up: upOne, check: wantBody("hello")},
		{name: "baseline chunked body", item: itemBaseline, rfc: "RFC 9112 7.1",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", chunkedHello),
			status: statusOK, up: upOne, check: wantBody("hello")},
		{name: "baseline chunk extension ignored", item: itemBaseline, rfc: "RFC 9112 7.1.1",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "5;name=value\r\nhello\r\n0\r\n\r\n"),
			status: statusOK, up: upOne, check: wantBody("hello")},
		{name: "baseline coding name is case-insensitive", item: itemBaseline, rfc: "RFC 9112 7",
			raw:    reqWith("Transfer-Encoding: Chunked\r\n", chunkedHello),
			status: statusOK, up: upOne, check: wantBody("hello")},
		{name: "baseline tab as OWS before chunked", item: itemBaseline, rfc: "RFC 9110 5.6.3",
			raw:    reqWith("Transfer-Encoding:\tchunked\r\n", chunkedHello),
			status: []int{200, 400}, up: upMaybeOne, check: wantBody("hello")},
		{name: "bare LF line ends in the head, answered at once", item: itemFraming, rfc: "RFC 9112 2.2 (MAY accept; refusing must not wait)",
			raw:    "GET /b HTTP/1.1\nHost: x\nX-A: 1\n\n",
			status: []int{200, 400}, up: upMaybeOne, check: allOf(wantTarget("/b"), wantHeader("X-A", "1")),
			opts: testutil.RawOptions{Timeout: confReadTimeout / 2}},
		{name: "baseline X-Forwarded-For from untrusted peer replaced", item: itemBaseline, rfc: "DESIGN hot path 4",
			raw:    "GET /b HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
			status: statusOK, up: upOne, check: wantHeader("X-Forwarded-For", "127.0.0.1")},
		{name: "baseline HTTP/1.0 with Host", item: itemBaseline, rfc: "RFC 9112 2.3",
			raw:    "GET /b HTTP/1.0\r\nHost: x\r\n\r\n",
			status: statusOK, up: upOne, check: wantTarget("/b")},

		// Framing sluice refuses today: keep it that way (RFC 9112 6.3:
		// ambiguous framing is a smuggling vector; 400 and close).
		{name: "Content-Length and Transfer-Encoding", item: itemFraming, rfc: "RFC 9112 6.1, 6.3",
			raw:    reqWith("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", chunkedHello),
			status: statusBad, close: true},
		{name: "Transfer-Encoding then Content-Length", item: itemFraming, rfc: "RFC 9112 6.1, 6.3",
			raw:    reqWith("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", chunkedHello),
			status: statusBad, close: true},
		{name: "duplicate Content-Length, different values", item: itemFraming, rfc: "RFC 9112 6.3; RFC 9110 8.6",
			raw:    reqWith("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
			status: statusBad, close: true},
		{name: "Content-Length list, different values", item: itemFraming, rfc: "RFC 9112 6.3; RFC 9110 8.6",
			raw:    reqWith("Content-Length: 5, 6\r\n", "hello!"),
			status: statusBad, close: true},
		{name: "Content-Length +5", item: itemFraming, rfc: "RFC 9110 8.6 (1*DIGIT)",
			raw:    reqWith("Content-Length: +5\r\n", "hello"),
			status: statusBad, close: true},
		{name: "Content-Length -1", item: itemFraming, rfc: "RFC 9110 8.6 (1*DIGIT)",
			raw:    reqWith("Content-Length: -1\r\n", "hello"),
			status: statusBad, close: true},
		{name: "Content-Length 0x5", item: itemFraming, rfc: "RFC 9110 8.6 (1*DIGIT)",
			raw:    reqWith("Content-Length: 0x5\r\n", "hello"),
			status: statusBad, close: true},
		{name: "chunk size not hex", item: itemFraming, rfc: "RFC 9112 7.1",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"),
			status: statusBad, close: true},
		{name: "chunk size overflows", item: itemFraming, rfc: "RFC 9112 7.1",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "1ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
			status: []int{400, 413}, close: true},
		{name: "chunk size 0x5", item: itemFraming, rfc: "RFC 9112 7.1",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "0x5\r\nhello\r\n0\r\n\r\n"),
			status: statusBad, close: true},
		{name: "chunk size not hex after a streamed 20KiB", item: itemFraming, rfc: "RFC 9112 7.1",
			raw: reqWith("Transfer-Encoding: chunked\r\n",
				strings.Repeat("1000\r\n"+strings.Repeat("a", 0x1000)+"\r\n", 5)+"zz\r\nhello\r\n0\r\n\r\n"),
			status: statusBad, close: true, up: upNoComplete},
		{name: "chunk extension with bare LF", item: itemFraming, rfc: "RFC 9112 7.1.1",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "5;a\nhello\r\n0\r\n\r\n"),
			status: statusBad, close: true},
		{name: "chunk extension with NUL", item: itemFraming, rfc: "RFC 9112 7.1.1",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "5;a=\x00\r\nhello\r\n0\r\n\r\n"),
			status: statusBad, close: true},
		{name: "chunk extension 8KiB long", item: itemFraming, rfc: "RFC 9112 7.1.1 (limit extensions)",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "5;"+strings.Repeat("a", 8<<10)+"\r\nhello\r\n0\r\n\r\n"),
			status: []int{400, 413}, close: true},
		{name: "bare CR in the request line", item: itemFraming, rfc: "RFC 9112 2.2",
			raw:    "GET /f HTTP/1.1\rHost: x\r\n\r\n",
			status: statusBad, close: true},
		{name: "bare CR in a header value", item: itemFraming, rfc: "RFC 9112 2.2; RFC 9110 5.5",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
			status: statusBad, close: true},
		{name: "bare LF after chunk size", item: itemFraming, rfc: "RFC 9112 7.1 (CRLF; 2.2 leniency is for the head)",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n"),
			status: statusBad, close: true},
		{name: "bare LF after chunk data", item: itemFraming, rfc: "RFC 9112 7.1",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", "5\r\nhello\n0\r\n\r\n"),
			status: statusBad, close: true},
		{name: "NUL in the request line", item: itemFraming, rfc: "RFC 9112 3; RFC 3986 2",
			raw:    "GET /f\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
			status: statusBad, close: true},
		{name: "NUL in a header name", item: itemFraming, rfc: "RFC 9110 5.1 (token)",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-\x00A: 1\r\n\r\n",
			status: statusBad, close: true},
		{name: "NUL in a header value", item: itemFraming, rfc: "RFC 9110 5.5",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
			status: statusBad, close: true},
		{name: "space before colon: Host", item: itemFraming, rfc: "RFC 9112 5.1 (MUST 400)",
			raw:    "GET /f HTTP/1.1\r\nHost : x\r\n\r\n",
			status: statusBad, close: true},
		{name: "space before colon: Content-Length", item: itemFraming, rfc: "RFC 9112 5.1 (MUST 400)",
			raw:    reqWith("Content-Length : 5\r\n", "hello"),
			status: statusBad, close: true},
		{name: "tab before colon: Transfer-Encoding", item: itemFraming, rfc: "RFC 9112 5.1 (MUST 400)",
			raw:    reqWith("Transfer-Encoding\t: chunked\r\n", chunkedHello),
			status: statusBad, close: true},
		{name: "Transfer-Encoding gzip", item: itemFraming, rfc: "RFC 9112 6.1 (chunked not final: 400)",
			raw:    reqWith("Transfer-Encoding: gzip\r\n", "hello"),
			status: statusBad, close: true},
		{name: "Transfer-Encoding chunked, gzip", item: itemFraming, rfc: "RFC 9112 6.1 (chunked not final: 400)",
			raw:    reqWith("Transfer-Encoding: chunked, gzip\r\n", chunkedHello),
			status: statusBad, close: true},
		{name: "Transfer-Encoding gzip, chunked", item: itemFraming, rfc: "RFC 9112 6.1 (unknown coding: 501)",
			raw:    reqWith("Transfer-Encoding: gzip, chunked\r\n", chunkedHello),
			status: statusBadOr501, close: true},
		{name: "Transfer-Encoding identity", item: itemFraming, rfc: "RFC 9112 6.1 (identity is gone; 501)",
			raw:    reqWith("Transfer-Encoding: identity\r\nContent-Length: 5\r\n", "hello"),
			status: statusBadOr501, close: true},
		{name: "Transfer-Encoding chunked, chunked", item: itemFraming, rfc: "RFC 9112 6.1 (chunked at most once)",
			raw:    reqWith("Transfer-Encoding: chunked, chunked\r\n", chunkedHello),
			status: statusBad, close: true},
		{name: "Transfer-Encoding xchunked", item: itemFraming, rfc: "RFC 9112 6.1",
			raw:    reqWith("Transfer-Encoding: xchunked\r\n", chunkedHello),
			status: statusBadOr501, close: true},
		{name: "Transfer-Encoding chunked with a vertical tab", item: itemFraming, rfc: "RFC 9110 5.6.3 (OWS is SP / HTAB)",
			raw:    reqWith("Transfer-Encoding: \x0bchunked\r\n", chunkedHello),
			status: statusBadOr501, close: true},
		{name: "Transfer-Encoding in HTTP/1.0", item: itemFraming, rfc: "RFC 9112 6.1 (faulty framing in 1.0)",
			raw:    "POST /f HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHello,
			status: statusBad, close: true},

		// Obsolete line folding (RFC 9112 5.2 allows 400 or SP; sluice
		// refuses, as the issue decides).
		{name: "folded header", item: itemFold, rfc: "RFC 9112 5.2",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
			status: statusBad, close: true},
		{name: "empty Content-Length folded onto the next line", item: itemFold, rfc: "RFC 9112 5.2, 6.3",
			raw:    reqWith("Content-Length:\r\n 5\r\n", "hello"),
			status: statusBad, close: true},
		{name: "folded Transfer-Encoding", item: itemFold, rfc: "RFC 9112 5.2, 6.3",
			raw:    reqWith("Transfer-Encoding:\r\n chunked\r\n", chunkedHello),
			status: statusBad, close: true},
		{name: "whitespace before the first header", item: itemFold, rfc: "RFC 9112 2.2 (reject, or drop the line)",
			raw:    "GET /f HTTP/1.1\r\n X-Folded: 1\r\nHost: x\r\n\r\n",
			status: []int{200, 400}, up: upMaybeOne, check: noHeader("X-Folded")},

		// Versions: only HTTP/1.0 and 1.1 exist on this wire.
		{name: "version HTTP/2.0", item: itemVersion, rfc: "RFC 9110 15.6.6; RFC 9112 2.3",
			raw: "GET /f HTTP/2.0\r\nHost: x\r\n\r\n", status: []int{505}},
		{name: "version HTTP/0.9", item: itemVersion, rfc: "RFC 9110 15.6.6; RFC 9112 2.3",
			raw: "GET /f HTTP/0.9\r\nHost: x\r\n\r\n", status: []int{505}},
		{name: "version HTTP/1.2", item: itemVersion, rfc: "RFC 9110 15.6.6; RFC 9112 2.3",
			raw: "GET /f HTTP/1.2\r\nHost: x\r\n\r\n", status: []int{505}},
		{name: "version HTTP/9.9", item: itemVersion, rfc: "RFC 9110 15.6.6; RFC 9112 2.3",
			raw: "GET /f HTTP/9.9\r\nHost: x\r\n\r\n", status: []int{505}},
		{name: "version HTTP/1.10", item: itemVersion, rfc: "RFC 9112 2.3 (HTTP-version = DIGIT . DIGIT)",
			raw: "GET /f HTTP/1.10\r\nHost: x\r\n\r\n", status: []int{400, 505}},
		{name: "version name in lower case", item: itemVersion, rfc: "RFC 9112 2.3 (HTTP-name is case-sensitive)",
			raw: "GET /f http/1.1\r\nHost: x\r\n\r\n", status: statusBad},

		// Methods are case-sensitive tokens (RFC 9110 9.1); lower case is
		// refused (nginx's choice), TRACE too (it echoes credentials).
		{name: "method in lower case", item: itemMethod, rfc: "RFC 9110 9.1",
			raw: "get /f HTTP/1.1\r\nHost: x\r\n\r\n", status: statusBad},
		{name: "method with a non-token character", item: itemMethod, rfc: "RFC 9110 9.1 (method = token)",
			raw: "G@T /f HTTP/1.1\r\nHost: x\r\n\r\n", status: statusBad},
		{name: "TRACE refused by default", item: itemMethod, rfc: "RFC 9110 9.3.8",
			raw: "TRACE /f HTTP/1.1\r\nHost: x\r\nCookie: secret=1\r\n\r\n", status: []int{405}},

		// Host (RFC 9112 3.2: 400 for none, several, or an invalid one).
		{name: "HTTP/1.1 without Host", item: itemHost, rfc: "RFC 9112 3.2",
			raw: "GET /f HTTP/1.1\r\n\r\n", status: statusBad},
		{name: "two Host headers", item: itemHost, rfc: "RFC 9112 3.2",
			raw: "GET /f HTTP/1.1\r\nHost: x\r\nHost: a.example\r\n\r\n", status: statusBad},
		{name: "Host with a space", item: itemHost, rfc: "RFC 9112 3.2; RFC 9110 7.2",
			raw: "GET /f HTTP/1.1\r\nHost: a b\r\n\r\n", status: statusBad},
		{name: "Host with userinfo", item: itemHost, rfc: "RFC 9110 7.2 (uri-host [: port])",
			raw: "GET /f HTTP/1.1\r\nHost: x@a.example\r\n\r\n", status: statusBad},
		{name: "Host with a path", item: itemHost, rfc: "RFC 9110 7.2 (uri-host [: port])",
			raw: "GET /f HTTP/1.1\r\nHost: a.example/x\r\n\r\n", status: statusBad},
		{name: "HTTP/1.0 without Host is routed by the default route", item: itemHost, rfc: "RFC 9112 3.2 (Host is 1.1's rule)",
			raw:    "GET /f HTTP/1.0\r\n\r\n",
			status: statusOK, up: upOne, check: allOf(wantHeader("X-Route", "default"), wantHost(""), wantTarget("/f"))},

		// Absolute form: the target's authority is the Host (RFC 9112 3.2.2).
		{name: "absolute-form target overrides Host", item: itemAbsolute, rfc: "RFC 9112 3.2.2",
			raw:    "GET http://a.example/x?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n",
			status: statusOK, up: upOne, check: allOf(wantHeader("X-Route", "host-a"), wantHost("a.example"), wantTarget("/x?q=1"))},
		{name: "absolute-form target with port and upper case", item: itemAbsolute, rfc: "RFC 9112 3.2.2; RFC 3986 3.2.2",
			raw:    "GET http://A.EXAMPLE:8080/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
			status: statusOK, up: upOne, check: allOf(wantHeader("X-Route", "host-a"), wantTarget("/x"))},

		// What a client says about itself is not believed (no trusted proxy
		// in this setup).
		{name: "Forwarded from an untrusted peer", item: itemForwarded, rfc: "RFC 7239 8.1",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nForwarded: for=1.2.3.4;proto=https;host=evil\r\n\r\n",
			status: statusOK, up: upOne, check: allOf(headerNotContaining("Forwarded", "1.2.3.4"), headerNotContaining("Forwarded", "evil"))},
		{name: "X-Original-URL from an untrusted peer", item: itemForwarded, rfc: "review (IIS and Symfony route by it)",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-Original-URL: /admin/secret\r\nX-Rewrite-URL: /admin/secret\r\n\r\n",
			status: statusOK, up: upOne, check: allOf(headerNotContaining("X-Original-Url", "admin"), headerNotContaining("X-Rewrite-Url", "admin"))},
		{name: "X-Forwarded-Prefix, -Port and True-Client-IP from an untrusted peer", item: itemForwarded, rfc: "review (frameworks build URLs from them)",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-Forwarded-Prefix: /evil\r\nX-Forwarded-Port: 1\r\nTrue-Client-IP: 1.2.3.4\r\nX-Client-IP: 1.2.3.4\r\n\r\n",
			status: statusOK, up: upOne, check: allOf(headerNotContaining("X-Forwarded-Prefix", "evil"), headerNotContaining("X-Forwarded-Port", "1"),
				headerNotContaining("True-Client-Ip", "1.2.3.4"), headerNotContaining("X-Client-Ip", "1.2.3.4"))},
		{name: "X-Real-IP from an untrusted peer", item: itemForwarded, rfc: "issue 13 (as X-Forwarded-For)",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-Real-IP: 1.2.3.4\r\n\r\n",
			status: statusOK, up: upOne, check: headerNotContaining("X-Real-IP", "1.2.3.4")},
		{name: "two X-Forwarded-For lines from an untrusted peer", item: itemForwarded, rfc: "issue 13; RFC 9110 5.3",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n",
			status: statusOK, up: upOne, check: wantHeader("X-Forwarded-For", "127.0.0.1")},
		{name: "two X-Forwarded-Proto lines from an untrusted peer", item: itemForwarded, rfc: "issue 13; RFC 9110 5.3",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\n\r\n",
			status: statusOK, up: upOne, check: wantHeader("X-Forwarded-Proto", "http")},
		{name: "two X-Forwarded-Host lines from an untrusted peer", item: itemForwarded, rfc: "issue 13; RFC 9110 5.3",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Host: evil\r\n\r\n",
			status: statusOK, up: upOne, check: wantHeader("X-Forwarded-Host", "x")},

		// A stalled head gets 408 and a close; early answers are readable.
		{name: "request line times out", item: itemLinger, rfc: "RFC 9110 15.5.9",
			raw: "GET /slo", status: []int{408}, close: true},
		{name: "header block times out", item: itemLinger, rfc: "RFC 9110 15.5.9",
			raw: "GET /slow HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n", status: []int{408}, close: true},
		{name: "431 survives a client that keeps sending", item: itemLinger, rfc: "RFC 9112 9.6 (lingering close); RFC 6585 5",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 2*confMaxHeaderBytes),
			status: []int{431}, close: true, opts: flood},
		{name: "400 survives a client that keeps sending", item: itemLinger, rfc: "RFC 9112 9.6 (lingering close)",
			raw:    "GET /f HTTP/1.1\r\nHost : x\r\n\r\n",
			status: statusBad, close: true, opts: flood},
		{name: "413 survives a client that keeps sending", item: itemLinger, rfc: "RFC 9112 9.6 (lingering close); RFC 9110 15.5.14",
			raw:    reqWith(fmt.Sprintf("Content-Length: %d\r\n", 4*confMaxBodyBytes), ""),
			status: []int{413}, close: true, opts: flood},

		// The proxy adds nothing the client did not send, and drops
		// header names with underscores (nginx's underscores_in_headers off):
		// they alias the dashed names in CGI-style upstreams.
		{name: "body without Content-Type gets none", item: itemTransparent, rfc: "RFC 9110 8.3",
			raw:    reqWith("Content-Length: 5\r\n", "hello"),
			status: statusOK, up: upOne, check: allOf(noHeader("Content-Type"), wantBody("hello"))},
		{name: "chunked body without Content-Type gets none", item: itemTransparent, rfc: "RFC 9110 8.3",
			raw:    reqWith("Transfer-Encoding: chunked\r\n", chunkedHello),
			status: statusOK, up: upOne, check: allOf(noHeader("Content-Type"), wantBody("hello"))},
		{name: "Transfer_Encoding dropped", item: itemTransparent, rfc: "issue 13 (nginx underscores_in_headers)",
			raw:    reqWith("Content-Length: 5\r\nTransfer_Encoding: chunked\r\n", "hello"),
			status: statusOK, up: upOne, check: allOf(noHeader("Transfer_Encoding"), wantBody("hello"))},
		{name: "X_Forwarded_For dropped", item: itemTransparent, rfc: "issue 13 (nginx underscores_in_headers)",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n",
			status: statusOK, up: upOne, check: noHeader("X_Forwarded_For")},
		{name: "X_Api_Key dropped", item: itemTransparent, rfc: "issue 13 (nginx underscores_in_headers)",
			raw:    "GET /f HTTP/1.1\r\nHost: x\r\nX_Api_Key: k\r\n\r\n",
			status: statusOK, up: upOne, check: noHeader("X_Api_Key")},

		// A fragment is no part of a request target (RFC 9112 3.2: origin-form
		// is absolute-path ["?" query]; RFC 3986 3.5).
		{name: "fragment in the target", item: itemTraversal, rfc: "RFC 9112 3.2; RFC 3986 3.5",
			raw: "GET /f#x HTTP/1.1\r\nHost: x\r\n\r\n", status: statusBad},
		{name: "fragment after an exact protected path", item: itemTraversal, rfc: "RFC 9112 3.2; RFC 3986 3.5",
			raw: "GET /secret#x HTTP/1.1\r\nHost: x\r\n\r\n", status: []int{400, 401}},
		{name: "invalid percent-encoding in the path", item: itemTraversal, rfc: "RFC 3986 2.1 (pct-encoded = \"%\" HEXDIG HEXDIG)",
			raw: "GET /f%zz HTTP/1.1\r\nHost: x\r\n\r\n", status: statusBad},
		{name: "exact protected path control", item: itemBaseline, rfc: "-",
			raw: "GET /secret HTTP/1.1\r\nHost: x\r\n\r\n", status: []int{401}},

		// Traversal controls: the public route works, the protected ones
		// want credentials.
		{name: "traversal control: public route", item: itemBaseline, rfc: "-", setup: setupTraversal,
			raw: "GET /api/echo HTTP/1.1\r\nHost: x\r\n\r\n", status: statusOK, up: upOne, check: wantTarget("/api/echo")},
		{name: "traversal control: /__stub/ wants a token", item: itemBaseline, rfc: "-", setup: setupTraversal,
			raw: "GET /__stub/echo HTTP/1.1\r\nHost: x\r\n\r\n", status: []int{401}},
		{name: "traversal control: /admin/ wants a key", item: itemBaseline, rfc: "-", setup: setupTraversal,
			raw: "GET /admin/secret HTTP/1.1\r\nHost: x\r\n\r\n", status: []int{401}},
	}

	// Path traversal from the public /api/ into the protected routes: 400
	// or 401/404 from sluice, or a forward no decoding of which leaves /api/.
	for _, p := range []string{
		"/api/..%2F__stub/echo",
		"/api/..%2f__stub/echo",
		"/api/%2e%2e%2f__stub/echo",
		"/api/%2E%2E%2F__stub/echo",
		"/api/.%2E/__stub/echo",
		"/api/%2e%2E/__stub/echo",
		"/api/../__stub/echo",
		"/api/x/..%2F..%2F__stub/echo",
		"/api/..%2F..%2Fadmin/secret",
		"/api/%252e%252e/__stub/echo",
		"/api/%252e%252e%252f__stub/echo",
		"/api/..;/__stub/echo",
		"/api/..;x=1/__stub/echo",
		`/api/..\__stub/echo`,
		"/api/..%5c__stub/echo",
		"/api/..%5C__stub/echo",
		"/api/%2e%2e%5c__stub/echo",
		"/api/%c0%ae%c0%ae/__stub/echo",
		"/api/%c0%ae%c0%ae%c0%af__stub/echo",
		"/api/%e0%80%ae%e0%80%ae/__stub/echo",
		"//__stub/echo",
		"/api//..//__stub/echo",
		"/api/..%2F__stub/echo?x=1",
		"/api/..%00/__stub/echo",
	} {
		cases = append(cases, confCase{name: "traversal " + p, item: itemTraversal, rfc: "RFC 3986 5.2.4, 6.2.2; DESIGN path normalisation",
			setup: setupTraversal, raw: "GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n", status: statusRefused, up: upNeverProtected})
	}
	cases = append(cases, confCase{name: "traversal in an absolute-form target", item: itemTraversal, rfc: "RFC 9112 3.2.2; RFC 3986 5.2.4",
		setup: setupTraversal, raw: "GET http://x/api/..%2F__stub/echo HTTP/1.1\r\nHost: x\r\n\r\n", status: statusRefused, up: upNeverProtected})
	return cases
}

// nameOK keeps case names usable with go test -run.
var nameOK = regexp.MustCompile(`^[ -~]+$`)

func TestConformanceCaseNames(t *testing.T) {
	for _, c := range conformanceCases() {
		if !nameOK.MatchString(c.name) || c.item == "" || c.rfc == "" || len(c.status) == 0 {
			t.Errorf("case %q: needs a printable name, an item, an RFC and a status", c.name)
		}
	}
}
