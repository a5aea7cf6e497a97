package admin

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/edge/config"
)

// GET /admin/config (and the console's Config and Routes pages) hide
// secrets wherever the config can hold them (review M1): route match
// values (a shared secret in a header, a token in the query, a session
// cookie) and the userinfo and query of the URLs it names.
func TestRedactMatchValuesAndURLs(t *testing.T) {
	cases := []struct {
		name   string
		set    func(*config.Config)
		secret string // must not appear
		shown  string // must appear
	}{
		{"match header", func(c *config.Config) {
			c.Routes[0].Match.Headers = map[string]string{"X-Internal": "hdr-s3cret"}
		}, "hdr-s3cret", `"X-Internal": "[redacted]"`},
		{"match query", func(c *config.Config) { c.Routes[0].Match.Query = map[string]string{"sig": "~^qry-s3cret$"} }, "qry-s3cret", `"sig": "[redacted]"`},
		{"match cookie", func(c *config.Config) { c.Routes[0].Match.Cookies = map[string]string{"beta": "ck-s3cret"} }, "ck-s3cret", `"beta": "[redacted]"`},
		{"match presence stays", func(c *config.Config) { c.Routes[0].Match.Headers = map[string]string{"X-Canary": "*"} }, "[redacted]", `"X-Canary": "*"`},
		{"jwks url query", func(c *config.Config) {
			c.Auth.JWT = &config.JWT{JWKS: &config.JWKS{URL: "https://idp.test/jwks.json?access_token=jw-s3cret"}}
		}, "jw-s3cret", `"url": "https://idp.test/jwks.json?[redacted]"`},
		{"jwks url userinfo", func(c *config.Config) {
			c.Auth.JWT = &config.JWT{JWKS: &config.JWKS{URL: "https://bob:ui-s3cret@idp.test/jwks.json"}}
		}, "ui-s3cret", `"url": "https://[redacted]@idp.test/jwks.json"`},
		{"consul address with userinfo", func(c *config.Config) { c.Consul = &config.Consul{Address: "http://u:cs-s3cret@127.0.0.1:8500"} }, "cs-s3cret", `"address": "http://[redacted]@127.0.0.1:8500"`},
		{"consul host:port with userinfo", func(c *config.Config) { c.Consul = &config.Consul{Address: "u:hp-s3cret@127.0.0.1:8500"} }, "hp-s3cret", `"address": "[redacted]@127.0.0.1:8500"`},
		{"upstream target userinfo", func(c *config.Config) {
			c.Upstreams["users"].Targets = []config.Target{{URL: "http://svc:up-s3cret@10.0.0.1:8080"}}
		}, "up-s3cret", `"url": "http://[redacted]@10.0.0.1:8080"`},
		{"otlp endpoint query", func(c *config.Config) { c.Tracing.OTLPEndpoint = "https://otel.test:4318?api_key=ot-s3cret" }, "ot-s3cret", `"otlp_endpoint": "https://otel.test:4318?[redacted]"`},
		{"plain url stays", func(c *config.Config) {
			c.Upstreams["users"].Targets = []config.Target{{URL: "http://10.0.0.1:8080"}}
		}, "[redacted]", `"url": "http://10.0.0.1:8080"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{
				Upstreams: map[string]*config.Upstream{"users": {Targets: []config.Target{{URL: "http://127.0.0.1:1"}}}},
				Routes:    []*config.Route{{Name: "r"}},
			}
			tc.set(cfg)
			before, _ := json.Marshal(cfg)
			b, err := json.MarshalIndent(Redact(cfg), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), tc.secret) {
				t.Errorf("%q shown:\n%s", tc.secret, b)
			}
			if !strings.Contains(string(b), tc.shown) {
				t.Errorf("want %s in:\n%s", tc.shown, b)
			}
			if after, _ := json.Marshal(cfg); string(after) != string(before) {
				t.Error("Redact changed the config it was given")
			}
		})
	}
}
