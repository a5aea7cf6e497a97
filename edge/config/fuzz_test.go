package config

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: arbitrary bytes never panic, and every failure is a
// config.Errors naming the file and a line.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("listen: ${X:-:80}\nserver: { max_body_bytes: 1MiB, read_timeout: 1s }\n"))
	f.Add([]byte("routes: [ { name: a, match: { path: /x }, upstream: u } ]\nupstreams: { u: { targets: [ { url: 'http://a:1' } ] } }"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("- 1\n- 2\n"))
	f.Add([]byte("upstreams: { u: null }"))
	f.Add([]byte("cors: { allow_origins: [\"https://*.a.example:8443\"], allow_methods: [PUT], max_age: 1m }\nsecurity_headers: { preset: strict, hsts: \"max-age=1; preload\", remove: [Server] }\nip_filter: { allow: [10.0.0.0/8, \"::1\"], deny: [10.0.0.1] }\n" + minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, env("X", "1"))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors", err)
			}
			for _, e := range errs {
				if e.Line < 1 {
					t.Fatalf("error without a line: %v", e)
				}
			}
			return
		}
		if cfg.Listen == "" || cfg.Server.MaxHeaderBytes == 0 {
			t.Fatalf("accepted config without defaults: %+v", cfg)
		}
	})
}
