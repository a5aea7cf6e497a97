package edge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

// sseUpstream sends one event per value received on next, flushing each
// (the WHATWG server-sent events format: "data: ...\n\n"), and ends the
// stream when the test ends.
func sseUpstream(t *testing.T, next <-chan string) *httptest.Server {
	stop := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for {
			select {
			case ev := <-next:
				fmt.Fprintf(w, "data: %s\n\n", ev)
				w.(http.Flusher).Flush()
			case <-stop:
				return
			}
		}
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() { close(stop) }) // runs first: handlers return, Close can finish
	return up
}

func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			_, _ = br.ReadString('\n') // the blank line ending the event
			return strings.TrimSpace(strings.TrimPrefix(line, "data: "))
		}
	}
}

// An event stream reaches the client as the upstream writes it: the first
// event arrives while the upstream is still waiting to send the second.
func TestEventStreamFlushedAsWritten(t *testing.T) {
	next := make(chan string, 1)
	up := sseUpstream(t, next)
	g := startGateway(t, oneUpstream(up.URL, catchAll))
	resp, err := client.Get(g.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	next <- "one"
	got := make(chan string, 1)
	go func() { got <- readEvent(t, br) }()
	select {
	case ev := <-got:
		if ev != "one" {
			t.Fatalf("event %q", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first event did not reach the client before the upstream sent the next")
	}
	next <- "two"
	if ev := readEvent(t, br); ev != "two" {
		t.Fatalf("event %q", ev)
	}
}

// A stream that lasts longer than the route timeout and the server's
// write_timeout is not cut while events keep coming.
func TestEventStreamOutlivesTimeouts(t *testing.T) {
	next := make(chan string)
	up := sseUpstream(t, next)
	cfg := strings.Replace(oneUpstream(up.URL, "  - { name: all, match: { prefix: / }, upstream: up, timeout: 500ms }\n"),
		"admin:", "server: { write_timeout: 500ms }\nadmin:", 1)
	g := startGateway(t, cfg)
	resp, err := client.Get(g.url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	start := time.Now()
	for i := 0; time.Since(start) < 1500*time.Millisecond; i++ {
		next <- fmt.Sprint(i)
		if ev := readEvent(t, br); ev != fmt.Sprint(i) {
			t.Fatalf("event %q, want %d", ev, i)
		}
		time.Sleep(100 * time.Millisecond) // the upstream's pace, not a wait for an event
	}
}

// Shutdown ends an open event stream cleanly (the closing chunk: the
// client reads a complete body) and returns without waiting for its
// deadline; the upstream is not counted as broken.
func TestEventStreamEndedOnShutdown(t *testing.T) {
	next := make(chan string, 1)
	up := sseUpstream(t, next)
	gw, err := New(mustParse(t, oneUpstream(up.URL, catchAll)), quietLogger(), "test")
	if err != nil {
		t.Fatal(err)
	}
	ln := testutil.Listen(t)
	go func() { _ = gw.Serve(ln) }()
	resp, err := client.Get("http://" + ln.Addr().String() + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	next <- "one"
	if ev := readEvent(t, br); ev != "one" {
		t.Fatalf("event %q", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v: the stream was waited for", d)
	}
	if rest, err := io.ReadAll(br); err != nil {
		t.Fatalf("stream did not end cleanly: %v (after %q)", err, rest)
	}
}
