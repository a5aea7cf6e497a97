package edge

import (
	"reflect"
	"slices"

	"github.com/sluicegw/sluice/edge/config"
)

// Apply builds a snapshot from cfg and swaps it in. On error the current
// snapshot keeps serving.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if err := g.syncDiscovery(cfg); err != nil {
		return g.refuse(err)
	}
	certs, err := g.loadTLSCerts(cfg)
	if err != nil {
		return g.refuse(err)
	}
	snap, err := g.build(cfg)
	if err != nil {
		g.res.registry.Retain(g.snap.Load().targets())
		return g.refuse(err)
	}
	g.installTLSCerts(certs)
	g.acme.reloaded(cfg)
	g.res.metrics.Retain(snap.names())
	if g.acme == nil && cfg.ACME != nil {
		g.log.Warn("the acme block was added after start: acme_hosts get no ACME certificate (their handshakes get the PEM certificates) until sluice upgrade (or a restart)")
	}
	for _, w := range restartOnly(g.startup, cfg) {
		g.log.Warn("config change takes effect in a new process; apply with sluice upgrade (or a restart)", "field", w)
	}
	old := g.snap.Swap(snap)
	before, _ := old.names()
	after, _ := snap.names()
	g.res.tunnels.reloaded(before, after, cfg.Server.WebSocketDrain.D(), cfg.Server.ShutdownTimeout.D())
	dropped := g.res.registry.Retain(snap.targets())
	g.reloads.Add(1)
	g.res.metrics.Reloaded(true)
	g.lastError.Store(nil)
	g.log.Info("config applied", "source", cfg.Source, "routes", len(snap.routes),
		"upstreams", len(snap.upstreams), "targets_dropped", dropped, "previous_routes", len(old.routes))
	return nil
}

// ReloadFrom loads a config with load and applies it.
func (g *Gateway) ReloadFrom(load func() (*config.Config, error)) error {
	cfg, err := load()
	if err != nil {
		return g.refuse(err)
	}
	return g.Apply(cfg)
}

func (g *Gateway) refuse(err error) error {
	g.res.metrics.Reloaded(false)
	msg := err.Error()
	g.lastError.Store(&msg)
	g.log.Error("config refused; the previous config keeps serving", "error", msg)
	return err
}

// LastReloadError is the error of the last refused reload, or "".
func (g *Gateway) LastReloadError() string {
	if p := g.lastError.Load(); p != nil {
		return *p
	}
	return ""
}

// build compiles cfg into a snapshot over the gateway's resources and the
// targets discovery found. Called with reloadMu held (or from New).
func (g *Gateway) build(cfg *config.Config) (*Snapshot, error) {
	return build(cfg, &g.res, g.disc.targets)
}

// restartOnly names fields whose change a reload can't apply.
func restartOnly(a, b *config.Config) []string {
	var out []string
	if a.Listen != b.Listen {
		out = append(out, "listen")
	}
	if len(a.ListenTLS) != len(b.ListenTLS) {
		out = append(out, "listen_tls")
	} else {
		for i := range a.ListenTLS {
			if a.ListenTLS[i].Listen != b.ListenTLS[i].Listen || a.ListenTLS[i].Name != b.ListenTLS[i].Name {
				out = append(out, "listen_tls")
				break
			}
		}
	}
	if !reflect.DeepEqual(a.ACME, b.ACME) {
		out = append(out, "acme")
	}
	if ac, bc := a.Cache, b.Cache; ac != nil && bc != nil && (ac.Store != bc.Store || ac.MemoryBytes != bc.MemoryBytes) {
		out = append(out, "cache.store/memory_bytes")
	}
	if a.Admin.Listen != b.Admin.Listen {
		out = append(out, "admin.listen")
	}
	if a.Admin.AuthOn() != b.Admin.AuthOn() || a.Admin.Username != b.Admin.Username ||
		a.Admin.Password != b.Admin.Password || a.Admin.Token != b.Admin.Token {
		out = append(out, "admin credentials")
	}
	if a.Admin.SessionTTL != b.Admin.SessionTTL {
		out = append(out, "admin.session_ttl")
	}
	// Only the settings the fasthttp server reads at start; the rest of
	// server (max_body_bytes, trusted_proxies, services_health) reloads.
	as, bs := a.Server, b.Server
	if as.ReadTimeout != bs.ReadTimeout || as.WriteTimeout != bs.WriteTimeout || as.IdleTimeout != bs.IdleTimeout ||
		as.MaxHeaderBytes != bs.MaxHeaderBytes || as.BufferBodyBytes != bs.BufferBodyBytes ||
		as.MaxConnections != bs.MaxConnections || as.ShutdownTimeout != bs.ShutdownTimeout {
		out = append(out, "server (timeouts, max_header_bytes, buffer_body_bytes, max_connections)")
	}
	// Opened once, in New (resources.go).
	if !sameRedis(a.Redis, b.Redis) {
		out = append(out, "redis")
	}
	if a.Auth.APIKeys.Store != b.Auth.APIKeys.Store || a.Resolve(a.Auth.APIKeys.File) != b.Resolve(b.Auth.APIKeys.File) {
		out = append(out, "auth.api_keys (store, file)")
	}
	if a.Resolve(a.Limits.QuotaFile) != b.Resolve(b.Limits.QuotaFile) || a.Limits.Instances != b.Limits.Instances {
		out = append(out, "limits (quota_file, instances)")
	}
	if ac, bc := consulConn(a.Consul), consulConn(b.Consul); ac != bc {
		out = append(out, "consul (address, token, datacenter)")
	}
	if al, bl := a.AccessLog, b.AccessLog; al.Enabled != bl.Enabled || al.Output != bl.Output || *al.Sample != *bl.Sample || al.Buffer != bl.Buffer {
		out = append(out, "access_log")
	}
	if a.Tracing.OTLPEndpoint != b.Tracing.OTLPEndpoint || *a.Tracing.Sample != *b.Tracing.Sample || a.Tracing.ServiceName != b.Tracing.ServiceName {
		out = append(out, "tracing")
	}
	return out
}

func sameRedis(a, b *config.Redis) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Addrs, b.Addrs) && a.MasterSet == b.MasterSet && a.Username == b.Username &&
		a.Password == b.Password && a.DB == b.DB && a.Timeout == b.Timeout
}

// consulConn is what the Consul client is built from.
func consulConn(c *config.Consul) [3]string {
	if c == nil {
		return [3]string{}
	}
	return [3]string{c.Address, c.Token, c.Datacenter}
}
