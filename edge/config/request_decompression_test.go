package config

import (
	"strings"
	"testing"
)

// A bad request_decompression block is refused with file:line and field;
// a good one gets its defaults, and a route's block replaces the top-level
// one.
func TestRequestDecompressionConfig(t *testing.T) {
	src := `admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - name: r
    match: { prefix: / }
    upstream: u
    request_decompression: { algorithms: [gzip, deflate, gzip] }
  - { name: s, match: { prefix: /s/ }, upstream: u, request_decompression: { enabled: false } }
`
	_, err := Parse("d.yaml", []byte(src), nil)
	want := []string{
		`d.yaml:8: routes[0].request_decompression.algorithms[1]: unknown algorithm "deflate" (gzip, br or zstd)`,
		`d.yaml:8: routes[0].request_decompression.algorithms[2]: "gzip" is listed twice`,
		`d.yaml:9: routes[1].request_decompression.enabled: false turns off the top-level request_decompression block, and there is none`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}

	cfg, err := Parse("d.yaml", []byte(`admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
request_decompression: {}
routes:
  - { name: r, match: { prefix: / }, upstream: u }
  - { name: s, match: { prefix: /s/ }, upstream: u, request_decompression: { enabled: false } }
  - { name: g, match: { prefix: /g/ }, upstream: u, request_decompression: { algorithms: [zstd] } }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.RequestDecompressionFor(cfg.Routes[0]); d == nil || strings.Join(d.Algorithms, ",") != "gzip,br,zstd" {
		t.Errorf("defaults: %+v", d)
	}
	if cfg.RequestDecompressionFor(cfg.Routes[1]) != nil {
		t.Error("enabled: false should turn the route's decompression off")
	}
	if d := cfg.RequestDecompressionFor(cfg.Routes[2]); d == nil || strings.Join(d.Algorithms, ",") != "zstd" {
		t.Errorf("route block: %+v", d)
	}
	if cfg2, _ := Parse("d.yaml", []byte(`admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: u }
`), nil); cfg2 == nil || cfg2.RequestDecompressionFor(cfg2.Routes[0]) != nil {
		t.Error("without a block, requests should not be decoded")
	}
}

// max_window and max_concurrent: bounds with file:line; max_concurrent is
// per gateway, so a route's block may not set it; defaults 1 MiB and 64.
func TestRequestDecompressionLimitsConfig(t *testing.T) {
	_, err := Parse("d.yaml", []byte(`admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
request_decompression: { max_window: 32MiB, max_concurrent: -1 }
routes:
  - { name: r, match: { prefix: / }, upstream: u, request_decompression: { max_window: 512, max_concurrent: 8 } }
`), nil)
	want := []string{
		`d.yaml:4: request_decompression.max_window: 33554432 is outside 1KiB to 16MiB`,
		`d.yaml:4: request_decompression.max_concurrent: must be positive`,
		`d.yaml:6: routes[0].request_decompression.max_window: 512 is outside 1KiB to 16MiB`,
		`d.yaml:6: routes[0].request_decompression.max_concurrent: is per gateway: set it in the top-level request_decompression block`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	cfg, err := Parse("d.yaml", []byte(`admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - { name: r, match: { prefix: / }, upstream: u, request_decompression: {} }
  - { name: w, match: { prefix: /w/ }, upstream: u, request_decompression: { max_window: 4MiB } }
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.RequestDecompressionFor(cfg.Routes[0]); d.MaxWindow != DefaultDecompressionWindow || cfg.DecompressionConcurrency() != DefaultDecompressionConcurrent {
		t.Errorf("defaults: max_window %d, max_concurrent %d", d.MaxWindow, cfg.DecompressionConcurrency())
	}
	if d := cfg.RequestDecompressionFor(cfg.Routes[1]); d.MaxWindow != 4<<20 {
		t.Errorf("route max_window %d", d.MaxWindow)
	}
}
