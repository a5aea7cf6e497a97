package fakeconsul

import (
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

// Server is a running fake.
type Server struct {
	// Addr is host:port of the HTTP API.
	Addr string
	// Real is true when Addr is a real agent (CONSUL_HTTP_ADDR).
	Real bool

	ln      net.Listener
	srv     *http.Server
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every write
	index   uint64
	kv      map[string]*kvEntry
	svcs    map[string]*service
	stopped chan struct{}
}

type kvEntry struct {
	value                    []byte
	createIndex, modifyIndex uint64
}

type service struct {
	reg        registration
	status     string // passing, critical
	stopCheck  chan struct{}
	checkURL   string
	checkEvery time.Duration
}

// registration is the part of an agent service registration sluice's
// code sends.
type registration struct {
	ID      string
	Name    string
	Tags    []string
	Address string
	Port    int
	Weights *struct{ Passing, Warning int }
	Check   *struct {
		HTTP     string
		Interval string
		Timeout  string
		Status   string
	}
}

// Start returns a real agent when CONSUL_HTTP_ADDR is set, else starts a
// fake on a free loopback port. Either way it is stopped, or cleaned up,
// when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if addr := os.Getenv("CONSUL_HTTP_ADDR"); addr != "" {
		u := strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
		return &Server{Addr: u, Real: true}
	}
	return StartAt(t, "127.0.0.1:0")
}

// StartAt starts a fake on addr (to bring one back on the same port after
// Stop, with its state lost, as a restarted dev agent would be).
func StartAt(t testing.TB, addr string) *Server {
	t.Helper()
	ln := testutil.ListenRetry(t, addr)
	s := &Server{
		Addr: ln.Addr().String(), ln: ln, changed: make(chan struct{}), index: 1,
		kv: map[string]*kvEntry{}, svcs: map[string]*service{}, stopped: make(chan struct{}),
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the fake down (Consul going away). Blocked queries end.
func (s *Server) Stop() {
	if s.Real {
		return
	}
	select {
	case <-s.stopped:
		return
	default:
	}
	close(s.stopped)
	s.mu.Lock()
	for _, svc := range s.svcs {
		close(svc.stopCheck)
	}
	s.svcs = map[string]*service{}
	s.mu.Unlock()
	_ = s.srv.Close()
}

// bump moves the index forward and wakes blocked queries. Call with mu.
func (s *Server) bump() uint64 {
	s.index++
	close(s.changed)
	s.changed = make(chan struct{})
	return s.index
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Consul-KnownLeader", "true")
	w.Header().Set("X-Consul-LastContact", "0")
	q := r.URL.Query()
	if dc := q.Get("dc"); dc != "" && dc != "dc1" {
		http.Error(w, "No path to datacenter", http.StatusInternalServerError)
		return
	}
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/v1/health/service/") && r.Method == http.MethodGet:
		name := strings.TrimPrefix(path, "/v1/health/service/")
		s.block(r, q)
		s.serviceHealth(w, name, q)
	case strings.HasPrefix(path, "/v1/kv/"):
		key := strings.TrimPrefix(path, "/v1/kv/")
		switch r.Method {
		case http.MethodGet:
			s.block(r, q)
			s.kvGet(w, key)
		case http.MethodPut:
			s.kvPut(w, r, key, q)
		case http.MethodDelete:
			s.mu.Lock()
			delete(s.kv, key)
			s.bump()
			s.mu.Unlock()
			writeJSON(w, s.currentIndex(), true)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	case path == "/v1/agent/service/register" && r.Method == http.MethodPut:
		s.register(w, r)
	case strings.HasPrefix(path, "/v1/agent/service/deregister/") && r.Method == http.MethodPut:
		s.deregister(strings.TrimPrefix(path, "/v1/agent/service/deregister/"))
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "fakeconsul: not implemented: "+r.Method+" "+path, http.StatusNotFound)
	}
}

// block waits, as a Consul blocking query does, while ?index= is not
// behind the current index, for at most ?wait= (default 5m, as Consul's).
func (s *Server) block(r *http.Request, q url.Values) {
	idx, err := strconv.ParseUint(q.Get("index"), 10, 64)
	if err != nil || idx == 0 {
		return
	}
	wait := 5 * time.Minute
	if ws := q.Get("wait"); ws != "" {
		if d, err := time.ParseDuration(ws); err == nil {
			wait = d
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		cur, ch := s.index, s.changed
		s.mu.Unlock()
		if cur > idx {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-r.Context().Done():
			return
		case <-s.stopped:
			return
		}
	}
}

func (s *Server) currentIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

func writeJSON(w http.ResponseWriter, index uint64, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Consul-Index", strconv.FormatUint(index, 10))
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serviceHealth(w http.ResponseWriter, name string, q url.Values) {
	_, passingOnly := q["passing"]
	tag := q.Get("tag")
	s.mu.Lock()
	type node struct{ Node, Address, Datacenter string }
	type svc struct {
		ID, Service string
		Tags        []string
		Address     string
		Port        int
		Weights     struct{ Passing, Warning int }
	}
	type check struct{ CheckID, Name, Status, ServiceID, ServiceName string }
	type entry struct {
		Node    node
		Service svc
		Checks  []check
	}
	out := []entry{}
	ids := slices.Sorted(maps.Keys(s.svcs))
	for _, id := range ids {
		sv := s.svcs[id]
		if sv.reg.Name != name || (passingOnly && sv.status != "passing") || (tag != "" && !contains(sv.reg.Tags, tag)) {
			continue
		}
		e := entry{
			Node:    node{Node: "fake-node", Address: "127.0.0.1", Datacenter: "dc1"},
			Service: svc{ID: sv.reg.ID, Service: sv.reg.Name, Tags: sv.reg.Tags, Address: sv.reg.Address, Port: sv.reg.Port},
			Checks:  []check{{CheckID: "service:" + sv.reg.ID, Name: "http", Status: sv.status, ServiceID: sv.reg.ID, ServiceName: sv.reg.Name}},
		}
		e.Service.Weights.Passing, e.Service.Weights.Warning = 1, 1
		if sv.reg.Weights != nil {
			e.Service.Weights.Passing, e.Service.Weights.Warning = sv.reg.Weights.Passing, sv.reg.Weights.Warning
		}
		out = append(out, e)
	}
	idx := s.index
	s.mu.Unlock()
	writeJSON(w, idx, out)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) kvGet(w http.ResponseWriter, key string) {
	s.mu.Lock()
	e, ok := s.kv[key]
	idx := s.index
	s.mu.Unlock()
	if !ok {
		w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
		w.WriteHeader(http.StatusNotFound)
		return
	}
	type pair struct {
		Key                      string
		Value                    []byte // base64 in JSON, as Consul sends it
		Flags                    uint64
		CreateIndex, ModifyIndex uint64
		LockIndex                uint64
	}
	writeJSON(w, idx, []pair{{Key: key, Value: e.value, CreateIndex: e.createIndex, ModifyIndex: e.modifyIndex}})
}

func (s *Server) kvPut(w http.ResponseWriter, r *http.Request, key string, q url.Values) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 512<<10+1))
	if err != nil || len(body) > 512<<10 {
		http.Error(w, "Value exceeds 524288 byte limit", http.StatusRequestEntityTooLarge)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, exists := s.kv[key]
	if casStr, ok := q["cas"]; ok {
		cas, _ := strconv.ParseUint(casStr[0], 10, 64)
		// cas=0: create only; else the ModifyIndex must match.
		if (cas == 0 && exists) || (cas != 0 && (!exists || e.modifyIndex != cas)) {
			w.Header().Set("X-Consul-Index", strconv.FormatUint(s.index, 10))
			_, _ = io.WriteString(w, "false")
			return
		}
	}
	idx := s.bump()
	if !exists {
		e = &kvEntry{createIndex: idx}
		s.kv[key] = e
	}
	e.value, e.modifyIndex = body, idx
	w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
	_, _ = io.WriteString(w, "true")
}

// SetKV writes a key directly (test setup).
func (s *Server) SetKV(key string, value []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.bump()
	e, ok := s.kv[key]
	if !ok {
		e = &kvEntry{createIndex: idx}
		s.kv[key] = e
	}
	e.value, e.modifyIndex = value, idx
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var reg registration
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&reg); err != nil || reg.Name == "" {
		http.Error(w, "Request decode failed", http.StatusBadRequest)
		return
	}
	if reg.ID == "" {
		reg.ID = reg.Name
	}
	s.deregister(reg.ID) // re-registration replaces
	sv := &service{reg: reg, status: "passing", stopCheck: make(chan struct{})}
	if c := reg.Check; c != nil && c.HTTP != "" {
		sv.status = "critical" // as Consul: critical until the first pass
		if c.Status != "" {
			sv.status = c.Status
		}
		sv.checkURL = c.HTTP
		sv.checkEvery, _ = time.ParseDuration(c.Interval)
		if sv.checkEvery <= 0 {
			sv.checkEvery = 10 * time.Second
		}
	}
	s.mu.Lock()
	s.svcs[reg.ID] = sv
	s.bump()
	s.mu.Unlock()
	if sv.checkURL != "" {
		go s.runCheck(sv)
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) deregister(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv, ok := s.svcs[id]; ok {
		close(sv.stopCheck)
		delete(s.svcs, id)
		s.bump()
	}
}

// runCheck is the agent's HTTP check: GET, 2xx passes.
func (s *Server) runCheck(sv *service) {
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		status := "critical"
		if resp, err := client.Get(sv.checkURL); err == nil {
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				status = "passing"
			}
			resp.Body.Close()
		}
		s.mu.Lock()
		if cur, ok := s.svcs[sv.reg.ID]; ok && cur == sv && sv.status != status {
			sv.status = status
			s.bump()
		}
		s.mu.Unlock()
		select {
		case <-sv.stopCheck:
			return
		case <-time.After(sv.checkEvery):
		}
	}
}
