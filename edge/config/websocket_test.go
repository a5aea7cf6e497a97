package config

import (
	"strings"
	"testing"
	"time"
)

// The websocket block: defaults once present, off when absent, and
// nonsense refused with file, line and field.
func TestWebSocketBlock(t *testing.T) {
	src := `admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - { name: a, match: { prefix: /a/ }, upstream: u, websocket: {} }
  - { name: b, match: { prefix: /b/ }, upstream: u }
  - { name: c, match: { prefix: /c/ }, upstream: u, websocket: { enabled: false } }
  - { name: d, match: { prefix: /d/ }, upstream: u, websocket: true }
  - { name: e, match: { prefix: /e/ }, upstream: u, websocket: false }
`
	c, err := Parse("w.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Routes[0].WebSocket
	if !w.On() || w.IdleTimeout.D() != 5*time.Minute || w.MaxLifetime.D() != 24*time.Hour || w.MaxTunnels != 10000 {
		t.Errorf("defaults: %+v", w)
	}
	if c.Routes[1].WebSocket.On() || c.Routes[2].WebSocket.On() || c.Routes[4].WebSocket.On() {
		t.Error("websocket on without the block, or with enabled: false, or websocket: false")
	}
	if d := c.Routes[3].WebSocket; !d.On() || d.MaxTunnels != 10000 {
		t.Errorf("websocket: true: %+v", d)
	}

	bad := `admin: { listen: "off" }
upstreams:
  u: { targets: [ { url: "http://127.0.0.1:9001" } ] }
routes:
  - name: a
    match: { prefix: /a/ }
    upstream: u
    websocket:
      idle_timeout: 10ms
      max_lifetime: 1ms
      max_tunnels: -1
`
	_, err = Parse("w.yaml", []byte(bad), nil)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`w.yaml:9: routes[0].websocket.idle_timeout: must be at least 1s`,
		`w.yaml:10: routes[0].websocket.max_lifetime: must be at least idle_timeout (10ms)`,
		`w.yaml:11: routes[0].websocket.max_tunnels: must be at least 1`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}
