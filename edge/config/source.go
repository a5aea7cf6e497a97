package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
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
	cfg, err := Parse(c.String(), pair.Value, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if cfg.Consul == nil {
		inherited := *c.Bootstrap.Consul
		cfg.Consul = &inherited
	}
	return cfg, nil
}

// Watch follows the key with blocking queries and calls onChange when its
// ModifyIndex changes or it is deleted. Errors back off (1s doubling to
// 30s, jittered) and are logged once per outage; an index that goes
// backwards resets to 0 (Consul's guidance for blocking queries).
func (c *ConsulSource) Watch(ctx context.Context, onChange func()) error {
	go func() {
		var index, modify uint64
		present := true
		backoff := time.Duration(0)
		for ctx.Err() == nil {
			q := &api.QueryOptions{WaitIndex: index, WaitTime: c.Bootstrap.Consul.Wait.D(), Datacenter: c.Bootstrap.Consul.Datacenter}
			pair, meta, err := c.Client.KV().Get(c.key(), q.WithContext(ctx))
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				if backoff == 0 {
					c.Log.Warn("consul unreachable; the current config keeps serving", "key", c.key(), "error", err.Error())
				}
				backoff = min(max(2*backoff, time.Second), 30*time.Second)
				sleepCtx(ctx, time.Duration(float64(backoff)*(0.8+0.4*rand.Float64())))
				continue
			}
			if backoff > 0 {
				c.Log.Info("consul reachable again", "key", c.key())
				backoff = 0
			}
			first := index == 0 && modify == 0
			if meta.LastIndex < index {
				meta.LastIndex = 0
			}
			index = meta.LastIndex
			switch {
			case pair == nil && present:
				present = false
				if !first {
					c.Log.Warn("config key deleted; the current config keeps serving", "key", c.key())
					onChange()
				}
			case pair != nil && (pair.ModifyIndex != modify || !present):
				present = true
				changed := !first
				modify = pair.ModifyIndex
				if changed {
					c.Log.Info("config key changed", "key", c.key(), "modify_index", modify)
					onChange()
				}
			}
			if index == 0 {
				sleepCtx(ctx, 50*time.Millisecond)
			}
		}
	}()
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
