package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/internal/consulwatch"
)

// Source is where a config comes from: a file, or a Consul KV key.
type Source interface {
	// Load reads and validates the config now.
	Load(ctx context.Context) (*Config, error)
	// Watch calls onChange, until ctx ends, whenever the config may have
	// changed; the caller then Loads it.
	Watch(ctx context.Context, onChange func()) error
	// String names the source for logs.
	String() string
}

// FileSource is a config file, watched for changes.
type FileSource struct {
	Path string
	Log  *slog.Logger
}

func (f FileSource) Load(context.Context) (*Config, error) { return Load(f.Path) }

func (f FileSource) Watch(ctx context.Context, onChange func()) error {
	return WatchFile(ctx, f.Path, f.Log, onChange)
}

func (f FileSource) String() string { return f.Path }

// ConsulClient builds a Consul API client from c. Empty fields fall back to
// Consul's environment variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, ...).
func ConsulClient(c *Consul) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if c != nil {
		if addr := c.Address; addr != "" {
			if strings.Contains(addr, "://") {
				u, err := url.Parse(addr)
				if err != nil {
					return nil, fmt.Errorf("consul.address %q: %w", addr, err)
				}
				cfg.Scheme, addr = u.Scheme, u.Host
			}
			cfg.Address = addr
		}
		if c.Token != "" {
			cfg.Token = c.Token
		}
		if c.Datacenter != "" {
			cfg.Datacenter = c.Datacenter
		}
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return client, nil
}

// ConsulSource is a config held in one Consul KV key, watched with
// blocking queries. The bootstrap config (the local file sluice was started
// with) says how to reach Consul; a config from the key without a consul
// block inherits the bootstrap's, so discovery uses the same agent.
type ConsulSource struct {
	Bootstrap *Config
	Client    *api.Client
	Log       *slog.Logger
}

// ErrKeyMissing: the config key does not exist (or was deleted).
var ErrKeyMissing = errors.New("config: consul key not found")

func (c *ConsulSource) key() string { return c.Bootstrap.Consul.ConfigKey }

func (c *ConsulSource) String() string { return "consul:" + c.key() }

// Load fetches the key now (not blocking) and parses it.
func (c *ConsulSource) Load(ctx context.Context) (*Config, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pair, _, err := c.Client.KV().Get(c.key(), (&api.QueryOptions{Datacenter: c.Bootstrap.Consul.Datacenter}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("config: consul key %q: %w", c.key(), err)
	}
	if pair == nil {
		return nil, fmt.Errorf("%w: %q", ErrKeyMissing, c.key())
	}
	cfg, err := ParseChecked(c.String(), pair.Value, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if cfg.Consul == nil || cfg.Consul.Implied {
		inherited := *c.Bootstrap.Consul
		cfg.Consul = &inherited
	}
	return cfg, nil
}

// Watch follows the key with blocking queries (internal/consulwatch's
// loop: index rules, pacing, backoff) and calls onChange when its
// ModifyIndex changes or it is deleted. An outage is logged once, and so
// is its end.
func (c *ConsulSource) Watch(ctx context.Context, onChange func()) error {
	var modify uint64 // the key's ModifyIndex in the last answer
	present := true   // whether the last answer had the key
	answered := false // the first answer only sets the baseline: the caller Loaded already
	loop := consulwatch.Loop{
		Query: func(ctx context.Context, index uint64) (uint64, error) {
			q := &api.QueryOptions{WaitIndex: index, WaitTime: c.Bootstrap.Consul.Wait.D(), Datacenter: c.Bootstrap.Consul.Datacenter}
			pair, meta, err := c.Client.KV().Get(c.key(), q.WithContext(ctx))
			if err != nil {
				return 0, err
			}
			first := !answered
			answered = true
			switch {
			case pair == nil && present:
				present = false
				if !first {
					c.Log.Warn("config key deleted; the current config keeps serving", "key", c.key())
					onChange()
				}
			case pair != nil && (pair.ModifyIndex != modify || !present):
				present = true
				modify = pair.ModifyIndex
				if !first {
					c.Log.Info("config key changed", "key", c.key(), "modify_index", modify)
					onChange()
				}
			}
			return meta.LastIndex, nil
		},
		OnError: func(err error, _ uint64, first bool) {
			if first {
				c.Log.Warn("consul unreachable; the current config keeps serving", "key", c.key(), "error", err.Error())
			}
		},
		OnRecover: func() { c.Log.Info("consul reachable again", "key", c.key()) },
	}
	go loop.Run(ctx, 0)
	return nil
}
