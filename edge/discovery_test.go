package edge

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/internal/testutil/fakeconsul"
)

func TestDiscoveredServiceWithNoInstancesAnswers503UntilOneRegisters(t *testing.T) {
	consul := fakeconsul.Start(t)
	service := fmt.Sprintf("empty-%d", time.Now().UnixNano())
	g := startGateway(t, fmt.Sprintf(`
listen: 127.0.0.1:0
admin: { listen: "off" }
consul: { address: "%s", wait: 5s }
upstreams:
  svc:
    discovery: { consul: { service: %s } }
routes:
  - { name: all, match: { prefix: / }, upstream: svc }
`, consul.Addr, service))
	wantFault(t, g.get(t, "/x"), 503, "no upstream target available")

	up := testutil.StartUpstream(t, stub.Options{Name: "found"})
	host, portStr, _ := net.SplitHostPort(up.Addr)
	port, _ := strconv.Atoi(portStr)
	client, _ := api.NewClient(&api.Config{Address: consul.Addr})
	id := service + "-1"
	if err := client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: service, Address: host, Port: port,
		Check: &api.AgentServiceCheck{HTTP: up.URL + "/healthz", Interval: "1s"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Agent().ServiceDeregister(id) })
	testutil.WaitFor(t, "the registered instance to serve", func() bool { return g.get(t, "/x").status == 200 })
	if st := g.DiscoveryStatus()["svc"]; st.Instances != 1 || st.Service != service {
		t.Errorf("discovery status %+v", st)
	}

	// A reload that keeps the same discovery keeps the watcher and targets.
	if err := g.Apply(g.Snapshot().Config); err != nil {
		t.Fatal(err)
	}
	if r := g.get(t, "/x"); r.status != 200 {
		t.Fatalf("after a reload: %d", r.status)
	}
}
