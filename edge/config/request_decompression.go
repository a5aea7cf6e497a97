package config

import (
	"fmt"
	"slices"
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

func (d *RequestDecompression) defaults() {
	if d != nil && len(d.Algorithms) == 0 {
		d.Algorithms = DefaultDecompressionAlgorithms
	}
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
}
