package observe

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Entry is one request as the access log records it. Byte slices are read
// during Log only and may be reused by the caller afterwards.
type Entry struct {
	Time             time.Time
	RequestID        []byte
	TraceID          []byte // 32 hex digits, or empty
	ClientIP         []byte
	Method           []byte
	Path             []byte // as received, without the query (it may carry secrets)
	Route            string // "" when no route matched
	Upstream         string
	Target           string
	Status           int
	BytesIn          int64 // request body, -1 when unknown (streamed)
	BytesOut         int64 // response body, -1 when unknown (streamed, chunked)
	Duration         time.Duration
	UpstreamDuration time.Duration // all tries together
	Retries          int
	UpstreamError    string // why the upstream exchange failed after the answer began ("" none)
	User             string // JWT subject
	APIKeyID         string // never the key itself
	// TunnelClosedBy is set on the line a WebSocket tunnel writes when it
	// closes (client, upstream, idle_timeout, max_lifetime, shutdown,
	// route_removed); BytesIn and BytesOut are then the bytes relayed each
	// way.
	TunnelClosedBy string
}

// AccessLog writes one JSON line per logged request.
//
// Log formats the line on the stack and copies it, under a mutex held for
// that copy only, into the active batch; a writer goroutine swaps the
// batch for an empty one every 20 ms and writes it with one write call.
// Two batches are reused for ever, so a line costs no allocation, and
// nothing on the request path waits for the disk or wakes a goroutine.
// When the active batch already holds `buffer` lines (the writer is
// behind), the line is dropped and counted.
type AccessLog struct {
	threshold uint64 // a request is logged when rand < threshold (or status >= 500)
	all       bool
	metrics   *Metrics

	mu       sync.Mutex
	active   []byte // lines waiting for the writer
	lines    int    // how many
	maxLines int

	path   string // "" for stdout
	reopen chan chan error
	stop   chan struct{}
	done   chan struct{}
}

// flushEvery is how long a line may wait in the batch. At the default
// 8192-line batch, 400k lines/s fit before drops.
const flushEvery = 20 * time.Millisecond

// OpenAccessLog starts the writer. output is "stdout" or a file path
// (created if missing, appended to).
func OpenAccessLog(output string, sample float64, buffer int, m *Metrics) (*AccessLog, error) {
	l := &AccessLog{
		all:      sample >= 1,
		metrics:  m,
		maxLines: buffer,
		active:   make([]byte, 0, min(buffer, 4096)*256),
		reopen:   make(chan chan error),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if !l.all {
		l.threshold = uint64(sample * math.MaxUint64)
	}
	var w io.WriteCloser = nopCloser{os.Stdout}
	if output != "stdout" {
		l.path = output
		f, err := openAppend(output)
		if err != nil {
			return nil, err
		}
		w = f
	}
	go l.run(w, make([]byte, 0, cap(l.active)))
	return l, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Sampled decides whether a request with this status is logged.
func (l *AccessLog) Sampled(status int) bool {
	return l.all || status >= 500 || rand.Uint64() < l.threshold
}

// Log adds e's line to the batch, or drops it when the writer is behind.
func (l *AccessLog) Log(e *Entry) {
	var buf [1024]byte // a longer line (a very long path) grows onto the heap
	line := AppendEntry(buf[:0], e)
	l.mu.Lock()
	if l.lines >= l.maxLines {
		l.mu.Unlock()
		l.metrics.AccessLogDropped()
		return
	}
	l.active = append(l.active, line...)
	l.lines++
	l.mu.Unlock()
	l.metrics.AccessLogLine()
}

// Reopen closes and reopens the file (after logrotate moved it). No-op
// for stdout.
func (l *AccessLog) Reopen() error {
	if l.path == "" {
		return nil
	}
	errc := make(chan error, 1)
	select {
	case l.reopen <- errc:
		return <-errc
	case <-l.done:
		return nil
	}
}

// Close writes what is waiting and stops the writer.
func (l *AccessLog) Close() {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.mu.Unlock()
	<-l.done
}

func (l *AccessLog) run(w io.WriteCloser, spare []byte) {
	defer close(l.done)
	// swap takes the waiting lines and leaves spare in their place.
	write := func() {
		l.mu.Lock()
		batch := l.active
		l.active, l.lines = spare[:0], 0
		l.mu.Unlock()
		if len(batch) > 0 {
			_, _ = w.Write(batch)
		}
		spare = batch
	}
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			write()
		case errc := <-l.reopen:
			write()
			_ = w.Close()
			f, err := openAppend(l.path)
			if err != nil {
				// Keep logging somewhere rather than nowhere.
				w = nopCloser{os.Stderr}
			} else {
				w = f
			}
			errc <- err
		case <-l.stop:
			write()
			_ = w.Close()
			return
		}
	}
}

// AppendEntry appends e as one JSON line (with its newline).
func AppendEntry(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = appendTime(b, e.Time)
	b = append(b, '"')
	b = appendField(b, "request_id", e.RequestID)
	if len(e.TraceID) > 0 {
		b = appendField(b, "trace_id", e.TraceID)
	}
	b = appendField(b, "client_ip", e.ClientIP)
	b = appendField(b, "method", e.Method)
	b = appendField(b, "path", e.Path)
	b = appendStringField(b, "route", e.Route)
	if e.Upstream != "" {
		b = appendStringField(b, "upstream", e.Upstream)
	}
	if e.Target != "" {
		b = appendStringField(b, "target", e.Target)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, e.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, e.BytesOut, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, e.Duration)
	if e.Upstream != "" {
		b = append(b, `,"upstream_ms":`...)
		b = appendMillis(b, e.UpstreamDuration)
		b = append(b, `,"retries":`...)
		b = strconv.AppendInt(b, int64(e.Retries), 10)
	}
	if e.UpstreamError != "" {
		b = appendStringField(b, "upstream_error", e.UpstreamError)
	}
	if e.TunnelClosedBy != "" {
		b = appendStringField(b, "tunnel_closed_by", e.TunnelClosedBy)
	}
	if e.User != "" {
		b = appendStringField(b, "user", e.User)
	}
	if e.APIKeyID != "" {
		b = appendStringField(b, "api_key_id", e.APIKeyID)
	}
	return append(b, "}\n"...)
}

// appendTime writes t in UTC as 2006-01-02T15:04:05.000000Z, by hand:
// time.AppendFormat parses its layout on every call.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits writes v (>= 0) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var d [10]byte
	i := len(d)
	for ; width > 0 || v > 0; width-- {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[i:]...)
}

// appendMillis writes d in milliseconds with microsecond precision.
func appendMillis(b []byte, d time.Duration) []byte {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	b = strconv.AppendInt(b, us/1000, 10)
	frac := us % 1000
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b
}

func appendField(b []byte, name string, v []byte) []byte {
	return appendJSONString(appendName(b, name), v)
}

func appendStringField(b []byte, name, v string) []byte {
	return appendJSONString(appendName(b, name), v)
}

func appendName(b []byte, name string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// appendJSONString writes v as a JSON string. Control characters, quotes
// and backslashes are escaped; invalid UTF-8 (paths are client bytes)
// becomes U+FFFD so the line stays valid JSON.
func appendJSONString[T ~string | ~[]byte](b []byte, v T) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(v); {
		// Copy the run of bytes that need no escaping in one append.
		j := i
		for j < len(v) && v[j] >= 0x20 && v[j] < utf8.RuneSelf && v[j] != '"' && v[j] != '\\' && v[j] != 0x7f {
			j++
		}
		b = append(b, v[i:j]...)
		if i = j; i == len(v) {
			break
		}
		c := v[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		// At most 4 bytes: the conversion stays on the stack.
		r, size := utf8.DecodeRuneInString(string(v[i:min(i+utf8.UTFMax, len(v))]))
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == 0x2028 || r == 0x2029: // valid JSON, but not inside JavaScript
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
		default:
			b = append(b, v[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
