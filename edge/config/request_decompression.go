package config

import (
	"fmt"
	"slices"
	"strings"
)

// RequestDecompression decodes compressed request bodies (Content-Encoding
// gzip, br or zstd) before they go upstream, for upstreams that can't. Its
// own block, not a field of Compression: that block is about answers, a
// route's copy replaces the top-level one whole, and its enabled: false
// would then also turn this off; a route wanting one without the other
// would have to spell out both. Like Compression, the top-level block
// applies to every route without its own, a route's block replaces it, and
// enabled: false turns it off for the route. README "Request
// decompression" documents it.
type RequestDecompression struct {
	// Enabled: false turns the top-level block off for one route. Default
	// true wherever a block is written.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// Algorithms are the content codings decoded; a request in another one
	// gets 415 with Accept-Encoding listing these (RFC 9110 15.5.16).
	// Default [gzip, br, zstd].
	Algorithms []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// MaxWindow is the largest decoder window a body may declare (a
	// brotli stream's window bits, RFC 7932 9.1; a zstd frame's window,
	// RFC 8878 3.1.1.1.2); above it the client gets 413 before anything
	// is decoded. A window is what one decode holds, whatever the body's
	// size: a few coded bytes can claim 16 MiB. Default 1 MiB; 1 KiB to
	// 16 MiB (zstd stops at 8 MiB, RFC 9659 3).
	MaxWindow ByteSize `yaml:"max_window" json:"max_window,omitempty"`
	// MaxConcurrent bounds the bodies the gateway decodes at once, over
	// all routes; past it a request gets 503 with Retry-After. So the
	// decoders' memory is at most max_concurrent × max_window. Top-level
	// block only. Default 64.
	MaxConcurrent int `yaml:"max_concurrent" json:"max_concurrent,omitempty"`
}

// On reports whether the block turns decompression on.
func (d *RequestDecompression) On() bool { return d != nil && (d.Enabled == nil || *d.Enabled) }

// RequestDecompressionFor is the request decompression of route r (its own
// block, else the top-level one). nil: none.
func (c *Config) RequestDecompressionFor(r *Route) *RequestDecompression {
	d := c.RequestDecompression
	if r != nil && r.RequestDecompression != nil {
		d = r.RequestDecompression
	}
	if !d.On() {
		return nil
	}
	return d
}

// DefaultDecompressionAlgorithms are the codings decoded by default.
var DefaultDecompressionAlgorithms = []string{"gzip", "br", "zstd"}

// Request decompression's window bounds and concurrency default.
const (
	// DefaultDecompressionWindow is the 8 MB every HTTP zstd decoder
	// must take (RFC 9659, updating RFC 8878's recommendation to a
	// requirement); encoders' defaults for large inputs (zstd -3: 2-8 MiB,
	// brotli -q 11: 4 MiB) fit under it.
	DefaultDecompressionWindow = 8 << 20
	MinDecompressionWindow     = 1 << 10  // zstd's smallest (RFC 8878 3.1.1.1.2)
	MaxDecompressionWindow     = 16 << 20 // brotli's largest (RFC 7932 9.1)
	// DefaultDecompressionConcurrent bounds decoder memory at 16 x 8 MiB
	// by default.
	DefaultDecompressionConcurrent = 16
)

func (d *RequestDecompression) defaults() {
	if d == nil {
		return
	}
	if len(d.Algorithms) == 0 {
		d.Algorithms = DefaultDecompressionAlgorithms
	}
	if d.MaxWindow == 0 {
		d.MaxWindow = DefaultDecompressionWindow
	}
}

// DecompressionConcurrency is the gateway's bound on bodies decoded at
// once: the top-level block's max_concurrent, else the default.
func (c *Config) DecompressionConcurrency() int {
	if d := c.RequestDecompression; d != nil && d.MaxConcurrent > 0 {
		return d.MaxConcurrent
	}
	return DefaultDecompressionConcurrent
}

// requestDecompression checks a block (top-level or a route's).
func (v *validator) requestDecompression(p string, d *RequestDecompression) {
	if d == nil || !d.On() {
		return
	}
	seen := map[string]bool{}
	for i, a := range d.Algorithms {
		fp := fmt.Sprintf("%s.algorithms[%d]", p, i)
		switch {
		case !slices.Contains(DefaultDecompressionAlgorithms, a):
			v.add(fp, "unknown algorithm %q (gzip, br or zstd)", a)
		case seen[a]:
			v.add(fp, "%q is listed twice", a)
		}
		seen[a] = true
	}
	if d.MaxWindow != 0 && (d.MaxWindow < MinDecompressionWindow || d.MaxWindow > MaxDecompressionWindow) {
		v.add(p+".max_window", "%d is outside 1KiB to 16MiB", d.MaxWindow)
	}
	switch {
	case d.MaxConcurrent < 0:
		v.add(p+".max_concurrent", "must be positive")
	case d.MaxConcurrent > 0 && strings.HasPrefix(p, "routes"):
		v.add(p+".max_concurrent", "is per gateway: set it in the top-level request_decompression block")
	}
}
