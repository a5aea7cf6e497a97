package edge

import (
	"bytes"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	brrr "github.com/molecule-man/go-brrr"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/pool"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// compressPolicy is a compression block (config.Compression) compiled:
// the codings in sluice's order, a pool of encoders for each at the
// block's level, and the media types as byte slices.
type compressPolicy struct {
	offered []coding
	enc     [numCodings]*sync.Pool // of encoder; nil for codings not offered
	types   [][]byte               // exact media types, lower case
	majors  [][]byte               // "text/" for "text/*"
	minSize int
}

// compressStep compresses its route's answers (buffered or streamed) for
// clients that accept it. It runs just before the proxy step, so every
// answer of the route passes through it, refusals included (most are
// below min_size).
type compressStep struct{ p *compressPolicy }

var _ step = compressStep{}

// encoder is what gzip.Writer, zstd.Encoder and brrr.Writer have in common.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
	Reset(io.Writer)
}

var (
	_ encoder = (*gzip.Writer)(nil)
	_ encoder = (*zstd.Encoder)(nil)
	_ encoder = (*brrr.Writer)(nil)
)

var (
	headerAcceptEncoding = []byte("Accept-Encoding")
	headerETag           = []byte("ETag")
	tokenNoTransform     = []byte("no-transform")
)

// encoderPools are shared by every policy (and snapshot) with the same
// coding and level, so a reload keeps warm encoders. Guarded by
// encoderPoolsMu at snapshot build; the request path only holds the pools.
var (
	encoderPoolsMu sync.Mutex
	encoderPools   = map[[2]int]*sync.Pool{}
)

// levels: each algorithm's level for fast, default and better. gzip 5 and
// brotli 4 are what nginx and Caddy users settle on for dynamic answers:
// most of the ratio of the higher levels at a fraction of the CPU
// (bench/README.md has the numbers).
var (
	levelNames = map[string]int{"fast": 0, "default": 1, "better": 2}
	gzipLevels = [3]int{1, 5, 7}
	brLevels   = [3]int{1, 4, 6}
	zstdLevels = [3]zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression}
)

func encoderPool(c coding, level int) *sync.Pool {
	encoderPoolsMu.Lock()
	defer encoderPoolsMu.Unlock()
	k := [2]int{int(c), level}
	if p := encoderPools[k]; p != nil {
		return p
	}
	var newEnc func() any
	switch c {
	case codingGzip:
		newEnc = func() any { w, _ := gzip.NewWriterLevel(io.Discard, gzipLevels[level]); return w }
	case codingBr:
		// A 1 MiB window (not the default 4 MiB) bounds an encoder's memory.
		newEnc = func() any {
			w, _ := brrr.NewWriterOptions(io.Discard, brLevels[level], brrr.WriterOptions{LGWin: 20})
			return w
		}
	case codingZstd:
		newEnc = func() any {
			w, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstdLevels[level]), zstd.WithEncoderConcurrency(1),
				zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
			return w
		}
	}
	p := &sync.Pool{New: newEnc}
	encoderPools[k] = p
	return p
}

// compileCompression compiles a validated, defaulted block.
func compileCompression(c *config.Compression) *compressPolicy {
	p := &compressPolicy{minSize: int(c.MinSize)}
	level := levelNames[c.Level]
	for _, a := range c.Algorithms {
		var cd coding
		switch a {
		case "gzip":
			cd = codingGzip
		case "br":
			cd = codingBr
		case "zstd":
			cd = codingZstd
		}
		p.offered = append(p.offered, cd)
		p.enc[cd] = encoderPool(cd, level)
	}
	for _, t := range c.Types {
		t = lowerASCII(t)
		if major, ok := bytes.CutSuffix([]byte(t), []byte("*")); ok {
			p.majors = append(p.majors, major)
		} else {
			p.types = append(p.types, []byte(t))
		}
	}
	return p
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (c compressStep) serve(x *exchange) {
	h := &x.ctx.Request.Header
	best, refused := codingIdentity, false
	if ae := h.PeekBytes(headerAcceptEncoding); len(ae) > 0 {
		a := parseAcceptEncoding(ae)
		best, refused = a.choose(c.p.offered)
	}
	head := h.IsHead()
	x.next()
	c.p.apply(x, best, refused, head)
}

// apply compresses the answer with cd when it should be: a 2xx other than
// 204 and 206 (or a 4xx/5xx: any status with content), not already
// encoded (never twice), of a listed type and at least min_size (both
// waived when the client refused identity, RFC 9110 12.5.3), not marked
// no-transform (RFC 9111 5.2.2.6). Every answer of a listed type varies
// on Accept-Encoding and says so (RFC 9110 12.5.5), compressed or not.
// A HEAD gets the headers its GET would (applyHead).
func (p *compressPolicy) apply(x *exchange, cd coding, refused, head bool) {
	resp := &x.ctx.Response
	r := &resp.Header
	switch s := resp.StatusCode(); {
	case s < 200, s == fasthttp.StatusNoContent, s == fasthttp.StatusPartialContent, s == fasthttp.StatusNotModified:
		return
	}
	if len(r.ContentEncoding()) > 0 {
		return // the upstream's own coding (its Vary is its own business)
	}
	if !refused && !p.compressible(r.ContentType()) {
		return
	}
	addVary(r, headerAcceptEncoding)
	if cd == codingIdentity {
		return
	}
	if _, cc := findHeader(r, "cache-control"); hasToken(cc, tokenNoTransform) {
		return
	}
	if k, _ := findHeader(r, "content-range"); k != nil {
		return
	}
	if head {
		p.applyHead(r, cd, refused)
		return
	}
	if resp.IsBodyStream() {
		if cl := r.ContentLength(); cl >= 0 && cl < p.minSize && !refused {
			return
		}
		f := acquireCompressFilter(p.enc[cd])
		if !pool.FilterStream(resp, f) {
			f.Done()
			return
		}
		r.SetContentLength(-1) // re-framed as chunked
		markEncoded(r, cd)
		return
	}
	body := resp.Body()
	if len(body) == 0 || (len(body) < p.minSize && !refused) {
		return
	}
	buf := bytebufferpool.Get()
	e := p.enc[cd].Get().(encoder)
	e.Reset(buf)
	_, err := e.Write(body)
	if err == nil {
		err = e.Close()
	}
	p.enc[cd].Put(e)
	// A coding that makes it larger (already-compressed bytes under a
	// text type) is not used, unless the client refused identity.
	if err == nil && (len(buf.B) < len(body) || refused) {
		resp.SetBody(buf.B)
		markEncoded(r, cd)
	}
	bytebufferpool.Put(buf)
}

// applyHead gives a HEAD the header fields the GET would get (RFC 9110
// 9.3.2): the same decision as for a GET, on the length the upstream's
// HEAD answer declares instead of a body (0: the GET's body would be
// empty, never encoded; absent: unknown, as for a stream, encoded). The
// upstream's Content-Length is the identity length, not the encoded one,
// which sluice can't know without the body: it is dropped, as RFC 9110
// 8.6 lets a HEAD answer do. Only the "would grow" fallback of a
// buffered GET (already-compressed bytes under a text type) can't be
// foreseen: there the HEAD says encoded and the GET is not.
func (p *compressPolicy) applyHead(r *fasthttp.ResponseHeader, cd coding, refused bool) {
	if cl := r.ContentLength(); cl == 0 || (cl > 0 && cl < p.minSize && !refused) {
		return
	}
	r.Del(fasthttp.HeaderContentLength)
	markEncoded(r, cd)
}

// markEncoded sets Content-Encoding, weakens a strong ETag (the encoded
// representation is not byte-identical to the one the upstream tagged,
// RFC 9110 8.8.1 and 8.8.3.3) and drops Accept-Ranges (ranges of the
// encoded bytes are not the upstream's).
func markEncoded(r *fasthttp.ResponseHeader, cd coding) {
	r.SetContentEncodingBytes(codingNames[cd])
	var kb [32]byte
	if k, _ := findHeader(r, "accept-ranges"); k != nil {
		r.DelBytes(append(kb[:0], k...))
	}
	if k, etag := findHeader(r, "etag"); len(etag) > 0 && etag[0] == '"' {
		buf := bytebufferpool.Get()
		buf.B = append(append(buf.B[:0], "W/"...), etag...)
		r.DelBytes(append(kb[:0], k...))
		r.SetCanonical(headerETag, buf.B)
		bytebufferpool.Put(buf)
	}
}

// findHeader finds a header by its lower-case name, whatever case the
// upstream wrote it in: fasthttp normalizes names it parses ("ETag"
// becomes "Etag"), but a stored entry's fields are written back with
// normalizing off (their case as stored), so the compare ignores case.
// Both slices alias the header.
func findHeader(r *fasthttp.ResponseHeader, lower string) (key, value []byte) {
	for k, v := range r.All() {
		if equalFoldASCII(k, lower) {
			return k, v
		}
	}
	return nil, nil
}

// compressible reports whether a Content-Type's media type (parameters
// dropped, case ignored) is listed.
func (p *compressPolicy) compressible(ct []byte) bool {
	ct, _ = cutByte(ct, ';')
	ct = trimOWS(ct)
	if len(ct) == 0 || len(ct) > 127 {
		return false
	}
	var buf [128]byte
	mt := buf[:len(ct)]
	for i, c := range ct {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		mt[i] = c
	}
	for _, t := range p.types {
		if string(t) == string(mt) {
			return true
		}
	}
	for _, m := range p.majors {
		if len(mt) > len(m) && string(mt[:len(m)]) == string(m) {
			return true
		}
	}
	return false
}

// compressFilter compresses a streamed answer as it is relayed
// (pool.FilterStream): each read from the upstream is compressed and
// flushed, so a slow stream (server-sent events, a long poll) reaches the
// client as it comes instead of waiting for a full compression block.
// Memory per stream: the 16 KiB input buffer, the pending output and one
// pooled encoder.
type compressFilter struct {
	src  io.Reader
	enc  encoder
	pool *sync.Pool
	out  []byte // compressed, not yet given to the client
	off  int
	done bool
	in   [16 << 10]byte
}

var compressFilterPool = sync.Pool{New: func() any { return new(compressFilter) }}

var _ pool.StreamFilter = (*compressFilter)(nil)

func acquireCompressFilter(encoders *sync.Pool) *compressFilter {
	f := compressFilterPool.Get().(*compressFilter)
	f.pool, f.enc = encoders, encoders.Get().(encoder)
	f.enc.Reset(f)
	return f
}

func (f *compressFilter) Start(src io.Reader) { f.src = src }

// Write collects the encoder's output.
func (f *compressFilter) Write(b []byte) (int, error) {
	f.out = append(f.out, b...)
	return len(b), nil
}

func (f *compressFilter) Read(p []byte) (int, error) {
	for f.off == len(f.out) {
		if f.done {
			return 0, io.EOF
		}
		f.out, f.off = f.out[:0], 0
		n, err := f.src.Read(f.in[:])
		if n > 0 {
			if _, werr := f.enc.Write(f.in[:n]); werr != nil {
				return 0, werr
			}
		}
		switch {
		case err == io.EOF:
			if cerr := f.enc.Close(); cerr != nil {
				return 0, cerr
			}
			f.done = true
		case err != nil:
			// The upstream broke off: so does the client's stream (a
			// closing frame now would make a cut body look complete).
			return 0, err
		case n > 0:
			if ferr := f.enc.Flush(); ferr != nil {
				return 0, ferr
			}
		}
	}
	n := copy(p, f.out[f.off:])
	f.off += n
	return n, nil
}

// Done returns the encoder and the filter to their pools. An output
// buffer grown by a burst is dropped rather than kept.
func (f *compressFilter) Done() {
	if f.enc != nil {
		f.enc.Reset(io.Discard)
		f.pool.Put(f.enc)
	}
	out := f.out[:0]
	if cap(out) > 256<<10 {
		out = nil
	}
	f.src, f.enc, f.pool, f.out, f.off, f.done = nil, nil, nil, out, 0, false
	compressFilterPool.Put(f)
}
