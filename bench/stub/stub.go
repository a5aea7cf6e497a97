package stub

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Options shape the default answer.
type Options struct {
	// Name appears in every default answer ("upstream": Name).
	Name string
	// Latency is added before every answer.
	Latency time.Duration
	// BodySize, when > 0, replaces the JSON answer with this many bytes
	// (application/octet-stream, a letter pattern).
	BodySize int
	// JSON makes the BodySize bytes API-like JSON (APIJSON), served as
	// application/json: what compression benchmarks compress.
	JSON bool
	// Status of the default answer (200 when 0).
	Status int
	// FailRatio of requests (0..1) are answered 503 instead.
	FailRatio float64
}

// Server is a running stub.
type Server struct {
	opts     Options
	srv      *fasthttp.Server
	body     []byte
	requests atomic.Int64
	status   atomic.Int32
}

// SetStatus changes the status of the default answer and of /healthz
// (tests use it to make a target fail and recover).
func (s *Server) SetStatus(code int) { s.status.Store(int32(code)) }

// New makes a stub; call Serve with a listener.
func New(o Options) *Server {
	if o.Name == "" {
		o.Name = "stub"
	}
	if o.Status == 0 {
		o.Status = fasthttp.StatusOK
	}
	s := &Server{opts: o}
	s.status.Store(int32(o.Status))
	switch {
	case o.BodySize > 0 && o.JSON:
		s.body = APIJSON(o.BodySize)
	case o.BodySize > 0:
		s.body = make([]byte, o.BodySize)
		_, _ = (&Pattern{}).Read(s.body)
	}
	s.srv = &fasthttp.Server{
		Handler:                      s.handle,
		Name:                         "stub",
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ReadBufferSize:               64 << 10,
		MaxRequestBodySize:           1 << 20,
		NoDefaultDate:                true,
		IdleTimeout:                  5 * time.Minute,
	}
	return s
}

// Serve answers on ln until Close.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Close stops the stub and closes its connections.
func (s *Server) Close() error { return s.srv.Shutdown() }

// Requests is how many requests the stub has answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Name is the stub's name.
func (s *Server) Name() string { return s.opts.Name }

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	s.requests.Add(1)
	path := string(ctx.Path())
	switch path {
	case "/healthz":
		ctx.SetStatusCode(int(s.status.Load()))
		ctx.SetContentType("text/plain")
		ctx.SetBodyString("ok\n")
		return
	case "/__stub/echo":
		s.echo(ctx)
		return
	case "/__stub/sleep":
		d, _ := time.ParseDuration(string(ctx.QueryArgs().Peek("d")))
		time.Sleep(d)
		s.answer(ctx)
		return
	case "/__stub/status":
		code, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("code")))
		if code < 100 || code > 999 {
			code = 500
		}
		ctx.SetStatusCode(code)
		if code != fasthttp.StatusNoContent && code != fasthttp.StatusNotModified {
			ctx.SetBodyString(`{"status":` + strconv.Itoa(code) + "}\n")
		} else if code == fasthttp.StatusNotModified {
			ctx.Response.SkipBody = true
		}
		return
	case "/__stub/bytes", "/__stub/stream":
		n, _ := strconv.ParseInt(string(ctx.QueryArgs().Peek("n")), 10, 64)
		ctx.SetContentType("application/octet-stream")
		if path == "/__stub/bytes" {
			ctx.SetBodyStream(io.LimitReader(&Pattern{}, n), int(n))
			return
		}
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			_, _ = io.Copy(w, io.LimitReader(&Pattern{}, n))
		})
		return
	case "/__stub/respond":
		// ?h=Name:Value (repeatable) adds response headers as they are.
		// Without allocating (no PeekMulti, no strings): the allocation
		// tests run through here.
		for k, hv := range ctx.QueryArgs().All() {
			if i := bytes.IndexByte(hv, ':'); i > 0 && string(k) == "h" {
				ctx.Response.Header.AddBytesKV(hv[:i], hv[i+1:])
			}
		}
		ctx.SetBodyString("headers set\n")
		return
	case "/__stub/close":
		ctx.SetConnectionClose()
		ctx.SetBodyString("closing\n")
		return
	case "/__stub/hangup":
		// Answer half a response head, then drop the connection.
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"))
		})
		return
	case "/__stub/garbage":
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) { _, _ = c.Write([]byte("this is not http\r\n\r\n")) })
		return
	}
	s.answer(ctx)
}

func (s *Server) answer(ctx *fasthttp.RequestCtx) {
	if s.opts.Latency > 0 {
		time.Sleep(s.opts.Latency)
	}
	if s.opts.FailRatio > 0 && rand.Float64() < s.opts.FailRatio {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString(`{"error":"injected failure"}` + "\n")
		return
	}
	ctx.SetStatusCode(int(s.status.Load()))
	if s.body != nil {
		if s.opts.JSON {
			ctx.SetContentType("application/json")
		} else {
			ctx.SetContentType("application/octet-stream")
		}
		ctx.SetBody(s.body)
		return
	}
	ctx.SetContentType("application/json")
	b := ctx.Response.Body()[:0]
	b = append(b, `{"upstream":`...)
	b = strconv.AppendQuote(b, s.opts.Name)
	b = append(b, `,"method":`...)
	b = strconv.AppendQuote(b, string(ctx.Method()))
	b = append(b, `,"uri":`...)
	b = strconv.AppendQuote(b, string(ctx.RequestURI()))
	b = append(b, "}\n"...)
	ctx.Response.SetBodyRaw(b)
}

// Echo is what /__stub/echo answers: the request as the stub received it.
type Echo struct {
	Upstream   string              `json:"upstream"`
	Method     string              `json:"method"`
	URI        string              `json:"uri"`
	Host       string              `json:"host"`
	Proto      string              `json:"proto"`
	Headers    map[string][]string `json:"headers"`
	BodyBytes  int64               `json:"body_bytes"`
	BodySHA256 string              `json:"body_sha256"`
}

func (s *Server) echo(ctx *fasthttp.RequestCtx) {
	e := Echo{
		Upstream: s.opts.Name,
		Method:   string(ctx.Method()),
		URI:      string(ctx.Request.Header.RequestURI()),
		Host:     string(ctx.Host()),
		Proto:    string(ctx.Request.Header.Protocol()),
		Headers:  map[string][]string{},
	}
	for k, v := range ctx.Request.Header.All() {
		e.Headers[string(k)] = append(e.Headers[string(k)], string(v))
	}
	h := sha256.New()
	var r io.Reader = ctx.RequestBodyStream()
	if r == nil {
		r = bytes.NewReader(ctx.Request.Body())
	}
	n, _ := io.Copy(h, r)
	e.BodyBytes = n
	e.BodySHA256 = hex.EncodeToString(h.Sum(nil))
	out, _ := json.Marshal(e)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(out, '\n'))
}

// Pattern is the endless byte source of the stub's large bodies: byte i
// of the stream is 'a'+i%26, so a receiver can check every byte with
// PatternChecker. Tests use it to generate uploads the same way.
type Pattern struct{ off int }

func (p *Pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = patternByte(p.off + i)
	}
	p.off += len(b)
	return len(b), nil
}

// PatternChecker is an io.Writer that fails at the first byte that is not
// what Pattern would have produced at that offset.
type PatternChecker struct{ off int }

func (c *PatternChecker) Write(b []byte) (int, error) {
	for i, x := range b {
		if want := patternByte(c.off + i); x != want {
			return i, fmt.Errorf("stub: byte %d is %q, want %q", c.off+i, x, want)
		}
	}
	c.off += len(b)
	return len(b), nil
}

func patternByte(i int) byte { return 'a' + byte(i%26) }
