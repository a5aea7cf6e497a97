package config

import (
	"fmt"
	"slices"
	"strings"
)

// Compression compresses answers for clients that accept it (RFC 9110
// 12.5.3, Accept-Encoding). The top-level block applies to every route
// without its own; a route's block replaces it whole, and `enabled: false`
// turns compression off for the route. README "Compression" documents it.
type Compression struct {
	// Enabled: false turns the top-level block off for one route. Default
	// true wherever a block is written.
	Enabled *bool `yaml:"enabled" json:"enabled,omitempty"`
	// Algorithms sluice may use, in its order of preference when the
	// client accepts several with the same q-value: zstd, br, gzip.
	// Default [zstd, br, gzip].
	Algorithms []string `yaml:"algorithms" json:"algorithms,omitempty"`
	// Types are the media types compressed: exact ("application/json") or
	// a whole top-level type ("text/*"). Parameters (charset) are ignored.
	// Default DefaultCompressionTypes.
	Types []string `yaml:"types" json:"types,omitempty"`
	// MinSize is the smallest body compressed: below it the saving does not
	// pay for the work (and a small gzip can be larger than its input).
	// Default 1KiB. A streamed answer of unknown length is always
	// compressed.
	MinSize ByteSize `yaml:"min_size" json:"min_size,omitempty"`
	// Level is fast, default or better (each algorithm's matching level:
	// README "Compression" lists them). Default "default".
	Level string `yaml:"level" json:"level,omitempty"`
}

// On reports whether the block turns compression on.
func (c *Compression) On() bool { return c != nil && (c.Enabled == nil || *c.Enabled) }

// CompressionFor is the compression of answers of routes r (its own block,
// else the top-level one). nil: none.
func (c *Config) CompressionFor(r *Route) *Compression {
	p := c.Compression
	if r != nil && r.Compression != nil {
		p = r.Compression
	}
	if !p.On() {
		return nil
	}
	return p
}

// Compression defaults.
var (
	DefaultCompressionAlgorithms = []string{"zstd", "br", "gzip"}
	DefaultCompressionTypes      = []string{
		"text/*", "application/json", "application/javascript", "application/xml",
		"application/problem+json", "application/ld+json", "application/manifest+json",
		"application/x-ndjson", "application/graphql-response+json", "image/svg+xml",
	}
	CompressionLevels = []string{"fast", "default", "better"}
)

const DefaultCompressionMinSize = 1 << 10

// defaults fills the block's unset fields.
func (c *Compression) defaults() {
	if c == nil {
		return
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultCompressionAlgorithms
	}
	if len(c.Types) == 0 {
		c.Types = DefaultCompressionTypes
	}
	if c.MinSize == 0 {
		c.MinSize = DefaultCompressionMinSize
	}
	if c.Level == "" {
		c.Level = "default"
	}
}

// compression checks a block (top-level or a route's).
func (v *validator) compression(p string, c *Compression) {
	if c == nil || !c.On() {
		return
	}
	seen := map[string]bool{}
	for i, a := range c.Algorithms {
		fp := fmt.Sprintf("%s.algorithms[%d]", p, i)
		switch {
		case !slices.Contains(DefaultCompressionAlgorithms, a):
			v.add(fp, "unknown algorithm %q (zstd, br or gzip)", a)
		case seen[a]:
			v.add(fp, "%q is listed twice", a)
		}
		seen[a] = true
	}
	for i, t := range c.Types {
		fp := fmt.Sprintf("%s.types[%d]", p, i)
		typ, sub, ok := strings.Cut(t, "/")
		if !ok || typ == "" || sub == "" || typ == "*" || strings.ContainsAny(t, " ;,") || (strings.Contains(sub, "*") && sub != "*") {
			v.add(fp, `%q is not a media type ("type/subtype" or "type/*", no parameters)`, t)
		}
	}
	if c.MinSize < 0 {
		v.add(p+".min_size", "must not be negative")
	}
	if !slices.Contains(CompressionLevels, c.Level) {
		v.add(p+".level", "unknown level %q (fast, default or better)", c.Level)
	}
}
