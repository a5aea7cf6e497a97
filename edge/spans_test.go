package edge

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an in-process OTLP/HTTP trace receiver: it accepts
// POST /v1/traces (protobuf, optionally gzip) and keeps the spans.
type otlpReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	spans   []*tracepb.Span
	service string
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want POST /v1/traces protobuf", http.StatusBadRequest)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		var msg collector.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(data, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					r.service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			v := a.GetValue()
			if v.GetStringValue() != "" {
				return v.GetStringValue()
			}
			b, _ := json.Marshal(v.GetIntValue())
			return string(b)
		}
	}
	return ""
}

// Spans reach a real OTLP/HTTP endpoint with the right ids and
// attributes; sampling follows the caller's flag, and the access log
// names the same trace.
func TestSpansExportedOverOTLP(t *testing.T) {
	recv := startOTLPReceiver(t)
	up := testutil.StartUpstream(t, stub.Options{Name: "a"})
	logPath := filepath.Join(t.TempDir(), "access.log")
	g := startGateway(t, `
listen: 127.0.0.1:0
admin: { listen: "off" }
tracing: { otlp_endpoint: "`+recv.URL+`", sample: 0, service_name: edge-test }
access_log: { enabled: true, output: "`+logPath+`" }
upstreams:
  up: { targets: [ { url: "`+up.URL+`" } ] }
  dead: { targets: [ { url: "http://`+testutil.DeadAddr(t)+`" } ] }
routes:
  - { name: api, match: { prefix: /api/ }, upstream: up, rewrite: { replace_path: /__stub/echo } }
  - { name: down, match: { prefix: /down }, upstream: dead }
`)
	const traceA = "4bf92f3577b34da6a3ce929d0e0e4736"
	const parentA = "00f067aa0ba902b7"
	echoA, respA := g.echo(t, request{path: "/api/a?token=secret", headers: map[string]string{"traceparent": "00-" + traceA + "-" + parentA + "-01"}})
	const traceB = "0af7651916cd43dd8448eb211c80319c"
	echoB, _ := g.echo(t, request{path: "/api/b", headers: map[string]string{"traceparent": "00-" + traceB + "-b7ad6b7169203331-00"}})
	g.echo(t, request{path: "/api/c"}) // no traceparent, sample 0: not recorded
	const traceD = "11111111111111111111111111111111"
	g.do(t, request{path: "/down", headers: map[string]string{"traceparent": "00-" + traceD + "-2222222222222222-01"}})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil { // flushes the batch exporter and the log
		t.Fatal(err)
	}

	recv.mu.Lock()
	spans, service := recv.spans, recv.service
	recv.mu.Unlock()
	if len(spans) != 2 {
		t.Fatalf("%d spans exported, want 2 (the two sampled requests)", len(spans))
	}
	if service != "edge-test" {
		t.Errorf("service.name = %q", service)
	}
	byTrace := map[string]*tracepb.Span{}
	for _, s := range spans {
		byTrace[hex.EncodeToString(s.GetTraceId())] = s
	}
	a := byTrace[traceA]
	if a == nil {
		t.Fatalf("no span in trace %s", traceA)
	}
	if got := hex.EncodeToString(a.GetParentSpanId()); got != parentA {
		t.Errorf("span parent = %s, want the caller's %s", got, parentA)
	}
	if a.GetName() != "api" || a.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("span name %q kind %v", a.GetName(), a.GetKind())
	}
	// The upstream's parent is sluice's span.
	wantTP := "00-" + traceA + "-" + hex.EncodeToString(a.GetSpanId()) + "-01"
	if got := echoA.Headers["Traceparent"]; len(got) != 1 || got[0] != wantTP {
		t.Errorf("upstream traceparent %v, want %s", got, wantTP)
	}
	for k, want := range map[string]string{"http.request.method": "GET", "url.path": "/api/a", "http.response.status_code": "200",
		"sluice.route": "api", "sluice.upstream": "up", "sluice.target": up.URL, "http.request.header.x-request-id": respA.header.Get("X-Request-Id")} {
		if got := attr(a, k); got != want {
			t.Errorf("attribute %s = %q, want %q", k, got, want)
		}
	}
	d := byTrace[traceD]
	if d == nil || attr(d, "http.response.status_code") != "502" || d.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("failed request's span: %v", d)
	}
	// Not sampled: still propagated, with the caller's trace id and flags.
	if got := echoB.Headers["Traceparent"]; len(got) != 1 || !strings.HasPrefix(got[0], "00-"+traceB+"-") || !strings.HasSuffix(got[0], "-00") {
		t.Errorf("unsampled traceparent %v", got)
	}

	// The access log: one line per request, with the trace and request ids.
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Bytes(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want 4", len(lines))
	}
	first := lines[0]
	for k, want := range map[string]any{"trace_id": traceA, "request_id": respA.header.Get("X-Request-Id"), "path": "/api/a",
		"route": "api", "upstream": "up", "target": up.URL, "status": 200.0, "method": "GET", "client_ip": "127.0.0.1", "bytes_in": 0.0} {
		if first[k] != want {
			t.Errorf("log %s = %#v, want %#v", k, first[k], want)
		}
	}
	if bytes.Contains([]byte(first["path"].(string)), []byte("secret")) {
		t.Error("the query string reached the access log")
	}
	if lines[3]["status"] != 502.0 || lines[3]["route"] != "down" {
		t.Errorf("last line: %v", lines[3])
	}
}
