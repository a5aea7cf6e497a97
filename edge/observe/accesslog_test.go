package observe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func sampleEntry() Entry {
	return Entry{
		Time: time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC), RequestID: []byte("0123456789abcdef0123456789abcdef"),
		TraceID: []byte("4bf92f3577b34da6a3ce929d0e0e4736"), ClientIP: []byte("10.0.0.1"), Method: []byte("GET"),
		Path: []byte("/api/users/42"), Route: "api", Upstream: "users", Target: "http://127.0.0.1:9001", Status: 200,
		BytesIn: 0, BytesOut: 64, Duration: 1234567 * time.Nanosecond, UpstreamDuration: 987 * time.Microsecond,
		Retries: 1, User: "alice", APIKeyID: "k_123",
	}
}

func TestAppendEntryIsOneJSONLine(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Entry)
		check func(t *testing.T, m map[string]any)
	}{
		{"every field", func(*Entry) {}, func(t *testing.T, m map[string]any) {
			want := map[string]any{"time": "2026-11-23T10:00:00.123456Z", "request_id": "0123456789abcdef0123456789abcdef",
				"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "client_ip": "10.0.0.1", "method": "GET", "path": "/api/users/42",
				"route": "api", "upstream": "users", "target": "http://127.0.0.1:9001", "status": 200.0, "bytes_in": 0.0,
				"bytes_out": 64.0, "duration_ms": 1.234, "upstream_ms": 0.987, "retries": 1.0, "user": "alice", "api_key_id": "k_123"}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %#v, want %#v", k, m[k], v)
				}
			}
			if len(m) != len(want) {
				t.Errorf("%d fields, want %d: %v", len(m), len(want), m)
			}
		}},
		{"no route, no upstream", func(e *Entry) { e.Route, e.Upstream, e.Target, e.User, e.APIKeyID, e.TraceID = "", "", "", "", "", nil },
			func(t *testing.T, m map[string]any) {
				for _, k := range []string{"upstream", "target", "upstream_ms", "retries", "user", "api_key_id", "trace_id"} {
					if _, ok := m[k]; ok {
						t.Errorf("%s present without an upstream/identity", k)
					}
				}
				if m["route"] != "" {
					t.Errorf("route = %#v, want \"\"", m["route"])
				}
			}},
		{"hostile path", func(e *Entry) { e.Path = []byte("/a\"b\\c\n\x00\x7f\xff\xfe/\u2028ü") }, func(t *testing.T, m map[string]any) {
			if want := "/a\"b\\c\n\x00\x7f\ufffd\ufffd/\u2028ü"; m["path"] != want {
				t.Errorf("path = %q, want %q", m["path"], want)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := sampleEntry()
			c.edit(&e)
			line := AppendEntry(nil, &e)
			if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("not one line: %q", line)
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("not JSON: %v: %s", err, line)
			}
			c.check(t, m)
		})
	}
}

func FuzzAppendEntry(f *testing.F) {
	f.Add([]byte("/api/x"), []byte("GET"), "route")
	f.Add([]byte("/\xff\x00\"\\"), []byte("BR\nEW"), "r\u2029")
	f.Fuzz(func(t *testing.T, path, method []byte, route string) {
		e := sampleEntry()
		e.Path, e.Method, e.Route = path, method, route
		line := AppendEntry(nil, &e)
		if !json.Valid(line) || bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("invalid line for path %q method %q route %q: %s", path, method, route, line)
		}
	})
}

func TestAppendEntryAllocatesNothing(t *testing.T) {
	e := sampleEntry()
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(1000, func() { buf = AppendEntry(buf[:0], &e) }); n != 0 {
		t.Errorf("%.1f allocations per line, want 0", n)
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", len(out)+1, err)
		}
		out = append(out, m)
	}
	return out
}

// logrotate moves the file, then SIGUSR1 makes sluice reopen it: lines
// before the move are in the old file, lines after in the new one, and
// none is lost.
func TestAccessLogReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := OpenAccessLog(path, 1, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := sampleEntry()
	for i := 0; i < 100; i++ {
		l.Log(&e)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	e.Route = "after"
	for i := 0; i < 50; i++ {
		l.Log(&e)
	}
	l.Close()
	old, cur := readLines(t, path+".1"), readLines(t, path)
	if len(old) != 100 || len(cur) != 50 {
		t.Fatalf("rotated file has %d lines, new file %d; want 100 and 50", len(old), len(cur))
	}
	if cur[0]["route"] != "after" || old[99]["route"] != "api" {
		t.Errorf("lines in the wrong file: old last %v, new first %v", old[99]["route"], cur[0]["route"])
	}
}

// A full queue drops lines and counts them; it never blocks the caller.
func TestAccessLogDropsWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	m := newTestMetrics(State{})
	l, err := OpenAccessLog(path, 1, 10, m)
	if err != nil {
		t.Fatal(err)
	}
	e := sampleEntry()
	const total = 5000
	for i := 0; i < total; i++ {
		l.Log(&e) // far faster than a 20 ms drain: the 10-line queue overflows
	}
	l.Close()
	written := len(readLines(t, path))
	queued, dropped := testutil.ToFloat64(m.accessLogLines), testutil.ToFloat64(m.accessLogDrops)
	if dropped == 0 {
		t.Fatal("no line dropped from a 10-line queue")
	}
	if int(queued) != written || int(queued+dropped) != total {
		t.Errorf("queued %v + dropped %v != %d, or written %d != queued", queued, dropped, total, written)
	}
}

func TestAccessLogSampling(t *testing.T) {
	l, err := OpenAccessLog(filepath.Join(t.TempDir(), "a.log"), 0.1, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := 0
	for i := 0; i < 20000; i++ {
		if l.Sampled(200) {
			n++
		}
		if !l.Sampled(502) {
			t.Fatal("a 5xx answer was sampled out; they are always logged")
		}
	}
	// 10% of 20000 = 2000, sd ≈ 42: ±300 is over 7 sd.
	if n < 1700 || n > 2300 {
		t.Errorf("sampled %d of 20000 at 0.1", n)
	}
}

func TestOpenAccessLogErrorNamesThePath(t *testing.T) {
	_, err := OpenAccessLog("/nonexistent-dir/x/access.log", 1, 10, nil)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent-dir/x/access.log") {
		t.Fatalf("err = %v", err)
	}
}

// BenchmarkAccessLogLine: formatting and queueing one line.
//
//	go test ./edge/observe -run '^$' -bench AccessLogLine -benchmem
func BenchmarkAccessLogLine(b *testing.B) {
	l, err := OpenAccessLog(filepath.Join(b.TempDir(), "a.log"), 1, 1<<20, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	e := sampleEntry()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Log(&e)
	}
}

// BenchmarkAppendEntry: formatting one line, without the writer.
func BenchmarkAppendEntry(b *testing.B) {
	e := sampleEntry()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendEntry(buf[:0], &e)
	}
}
