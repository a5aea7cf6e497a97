package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/internal/testutil"
	"github.com/sluicegw/sluice/internal/testutil/fakeconsul"
)

func TestConsulSource(t *testing.T) {
	consul := fakeconsul.Start(t)
	key := fmt.Sprintf("sluice-test/%d/config", time.Now().UnixNano())
	boot, err := Parse("boot.yaml", []byte(fmt.Sprintf("admin: { listen: \"off\" }\nconsul: { address: %q, config_key: %q, wait: 2s }\n", consul.Addr, key)), nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ConsulClient(boot.Consul)
	if err != nil {
		t.Fatal(err)
	}
	put := func(v string) {
		if _, err := client.KV().Put(&api.KVPair{Key: key, Value: []byte(v)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	src := &ConsulSource{Bootstrap: boot, Client: client, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if _, err := src.Load(ctx); !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("missing key: %v", err)
	}
	put(minimal)
	cfg, err := src.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source != "consul:"+key || cfg.Consul == nil || cfg.Consul.Address != consul.Addr {
		t.Errorf("source %q, consul %+v (a config without a consul block inherits the bootstrap's)", cfg.Source, cfg.Consul)
	}

	// A config in the key whose discovery implies a consul block takes
	// the bootstrap's, not the defaults (127.0.0.1:8500).
	put(strings.Replace(minimal, "upstreams:", "upstreams:\n  d: { discovery: { consul: { service: svc } } }", 1))
	if cfg, err := src.Load(ctx); err != nil || cfg.Consul.Address != consul.Addr {
		t.Errorf("implied consul block not inherited from the bootstrap: %+v %v", cfg, err)
	}
	put(minimal)

	var changes atomic.Int32
	if err := src.Watch(ctx, func() { changes.Add(1) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the watch take its first index
	put(strings.Replace(minimal, "/api/users/", "/v2/users/", 1))
	testutil.WaitFor(t, "a change", func() bool { return changes.Load() == 1 })
	if cfg, err := src.Load(ctx); err != nil || cfg.Routes[0].Match.Prefix != "/v2/users/" {
		t.Fatalf("after change: %v %v", cfg, err)
	}

	// An invalid value is reported as a change; Load refuses it with the
	// key as the file name.
	put("routes: [ { name: x } ]\n")
	testutil.WaitFor(t, "the invalid change", func() bool { return changes.Load() == 2 })
	if _, err := src.Load(ctx); err == nil || !strings.Contains(err.Error(), "consul:"+key+":1: routes[0]") {
		t.Fatalf("invalid value: %v", err)
	}
	// Deleted.
	if _, err := client.KV().Delete(key, nil); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the deletion", func() bool { return changes.Load() == 3 })
	if _, err := src.Load(ctx); !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("deleted key: %v", err)
	}

	if consul.Real {
		return
	}
	// Consul down, then back (fresh, index lower): the watch recovers.
	consul.Stop()
	time.Sleep(300 * time.Millisecond)
	back := fakeconsul.StartAt(t, consul.Addr)
	back.SetKV(key, []byte(minimal))
	testutil.WaitFor(t, "the change after Consul came back", func() bool { return changes.Load() == 4 })
	if _, err := src.Load(ctx); err != nil {
		t.Fatal(err)
	}
}
