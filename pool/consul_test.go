package pool

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/bench/stub"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/internal/testutil/fakeconsul"
)

func consulClient(t *testing.T, addr string) *api.Client {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// registerUpstream registers u as an instance of service, with the HTTP
// check a real agent would run (1s is Consul's smallest interval).
func registerUpstream(t *testing.T, c *api.Client, service string, u *testutil.Upstream) string {
	host, portStr, _ := net.SplitHostPort(u.Addr)
	port, _ := strconv.Atoi(portStr)
	id := fmt.Sprintf("%s-%s", service, u.Addr)
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: service, Address: host, Port: port,
		Check: &api.AgentServiceCheck{HTTP: u.URL + "/healthz", Interval: "1s", Timeout: "1s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Agent().ServiceDeregister(id) })
	return id
}

type changeLog struct {
	mu   sync.Mutex
	last []TargetSpec
	n    int
}

func (c *changeLog) record(ts []TargetSpec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last, c.n = ts, c.n+1
}

func (c *changeLog) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *changeLog) urls() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ""
	for _, t := range c.last {
		s += t.URL + " "
	}
	return s
}

func TestServiceWatcherFollowsInstances(t *testing.T) {
	consul := fakeconsul.Start(t)
	client := consulClient(t, consul.Addr)
	service := fmt.Sprintf("svc-%d", time.Now().UnixNano()) // unique on a shared real agent
	a := testutil.StartUpstream(t, stub.Options{Name: "a"})
	b := testutil.StartUpstream(t, stub.Options{Name: "b"})

	var changes changeLog
	w := &ServiceWatcher{Client: client, Log: quiet(), OnChange: changes.record,
		Query: ServiceQuery{Service: service, PassingOnly: true, Scheme: "http", Wait: 5 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	known, index, err := w.Fetch(ctx)
	if err != nil || len(known) != 0 {
		t.Fatalf("first fetch: %v %v", known, err)
	}
	go w.Run(ctx, known, index)

	registerUpstream(t, client, service, a)
	bID := registerUpstream(t, client, service, b)
	both := a.URL + " " + b.URL + " "
	if a.URL > b.URL {
		both = b.URL + " " + a.URL + " "
	}
	testutil.WaitFor(t, "both instances, once their checks pass", func() bool { return changes.urls() == both })

	// A failing instance drops out once its check fails.
	a.Stop()
	testutil.WaitFor(t, "the failing instance to drop out", func() bool { return changes.urls() == b.URL+" " })

	// Deregistering removes it; none left is an empty list, not "no news".
	_ = client.Agent().ServiceDeregister(bID)
	testutil.WaitFor(t, "an empty service", func() bool { return changes.urls() == "" && changes.count() >= 3 })
	if st := w.Status(); st.Instances != 0 || st.LastIndex == 0 {
		t.Errorf("status %+v", st)
	}

	if consul.Real {
		return // a real agent can't be stopped from here
	}
	// Consul goes away: errors are reported, the last targets stay.
	seen := changes.count()
	consul.Stop()
	testutil.WaitFor(t, "the outage to show in the status", func() bool { return w.Status().LastError != "" })
	if changes.count() != seen {
		t.Fatal("a Consul outage changed the target list")
	}
	// It comes back empty (a fresh dev agent): its index starts over below
	// ours, and the watcher must reset and see new registrations.
	back := fakeconsul.StartAt(t, consul.Addr)
	c := testutil.StartUpstream(t, stub.Options{Name: "c"})
	registerUpstream(t, consulClient(t, back.Addr), service, c)
	testutil.WaitFor(t, "the watcher to recover and see the new instance", func() bool { return changes.urls() == c.URL+" " })
	if st := w.Status(); st.LastError != "" {
		t.Errorf("error not cleared after recovery: %+v", st)
	}
}

func TestTargetsFromEntries(t *testing.T) {
	entries := []*api.ServiceEntry{
		{Node: &api.Node{Address: "10.0.0.9"}, Service: &api.AgentService{Address: "10.0.0.2", Port: 8080, Weights: api.AgentWeights{Passing: 3}}},
		{Node: &api.Node{Address: "10.0.0.1"}, Service: &api.AgentService{Port: 8080}},   // node address
		{Node: &api.Node{Address: "10.0.0.1"}, Service: &api.AgentService{Port: 0}},      // no port: skipped
		{Node: &api.Node{}, Service: &api.AgentService{Address: "fe80::1", Port: 9000}},  // IPv6
		{Node: &api.Node{}, Service: &api.AgentService{Address: "10.0.0.2", Port: 8080}}, // duplicate
		{Node: &api.Node{}, Service: &api.AgentService{Address: "10.0.0.5", Port: 1, Weights: api.AgentWeights{Passing: 5000}}},
	}
	got := targetsFromEntries(entries, "http")
	want := []TargetSpec{{"http://10.0.0.1:8080", 1}, {"http://10.0.0.2:8080", 3}, {"http://10.0.0.5:1", 1000}, {"http://[fe80::1]:9000", 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}
