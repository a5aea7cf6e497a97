package edge

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	brrr "github.com/molecule-man/go-brrr"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"
)

// decompressStep decodes a request body sent with Content-Encoding gzip,
// br or zstd before it goes upstream (config.RequestDecompression), for
// upstreams that can't. The decoded size is what the route's body limit
// counts, as it is decoded: a bomb is cut off with 413 once it passes the
// limit, never decoded whole first. A decoded body up to
// buffer_body_bytes goes upstream whole with its Content-Length; a larger
// one streams chunked through the proxy step's limiter, as a large upload
// does. Memory per request is bounded by buffer_body_bytes plus one
// decoder, whose window is at most max_window: a body declaring more is
// refused with 413 before anything is decoded (a brotli stream's first
// bits, RFC 7932 9.1; every zstd frame's header, RFC 8878 3.1.1.1.2),
// since a few coded bytes from a client that then stalls would otherwise
// hold a 16 MiB window. Decodes in flight are bounded per gateway
// (max_concurrent, 503 past it), so decoders hold at most max_concurrent
// × max_window.
type decompressStep struct {
	accept    [numCodings]bool
	allowed   []byte // the Accept-Encoding of a 415: the codings decoded
	rt        *route
	timeout   time.Duration
	maxWindow int
	pools     [numCodings]*sync.Pool // zstd's is the one for maxWindow
	busy      *atomic.Int64          // the gateway's decodes in flight
	maxBusy   int64
}

var _ step = (*decompressStep)(nil)

var (
	headerContentEncoding = []byte("Content-Encoding")
	faultEncoding         = &fault{fasthttp.StatusUnsupportedMediaType, "unsupported content encoding"}
	faultCorruptBody      = &fault{fasthttp.StatusBadRequest, "request body does not decode"}
	faultWindowTooLarge   = &fault{fasthttp.StatusRequestEntityTooLarge, "request body compression window too large"}
	faultDecodersBusy     = &fault{fasthttp.StatusServiceUnavailable, "too many request bodies being decoded"}
)

// compileDecompression builds the step; busy counts the gateway's decodes
// in flight (resources.decoding), at most maxBusy.
func compileDecompression(d *config.RequestDecompression, rt *route, timeout time.Duration, busy *atomic.Int64, maxBusy int) *decompressStep {
	s := &decompressStep{rt: rt, timeout: timeout, maxWindow: int(d.MaxWindow), busy: busy, maxBusy: int64(maxBusy)}
	if s.maxWindow == 0 {
		s.maxWindow = config.DefaultDecompressionWindow
	}
	for c := range s.pools {
		s.pools[c] = decoderPool(coding(c), s.maxWindow)
	}
	for _, a := range d.Algorithms {
		c, _ := parseContentCoding([]byte(a))
		if s.accept[c] {
			continue
		}
		s.accept[c] = true
		if len(s.allowed) > 0 {
			s.allowed = append(s.allowed, ", "...)
		}
		s.allowed = append(s.allowed, codingNames[c]...)
	}
	return s
}

// parseContentCoding reads a Content-Encoding value naming exactly one
// coding (RFC 9110 8.4): gzip (or x-gzip, 8.4.1.3), br, zstd or identity,
// case-insensitive, with optional whitespace around it. ok is false for a
// list, an empty member or any other coding.
func parseContentCoding(v []byte) (c coding, ok bool) {
	v = trimOWS(v)
	switch {
	case hasByte(v, ','):
		return 0, false
	case equalFoldASCII(v, "gzip"), equalFoldASCII(v, "x-gzip"):
		return codingGzip, true
	case equalFoldASCII(v, "br"):
		return codingBr, true
	case equalFoldASCII(v, "zstd"):
		return codingZstd, true
	case equalFoldASCII(v, "identity"):
		return codingIdentity, true
	}
	return 0, false
}

func (d *decompressStep) serve(x *exchange) {
	req := &x.ctx.Request
	// Every Content-Encoding line counts, an empty one too: the raw head
	// scan counted them (a request built in memory has no raw head).
	lines := x.head.contentCodings
	if !x.rawHead {
		lines = len(req.Header.PeekAll(fasthttp.HeaderContentEncoding))
	}
	if lines == 0 {
		x.next() // the common case: no look-up at all
		return
	}
	// One line naming one coding; two lines are a list (RFC 9110 5.3),
	// and an empty value names none.
	c, ok := parseContentCoding(req.Header.PeekBytes(headerContentEncoding))
	ok = ok && lines == 1
	if !ok || (c != codingIdentity && !d.accept[c]) {
		// RFC 9110 15.5.16: 415 for a content coding not supported,
		// with Accept-Encoding naming the ones that are (12.5.3).
		x.fail(faultEncoding)
		x.ctx.Response.Header.SetCanonical(headerAcceptEncoding, d.allowed)
		if req.IsBodyStream() {
			lingerClose(x.ctx) // its body was not read: the connection can't carry another request
		}
		return
	}
	if c == codingIdentity {
		x.next()
		return
	}
	rt := d.rt
	if cl := req.Header.ContentLength(); cl > rt.maxBody {
		x.fail(faultBodyTooLarge)
		lingerClose(x.ctx)
		return
	}
	if d.busy.Add(1) > d.maxBusy {
		d.busy.Add(-1)
		x.fail(faultDecodersBusy)
		setRetryAfter(&x.ctx.Response.Header, time.Second)
		if req.IsBodyStream() {
			lingerClose(x.ctx)
		}
		return
	}
	defer d.busy.Add(-1)

	// The compressed input: a body read with the head is copied out of the
	// request (whose buffer SetBody and SetBodyStream reuse); a streamed
	// one is read through a limiter, which also counts the compressed
	// size against the limit and refreshes the read deadline.
	in := decodeBuffers.Get().(*bytebufferpool.ByteBuffer)
	defer decodeBuffers.Put(in)
	var lim *bodyLimiter
	var src io.Reader
	if req.IsBodyStream() {
		in.B = append(in.B[:0], 0) // one byte, to look for data after the end
		lim = acquireLimiter(x.ctx.RequestBodyStream(), rt.maxBody, req.Header.ContentLength(), x.ctx, d.timeout)
		defer releaseLimiter(lim)
		src = lim
	} else {
		in.B = append(in.B[:0], req.Body()...)
		if len(in.B) == 0 {
			// Nothing to decode: the upstream gets an empty body, uncoded.
			req.Header.DelBytes(headerContentEncoding)
			x.next()
			return
		}
		br := acquireBytesReader(in.B)
		defer bytesReaderPool.Put(br)
		src = br
	}

	pool := d.pools[c]
	dec := pool.Get().(decoder)
	defer releaseDecoder(pool, dec)
	out := decodeBuffers.Get().(*bytebufferpool.ByteBuffer)
	defer decodeBuffers.Put(out)
	err := dec.start(src, d.maxWindow)
	if err == nil {
		err = readUpTo(dec, out, rt.bufferBody+1)
	}
	switch {
	case err == io.EOF:
		// Decoded whole within buffer_body_bytes. Nothing may follow the
		// coded stream.
		if n, _ := src.Read(in.B[:1]); n > 0 {
			d.refuse(x, lim, errTrailingData)
			return
		}
		req.SetBody(out.B)
		req.Header.SetContentLength(len(out.B))
	case err != nil:
		d.refuse(x, lim, err)
		return
	case len(out.B) > rt.maxBody:
		x.fail(faultBodyTooLarge) // decoded, it is already over the limit
		lingerClose(x.ctx)
		return
	default:
		// More than buffer_body_bytes: the rest is decoded as it goes
		// upstream, chunked; the proxy step's limiter cuts it at the limit.
		s := decodeStreamPool.Get().(*decodeStream)
		s.prefix, s.dec, s.lim = out.B, dec, lim
		defer releaseDecodeStream(s)
		req.SetBodyStream(s, -1)
	}
	req.Header.DelBytes(headerContentEncoding)
	x.next()
}

// decodeBuffers hold a request's coded and decoded bodies (each at most
// buffer_body_bytes and a byte: larger ones stream). Not the shared
// bytebufferpool: it calibrates on every small buffer the process uses
// and drops larger ones on Put, so each decode grew new buffers append by
// append, depending on what else the process did.
var decodeBuffers = sync.Pool{New: func() any { return new(bytebufferpool.ByteBuffer) }}

var errTrailingData = errors.New("edge: data after the end of a compressed request body")

// refuse answers a failed decode: 413 when the compressed input itself
// passed the limit, 400 when the client's connection failed, else 400 for
// a body that does not decode.
func (d *decompressStep) refuse(x *exchange, lim *bodyLimiter, err error) {
	switch {
	case errors.Is(err, errWindowTooLarge), errors.Is(err, zstd.ErrWindowSizeExceeded):
		x.fail(faultWindowTooLarge)
		if lim != nil {
			lingerClose(x.ctx) // the rest of the body was not read
		}
	case lim != nil && lim.tooLarge:
		x.fail(faultBodyTooLarge)
		lingerClose(x.ctx)
	case lim != nil && lim.clientErr != nil:
		x.fail(faultClientBody)
		x.ctx.SetConnectionClose()
	default:
		x.fail(faultCorruptBody)
		if lim != nil {
			lingerClose(x.ctx) // the rest of the body was not read
		}
	}
}

// readUpTo decodes from r into b until r ends (io.EOF), fails, or b holds
// max bytes (nil). b grows as the body does, never to max at once.
func readUpTo(r io.Reader, b *bytebufferpool.ByteBuffer, max int) error {
	b.B = b.B[:0]
	for len(b.B) < max {
		if len(b.B) == cap(b.B) {
			b.B = append(b.B, 0)[:len(b.B)]
		}
		end := min(cap(b.B), max)
		n, err := r.Read(b.B[len(b.B):end])
		b.B = b.B[:len(b.B)+n]
		if err != nil {
			return err
		}
	}
	return nil
}

// decoder is what gzip.Reader, zstd.Decoder and brrr.Reader have in
// common: start reads the stream's header from src (gzip and zstd check
// theirs, brotli its window bits against maxWindow) and clear lets go of
// the request's source before pooling.
type decoder interface {
	io.Reader
	start(src io.Reader, maxWindow int) error
	// clear drops the source; false: the decoder held a window larger
	// than the default, and is left to the collector instead of pooled.
	clear() (pool bool)
}

var errWindowTooLarge = errors.New("edge: compressed request body declares a window above max_window")

// releaseDecoder clears dec and pools it. A pooled decoder must hold no
// reference to a released request: its source is a pooled limiter or
// reader that the next request reuses, and reading it after release would
// hand one request's body to another.
func releaseDecoder(pool *sync.Pool, dec decoder) {
	if dec.clear() {
		pool.Put(dec)
	}
}

// emptyGzip is a whole gzip stream of nothing: what a released gzip
// decoder is reset onto.
var emptyGzip = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// ownReader is a decoder's own empty source. It hides bytes.Reader's
// ReadByte so that gzip.Reader resets its bufio.Reader onto it too,
// dropping the last request's source from both.
type ownReader struct{ r bytes.Reader }

func (o *ownReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// gzipDecoder: deflate's window is 32 KiB (RFC 1951 2), below any
// max_window.
type gzipDecoder struct {
	gzip.Reader
	empty ownReader
}

func (g *gzipDecoder) start(src io.Reader, _ int) error { return g.Reader.Reset(src) }

// clear resets the reader onto its own empty stream: gzip.Reader has no
// Reset(nil), and a failed header read would leave its inflater on the
// old source.
func (g *gzipDecoder) clear() bool {
	g.empty.r.Reset(emptyGzip)
	_ = g.Reader.Reset(&g.empty)
	return true
}

// zstdDecoder was built for one max_window (decoderPool): the decoder
// refuses every frame whose window is larger (zstd.ErrWindowSizeExceeded),
// whatever frame it is in the body.
type zstdDecoder struct {
	*zstd.Decoder
	pooled bool // its window is at most the default
}

func (z zstdDecoder) start(src io.Reader, _ int) error { return z.Decoder.Reset(src) }

// clear: Reset(nil) drops the source and the decoded output.
func (z zstdDecoder) clear() bool { _ = z.Decoder.Reset(nil); return z.pooled }

type brDecoder struct {
	*brrr.Reader
	in    headReader // the source, behind the byte start read
	empty ownReader
	big   bool // the last stream declared a window above max_window (refused, never sized)
}

// start reads the stream's first byte for its window (one brotli stream
// per body: the window can't change after it) and refuses one above
// maxWindow before the decoder sizes its ring buffer to it.
func (b *brDecoder) start(src io.Reader, maxWindow int) error {
	b.in = headReader{r: src}
	if n, err := io.ReadFull(src, b.in.head[:]); n == 0 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	b.in.n = 1
	w := brotliWindow(b.in.head[0])
	b.big = w > maxWindow
	if w > maxWindow {
		return errWindowTooLarge
	}
	b.Reader.Reset(&b.in)
	return nil
}

// clear drops the source for the decoder's own empty one, never nil, so
// a stray Read fails instead of panicking. A decoder that held a large
// ring buffer is not pooled.
func (b *brDecoder) clear() bool {
	b.in = headReader{}
	b.empty.r.Reset(nil)
	b.Reader.Reset(&b.empty)
	return !b.big
}

// headReader gives back the byte read ahead, then reads r.
type headReader struct {
	head [1]byte
	n    int
	r    io.Reader
}

func (h *headReader) Read(p []byte) (int, error) {
	if h.n > 0 && len(p) > 0 {
		p[0], h.n = h.head[0], 0
		return 1, nil
	}
	return h.r.Read(p)
}

// brotliWindow is the window a brotli stream declares in its first bits
// (RFC 7932 9.1, WBITS, read from the least significant bit): 2^WBITS -
// 16 bytes. The pattern reserved there (and used by large-window brotli,
// up to 2^30) counts as larger than any max_window.
func brotliWindow(b byte) int {
	wbits := 16
	switch {
	case b&1 == 0:
	case b>>1&7 != 0:
		wbits = 17 + int(b>>1&7)
	case b>>4&7 == 0:
		wbits = 17
	case b>>4&7 == 1:
		return 1 << 30
	default:
		wbits = 8 + int(b>>4&7)
	}
	return 1<<wbits - 16
}

// decoderPools keep warm decoders of gzip and br for every route and
// snapshot; zstd's are per max_window (decoderPool).
var decoderPools = [numCodings]*sync.Pool{
	codingGzip: {New: func() any {
		g := new(gzipDecoder)
		g.Multistream(true)
		return g
	}},
	codingBr: {New: func() any { return &brDecoder{Reader: brrr.NewReader(nil)} }},
}

var (
	zstdPoolsMu sync.Mutex
	zstdPools   = map[int]*sync.Pool{}
)

// decoderPool is the pool of coding c's decoders for routes with window
// max_window; zstd's decoders are built for it. Called when a snapshot is
// built, not per request.
func decoderPool(c coding, window int) *sync.Pool {
	if c != codingZstd {
		return decoderPools[c]
	}
	// RFC 9659 3: 8 MiB is the most a zstd content coding may need.
	window = min(window, 8<<20)
	zstdPoolsMu.Lock()
	defer zstdPoolsMu.Unlock()
	if p := zstdPools[window]; p != nil {
		return p
	}
	p := &sync.Pool{New: func() any {
		// Synchronous (no goroutines), low memory, and no window above
		// max_window, in any frame of the body.
		z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(uint64(window)))
		if err != nil {
			panic("edge: zstd decoder options: " + err.Error()) // validated window
		}
		return zstdDecoder{z, true}
	}}
	zstdPools[window] = p
	return p
}

var bytesReaderPool = sync.Pool{New: func() any { return new(bytes.Reader) }}

func acquireBytesReader(b []byte) *bytes.Reader {
	r := bytesReaderPool.Get().(*bytes.Reader)
	r.Reset(b)
	return r
}

// decodeStream is a decoded body larger than buffer_body_bytes: the part
// decoded already, then the rest as the upstream reads it. A failure of
// the client's input is reported as such, so the proxy step's limiter
// answers 413 or 400 for it instead of blaming the upstream.
type decodeStream struct {
	prefix []byte
	dec    io.Reader
	lim    *bodyLimiter // the compressed input's, nil when it was in memory
}

var decodeStreamPool = sync.Pool{New: func() any { return new(decodeStream) }}

func releaseDecodeStream(s *decodeStream) {
	*s = decodeStream{}
	decodeStreamPool.Put(s)
}

func (s *decodeStream) Read(p []byte) (int, error) {
	if len(s.prefix) > 0 {
		n := copy(p, s.prefix)
		s.prefix = s.prefix[n:]
		return n, nil
	}
	n, err := s.dec.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return n, errBodyTooLarge // a later frame's window is above max_window
	}
	if err != nil && err != io.EOF && s.lim != nil {
		switch {
		case s.lim.tooLarge:
			err = errBodyTooLarge
		case s.lim.clientErr != nil:
			err = errClientBody
		}
	}
	return n, err
}
