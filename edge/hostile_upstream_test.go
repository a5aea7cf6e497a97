package edge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/valyala/fasthttp"
)

// Issue #13: an upstream that writes more than its answer on a keep-alive
// connection, or breaks it, must never make a client get another client's
// answer. Each script below runs at least 10,000 requests from many
// concurrent clients through a gateway; every request is tagged with a
// unique path, which the upstream echoes (X-Tag and body). A client may get
// a 502 where its own upstream answer was broken, never another's answer.
// Before the fix, the first five scripts made clients read earlier
// clients' answers (or garbage, as 502s) within a few requests.

const hostileRequests = 10000

// tally counts what the clients got.
type tally struct {
	ok, badGateway, other, mismatch atomic.Int64
	mu                              sync.Mutex
	examples                        []string
}

func (ty *tally) note(format string, args ...any) {
	ty.mu.Lock()
	if len(ty.examples) < 5 {
		ty.examples = append(ty.examples, fmt.Sprintf(format, args...))
	}
	ty.mu.Unlock()
}

// hostileClient sends one tagged request and checks the answer is its own.
// It is a fasthttp client: under -race on 2 cores it costs a fraction of
// net/http's, which leaves the CPU to the gateway.
func hostileClient(c *fasthttp.HostClient, method, tag string, wantStatus int, ty *tally) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + c.Addr + tag)
	err := c.DoTimeout(req, resp, 10*time.Second)
	if err != nil {
		ty.other.Add(1)
		ty.note("%s %s: %v", method, tag, err)
		return
	}
	got, body, status := string(resp.Header.Peek("X-Tag")), string(resp.Body()), resp.StatusCode()
	switch {
	case status == http.StatusBadGateway && got == "":
		ty.badGateway.Add(1)
		ty.note("%s %s: 502 %.80q", method, tag, body)
	case got != "" && got != tag, status == 200 && method == "GET" && body != tag:
		ty.mismatch.Add(1)
		ty.note("%s %s got X-Tag %q, body %.40q", method, tag, got, body)
	case status != wantStatus:
		ty.other.Add(1)
		ty.note("%s %s: status %d, body %.80q", method, tag, status, body)
	default:
		ty.ok.Add(1)
	}
}

func TestHostileUpstreamNeverCrossesAnswers(t *testing.T) {
	cases := []struct {
		name   string
		script testutil.HostileScript
		status int  // what every client should get for a GET
		may502 bool // the upstream's own answers can be lost (a reset can overtake them)
	}{
		{"late unsolicited response", testutil.LateResponse, 200, false},
		{"extra response in the same write", testutil.ExtraResponse, 200, false},
		{"HEAD answered with a body", testutil.HeadWithBody, 200, false},
		{"204 with a body", testutil.NoContentWithBody, 204, false},
		{"body longer than Content-Length", testutil.OverlongBody, 200, false},
		{"close after each answer", testutil.CloseAfter, 200, false},
		{"reset after each answer", testutil.ResetAfter, 200, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // 2 cores: one script's round trips fill the other's waits
			h := testutil.StartHostile(t, c.script)
			g := startGateway(t, oneUpstream(h.URL, catchAll))
			const workers = 16
			hc := &fasthttp.HostClient{Addr: g.addr, MaxConns: workers, MaxIdemponentCallAttempts: 1}
			defer hc.CloseIdleConnections()
			var ty tally
			// The late response is written while connections are idle, so
			// the clients go in rounds: each round every worker sends a few
			// requests, then the upstream writes its unsolicited response
			// on every idle connection. The other scripts misbehave on
			// every answer: one round.
			rounds, perRound := 1, hostileRequests/workers+1
			if c.script == testutil.LateResponse {
				rounds, perRound = 80, hostileRequests/(80*workers)+1
			}
			injected := 0
			for r := 0; r < rounds; r++ {
				var wg sync.WaitGroup
				for w := 0; w < workers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < perRound; i++ {
							method := "GET"
							if c.script == testutil.HeadWithBody && i%2 == 0 {
								method = "HEAD"
							}
							hostileClient(hc, method, fmt.Sprintf("/t/%d-%d-%d", r, w, i), c.status, &ty)
						}
					}()
				}
				wg.Wait()
				if c.script == testutil.LateResponse {
					injected += h.InjectIdle()
				}
			}
			total := ty.ok.Load() + ty.badGateway.Load() + ty.other.Load() + ty.mismatch.Load()
			t.Logf("%d requests: %d own answers, %d 502, %d other, %d crossed; upstream: %d requests on %d connections, %d unsolicited responses",
				total, ty.ok.Load(), ty.badGateway.Load(), ty.other.Load(), ty.mismatch.Load(), h.Requests(), h.Conns(), injected)
			if total < hostileRequests {
				t.Fatalf("only %d requests", total)
			}
			if n := ty.mismatch.Load(); n != 0 {
				t.Errorf("%d clients got another client's answer, e.g. %q", n, ty.examples)
			}
			if n := ty.badGateway.Load() + ty.other.Load(); n != 0 && !c.may502 {
				t.Errorf("%d clients failed though their own answer was whole, e.g. %q", n, ty.examples)
			}
			if ty.other.Load() != 0 && c.may502 {
				t.Errorf("%d clients got neither their answer nor a 502, e.g. %q", ty.other.Load(), ty.examples)
			}
			if ty.ok.Load() < total/2 {
				t.Errorf("only %d of %d clients got their answer", ty.ok.Load(), total)
			}
			if c.script == testutil.LateResponse && (injected < rounds-1 || h.Raced() != 0) {
				t.Errorf("%d unsolicited responses over %d rounds, %d requests sent after one", injected, rounds, h.Raced())
			}
		})
	}
}

// RFC 9110 15.2.2: an upstream 101 answers an upgrade sluice never asked
// for (no route allows upgrades) and would leave the client with no tunnel
// behind it: the client gets a 502 and the connection is closed.
func TestUpstreamSwitchingProtocolsIsBadGateway(t *testing.T) {
	h := testutil.StartHostile(t, testutil.SwitchProtocols)
	g := startGateway(t, oneUpstream(h.URL, catchAll))
	for i := 0; i < 2; i++ {
		wantFault(t, g.get(t, "/ws"), http.StatusBadGateway, "bad response from upstream")
	}
	if n := h.Conns(); n < 2 {
		t.Errorf("the switched connection was reused (%d connections)", n)
	}
}

// RFC 9112 7.1: a chunked answer whose first chunk size is malformed is a
// 502; one that breaks midway, or ends without its last (zero-size) chunk
// because the upstream hung up right after a chunk, or a body cut short
// of its Content-Length (RFC 9112 8), closes the client's connection before the body's end, so
// the client sees a truncated answer rather than a complete-looking one,
// and the target counts a broken stream.
func TestBrokenUpstreamBody(t *testing.T) {
	h := testutil.StartHostile(t, testutil.BadChunkStart)
	g := startGateway(t, oneUpstream(h.URL, catchAll))
	wantFault(t, g.get(t, "/c"), http.StatusBadGateway, "bad response from upstream")

	for _, script := range []testutil.HostileScript{testutil.BadChunkMidway, testutil.ChunkBoundaryClose, testutil.TruncatedBody} {
		h := testutil.StartHostile(t, script)
		logPath := filepath.Join(t.TempDir(), "access.log")
		g := startGateway(t, oneUpstream(h.URL, catchAll)+"access_log: { enabled: true, output: "+logPath+", sample: 0.000001 }\nmetrics: { data_plane_path: /metrics }\n")
		c, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(c, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("script %d: %v %v", script, resp, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil || n < testutil.MidwayBytes/2 || n >= 4*testutil.MidwayBytes {
			t.Errorf("script %d: the client read %d bytes and %v; want part of the body, then an error", script, n, err)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("script %d: the client connection was not closed: %v", script, err)
		}
		c.Close()
		target := g.Snapshot().upstreams["up"].pool.Targets[0]
		if got := target.StreamFailures(); got != 1 {
			t.Errorf("script %d: StreamFailures = %d, want 1", script, got)
		}
		// The access log and the metrics say so too (not a 200 with an
		// unknown size): the line is written once the stream has closed,
		// with the bytes relayed, and even though its sample is tiny.
		var line map[string]any
		testutil.WaitFor(t, "the access log line of the broken answer", func() bool {
			data, _ := os.ReadFile(logPath)
			return json.Unmarshal(bytes.TrimSpace(data), &line) == nil
		})
		if line["upstream_error"] != "response body broke off" || line["bytes_out"].(float64) != float64(n) {
			t.Errorf("script %d: access log %v, want upstream_error and bytes_out %d", script, line, n)
		}
		fams := scrape(t, g)
		if got := sample(fams, "sluice_upstream_errors_total", map[string]string{"upstream": "up", "kind": "protocol"}) +
			sample(fams, "sluice_upstream_errors_total", map[string]string{"upstream": "up", "kind": "reset"}); got != 1 {
			t.Errorf("script %d: sluice_upstream_errors_total (protocol + reset) %v, want 1", script, got)
		}
	}
}

// The other side of TestBrokenUpstreamBody's chunk-boundary case: a
// chunked answer that ends with its last chunk and then the upstream's
// close (Connection: close) is whole, however soon the close follows.
func TestChunkedAnswerThenCloseIsWhole(t *testing.T) {
	const size = 256 << 10
	ln := testutil.Listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				req.Body.Close()
				var b bytes.Buffer
				b.WriteString("HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
				for n := 0; n < size; n += 16 << 10 {
					b.WriteString("4000\r\n" + strings.Repeat("w", 16<<10) + "\r\n")
				}
				b.WriteString("0\r\n\r\n")
				_, _ = c.Write(b.Bytes())
			}()
		}
	}()
	g := startGateway(t, oneUpstream("http://"+ln.Addr().String(), catchAll))
	for i := 0; i < 5; i++ {
		status, body, whole := rawGet(t, g.addr, "/whole")
		if status != 200 || len(body) != size || !whole {
			t.Fatalf("request %d: %d, %d bytes, whole %v; want 200, %d bytes, whole", i, status, len(body), whole, size)
		}
	}
	if got := g.Snapshot().upstreams["up"].pool.Targets[0].StreamFailures(); got != 0 {
		t.Errorf("StreamFailures = %d, want 0", got)
	}
}
