package config

import (
	"strings"
	"testing"
)

// A bad compression block is refused with file:line and field, every
// problem at once; a good one gets its defaults.
func TestCompressionConfig(t *testing.T) {
	src := `admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
compression:
  algorithms: [zstd, deflate, zstd]
  types: [text, "*/*", "application/json; charset=utf-8"]
  level: max
routes:
  - { name: r, match: { prefix: / }, upstream: u, compression: { enabled: false } }
  - { name: s, match: { prefix: /s/ }, upstream: u, max_body_bytes: -1 }
`
	_, err := Parse("c.yaml", []byte(src), nil)
	want := []string{
		`c.yaml:5: compression.algorithms[1]: unknown algorithm "deflate" (zstd, br or gzip)`,
		`c.yaml:5: compression.algorithms[2]: "zstd" is listed twice`,
		`c.yaml:6: compression.types[0]: "text" is not a media type ("type/subtype" or "type/*", no parameters)`,
		`c.yaml:6: compression.types[1]: "*/*" is not a media type ("type/subtype" or "type/*", no parameters)`,
		`c.yaml:6: compression.types[2]: "application/json; charset=utf-8" is not a media type ("type/subtype" or "type/*", no parameters)`,
		`c.yaml:7: compression.level: unknown level "max" (fast, default or better)`,
		`c.yaml:10: routes[1].max_body_bytes: "-1": not a size (use e.g. 16384, "16KiB", "10MiB")`,
	}
	if err == nil || strings.Join(strings.Split(err.Error(), "\n"), "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}

	cfg, err := Parse("c.yaml", []byte(`admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
compression: {}
routes:
  - { name: r, match: { prefix: / }, upstream: u }
  - { name: s, match: { prefix: /s/ }, upstream: u, compression: { enabled: false } }
  - { name: g, match: { prefix: /g/ }, upstream: u, compression: { algorithms: [gzip], level: fast } }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.CompressionFor(cfg.Routes[0])
	if c == nil || strings.Join(c.Algorithms, ",") != "zstd,br,gzip" || c.MinSize != 1024 || c.Level != "default" || len(c.Types) == 0 {
		t.Errorf("defaults: %+v", c)
	}
	if cfg.CompressionFor(cfg.Routes[1]) != nil {
		t.Error("enabled: false should turn the route's compression off")
	}
	if g := cfg.CompressionFor(cfg.Routes[2]); g == nil || strings.Join(g.Algorithms, ",") != "gzip" || g.Level != "fast" || g.MinSize != 1024 {
		t.Errorf("route block: %+v", g)
	}
}
