package edge

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
)

// server.redirect_https: a plain request gets 308 to the same host, path
// and query over https (the method and body are kept by 308 clients); the
// TLS listener serves; the data-plane metrics stay reachable over plain
// HTTP for the scraper.
func TestRedirectPlainToHTTPS(t *testing.T) {
	ca := testutil.NewCA(t, "edge")
	leaf := ca.Issue(t, testutil.LeafOptions{Name: "site", DNS: []string{"a.example"}})
	up := testutil.StartUpstream(t, stub.Options{Name: "tls-only"})
	yaml := strings.Replace(tlsListenerConfig(up.URL, leaf), "admin:", "server: { redirect_https: { port: 8443 } }\nadmin:", 1)
	g, addr := startTLSGateway(t, yaml)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for host, want := range map[string]string{
		"a.example:8080": "https://a.example:8443/p/a%20b?q=1&r=%20",
		"[::1]:8080":     "https://[::1]:8443/p/a%20b?q=1&r=%20",
	} {
		req, _ := http.NewRequest("POST", g.url+"/p/a%20b?q=1&r=%20", strings.NewReader("body"))
		req.Host = host
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("Host %s: %d Location %q, want 308 %q", host, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if up.Requests() != 0 {
		t.Errorf("%d plain requests reached the upstream", up.Requests())
	}
	if r := g.get(t, "/metrics"); r.status != 200 {
		t.Errorf("/metrics over plain HTTP: %d", r.status)
	}
	resp, err := tlsClient(ca, true).Get("https://" + addr + "/__stub/echo")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("over TLS: %v %v", resp, err)
	}
	resp.Body.Close()
}
