package edge

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A flood of malformed requests can't flood the log: fasthttp's messages
// come out at most once a second, and the next line says how many were
// left out.
func TestFasthttpLogLinesRateLimited(t *testing.T) {
	var out bytes.Buffer
	l := &fasthttpLogger{log: slog.New(slog.NewJSONHandler(&out, nil))}
	for i := 0; i < 100; i++ {
		l.Printf("error when serving connection %d", i)
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("%d lines for 100 messages in a burst, want 1:\n%s", n, out.String())
	}
	if got := l.suppressed.Load(); got != 99 {
		t.Errorf("%d messages counted as left out, want 99", got)
	}
	l.lastAt.Store(0) // as if a second had passed
	l.Printf("one more")
	if !strings.Contains(out.String(), `"suppressed":99`) {
		t.Errorf("the next line does not say how many were left out:\n%s", out.String())
	}
}
