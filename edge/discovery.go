package edge

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/pool"
)

// discovery keeps one Consul watcher per discovered upstream and the
// targets each last reported. A change rebuilds the whole snapshot from
// the config now serving plus the new targets (one atomic pointer per
// request, as always); targets that stay keep their connections, counters
// and circuit state through the registry.
type discovery struct {
	client   *api.Client
	watchers map[string]*watch // by upstream name
	targets  map[string][]pool.TargetSpec
}

type watch struct {
	key     string // the query it runs; a different one needs a new watcher
	watcher *pool.ServiceWatcher
	cancel  context.CancelFunc
}

// initialFetchTimeout bounds the first, synchronous query made for a newly
// discovered upstream, so a config is never applied without its targets
// while Consul answers, and never waits long when it doesn't.
const initialFetchTimeout = 3 * time.Second

// syncDiscovery starts, keeps or stops watchers to match cfg. Called with
// reloadMu held, before the snapshot for cfg is built.
func (g *Gateway) syncDiscovery(cfg *config.Config) error {
	wanted := map[string]pool.ServiceQuery{}
	for name, u := range cfg.Upstreams {
		if u.Discovery == nil || u.Discovery.Consul == nil {
			continue
		}
		cs := u.Discovery.Consul
		wanted[name] = pool.ServiceQuery{
			Service: cs.Service, Tag: cs.Tag, Datacenter: cs.Datacenter,
			PassingOnly: cs.PassingOnly == nil || *cs.PassingOnly, Scheme: cs.Scheme, Wait: cfg.Consul.Wait.D(),
		}
	}
	d := &g.disc
	for name, w := range d.watchers {
		if q, ok := wanted[name]; !ok || fmt.Sprint(q) != w.key {
			w.cancel()
			delete(d.watchers, name)
			delete(d.targets, name)
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	if d.client == nil {
		client, err := config.ConsulClient(cfg.Consul)
		if err != nil {
			return err
		}
		d.client = client
	}
	for name, q := range wanted {
		if _, ok := d.watchers[name]; ok {
			continue
		}
		upstream, key := name, fmt.Sprint(q)
		w := &pool.ServiceWatcher{Client: d.client, Query: q, Log: g.log.With("upstream", name)}
		w.OnChange = func(targets []pool.TargetSpec) { g.discovered(upstream, key, targets) }
		ctx, cancel := context.WithCancel(context.Background())
		fetchCtx, fetchCancel := context.WithTimeout(ctx, initialFetchTimeout)
		targets, index, err := w.Fetch(fetchCtx)
		fetchCancel()
		if err != nil {
			g.log.Warn("consul discovery: first query failed; starting without these targets", "upstream", name, "service", q.Service, "error", err.Error())
		} else {
			d.targets[name] = targets
		}
		d.watchers[name] = &watch{key: key, watcher: w, cancel: cancel}
		go w.Run(ctx, targets, index)
	}
	return nil
}

// discovered applies a watcher's new target list.
func (g *Gateway) discovered(upstream, key string, targets []pool.TargetSpec) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if w, ok := g.disc.watchers[upstream]; !ok || w.key != key {
		return // a reload replaced this watcher meanwhile
	}
	g.disc.targets[upstream] = targets
	snap, err := g.build(g.snap.Load().Config)
	if err != nil {
		g.log.Error("consul discovery: could not apply new targets; the previous ones keep serving", "upstream", upstream, "error", err.Error())
		return
	}
	g.snap.Store(snap)
	g.res.registry.Retain(snap.targets())
	g.log.Info("upstream targets updated from consul", "upstream", upstream, "targets", len(targets))
}

// DiscoveryStatus reports each discovered upstream's watcher.
func (g *Gateway) DiscoveryStatus() map[string]pool.WatchStatus {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	out := map[string]pool.WatchStatus{}
	for name, w := range g.disc.watchers {
		out[name] = w.watcher.Status()
	}
	return out
}

// stopDiscovery ends every watcher (shutdown).
func (g *Gateway) stopDiscovery() {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	for name, w := range g.disc.watchers {
		w.cancel()
		delete(g.disc.watchers, name)
	}
}
