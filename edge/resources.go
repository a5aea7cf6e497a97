package edge

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"github.com/sluicegw/sluice/edge/auth"
	"github.com/sluicegw/sluice/edge/cache"
	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/observe"
	"github.com/sluicegw/sluice/limiter"
	"github.com/sluicegw/sluice/pool"
)

// resources are what outlive one config: opened once in New, referenced
// (never copied) by every snapshot, closed in Shutdown. A reload that
// changes the settings they were opened with warns that a restart is
// needed (restartOnly, reload.go).
type resources struct {
	log      *slog.Logger
	registry *pool.Registry // targets and their connections, carried across snapshots

	redis   rueidis.Client   // nil without a redis block
	keys    auth.KeyStore    // API keys: a file, or Redis
	limiter *limiter.Limiter // local token buckets
	strict  *limiter.Strict  // nil without redis
	cluster *limiter.Cluster // nil without redis
	quotas  limiter.Quotas   // Redis (falling back to localQ), or localQ
	localQ  *limiter.LocalQuotas

	metrics   *observe.Metrics
	accessLog *observe.AccessLog // nil: off
	tracer    *tracer            // nil: no span export

	cache      cache.Store   // the response cache's store (cache.store)
	cacheMem   *cache.Memory // its memory tier; nil for store: redis
	cacheRedis *cache.Redis  // its Redis tier; nil for store: memory
	cacheTees  teeBudget     // the copies of streamed answers in flight (cacheTee)

	tunnels tunnels // open WebSocket tunnels (tunnel.go), drained by Shutdown
	streams streams // flushed streams being relayed (step_proxy.go), ended by Shutdown

	decoding atomic.Int64 // request bodies being decoded (step_decompress.go), at most request_decompression.max_concurrent

	jwks      map[string]*auth.JWKS // shared key sets, by settings; under Gateway.reloadMu
	stopEvict context.CancelFunc
}

// open opens everything cfg asks for. On error, whatever was opened is
// closed again.
func (r *resources) open(cfg *config.Config, version string, started time.Time, state func() observe.State) (err error) {
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	r.jwks = map[string]*auth.JWKS{}
	r.metrics = observe.New(version, started, state)
	if a := cfg.AccessLog; a.Enabled {
		out := a.Output
		if out != "stdout" {
			out = cfg.Resolve(out)
		}
		if r.accessLog, err = observe.OpenAccessLog(out, *a.Sample, a.Buffer, r.metrics); err != nil {
			return err
		}
	}
	if cfg.Tracing.OTLPEndpoint != "" {
		if r.tracer, err = newTracer(cfg.Tracing, version, r.log); err != nil {
			return err
		}
	}
	if cfg.Redis != nil {
		if r.redis, err = rueidis.NewClient(redisOptions(cfg.Redis)); err != nil {
			return fmt.Errorf("redis %v: %w", cfg.Redis.Addrs, err)
		}
	}
	if err = r.openCache(cfg); err != nil {
		return err
	}
	r.limiter = limiter.New()
	if r.redis != nil {
		timeout := cfg.Redis.Timeout.D()
		r.strict = &limiter.Strict{Client: r.redis, Local: r.limiter, Timeout: timeout, Instances: cfg.Limits.Instances, Log: r.log}
		r.cluster = &limiter.Cluster{Client: r.redis, Local: r.limiter, Timeout: timeout, Instances: cfg.Limits.Instances, Log: r.log}
	}
	if err = r.openQuotas(cfg); err != nil {
		return err
	}
	if err = r.openKeyStore(cfg); err != nil {
		return err
	}
	evictCtx, stopEvict := context.WithCancel(context.Background())
	r.stopEvict = stopEvict
	go r.evictIdleBuckets(evictCtx)
	return nil
}

// close stops the eviction loop, saves the local quota counts, flushes the
// access log and the span exporter and closes Redis. Safe on a partly
// opened r.
func (r *resources) close() {
	if r.stopEvict != nil {
		r.stopEvict()
	}
	if r.localQ != nil {
		r.localQ.Close()
	}
	if r.accessLog != nil {
		r.accessLog.Close()
	}
	if r.tracer != nil {
		r.tracer.close()
	}
	if r.cache != nil {
		r.cache.Close()
	}
	if r.redis != nil {
		r.redis.Close()
	}
}

// openCache opens the response cache's store (config cache.store): a
// memory store, Redis, or both. The store outlives configs: a reload
// that changes cache.store or cache.memory_bytes needs a restart.
func (r *resources) openCache(cfg *config.Config) error {
	kc := cfg.Cache
	if kc == nil {
		kc = &config.Cache{Store: "memory", MemoryBytes: 256 << 20}
	}
	r.cacheTees.max = int64(kc.MemoryBytes)
	if r.cacheTees.max <= 0 {
		r.cacheTees.max = 256 << 20
	}
	ev := cache.Events{Stored: func(route string, n int64, evicted bool) {
		// route comes from the entry, maybe from Redis: only a route
		// of this instance's config gets (or has) series.
		r.metrics.KnownCacheRoute(route).Stored(n, evicted)
	}}
	if kc.Store != "redis" {
		m, err := cache.NewMemory(int64(kc.MemoryBytes), ev)
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		r.cacheMem, r.cache = m, m
	}
	if kc.Store == "memory" || r.redis == nil {
		return nil
	}
	r.cacheRedis = &cache.Redis{Client: r.redis, Timeout: cfg.Redis.Timeout.D(), Log: r.log}
	r.cache = r.cacheRedis
	if r.cacheMem != nil {
		r.cache = cache.NewTiered(r.cacheMem, r.cacheRedis)
	}
	r.cacheRedis.Start()
	return nil
}

// redisOptions turns the redis block into rueidis options: client-side
// caching on (rueidis's default, RESP3), Sentinel when master_set is set,
// Cluster detected by rueidis.
func redisOptions(c *config.Redis) rueidis.ClientOption {
	o := rueidis.ClientOption{
		InitAddress: c.Addrs, Username: c.Username, Password: c.Password, SelectDB: c.DB,
		ClientName: "sluice", ConnWriteTimeout: 2 * time.Second,
	}
	if c.MasterSet != "" {
		o.Sentinel = rueidis.SentinelOption{MasterSet: c.MasterSet}
	}
	return o
}

// openKeyStore opens the API key store cfg names: Redis, or a file (next
// to the config unless the path is absolute).
func (r *resources) openKeyStore(cfg *config.Config) (err error) {
	if cfg.Auth.APIKeys.Store == "redis" {
		r.keys = auth.NewRedisStore(r.redis, cfg.Redis.Timeout.D())
		return nil
	}
	r.keys, err = auth.OpenFileStore(cfg.Resolve(cfg.Auth.APIKeys.File))
	return err
}

// openQuotas opens the quota store: Redis (counting locally while Redis is
// down) when there is a redis block, else a file next to the config.
func (r *resources) openQuotas(cfg *config.Config) error {
	path := ""
	if cfg.Redis == nil {
		path = cfg.Resolve(cfg.Limits.QuotaFile)
	}
	local, err := limiter.OpenLocalQuotas(path, 5*time.Second, r.log)
	if err != nil {
		return err
	}
	r.localQ, r.quotas = local, local
	if cfg.Redis != nil {
		r.quotas = &limiter.RedisQuotas{Client: r.redis, Timeout: cfg.Redis.Timeout.D(), Fallback: local, Log: r.log}
	}
	return nil
}

// jwksFor returns the key set for c, shared across snapshots while its
// settings stay the same (so a reload doesn't refetch it). Called with
// Gateway.reloadMu held.
func (r *resources) jwksFor(c *config.JWKS) *auth.JWKS {
	key := fmt.Sprintf("%+v", *c)
	if j, ok := r.jwks[key]; ok {
		return j
	}
	j := &auth.JWKS{URL: c.URL, Refresh: c.Refresh.D(), MinInterval: c.MinRefreshInterval.D(), Timeout: c.Timeout.D(), Log: r.log}
	j.Start()
	r.jwks[key] = j
	return j
}

// evictIdleBuckets drops rate-limit buckets that are full again, so memory
// follows the keys active in the last burst window.
func (r *resources) evictIdleBuckets(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.limiter.Evict(limiter.Now())
		}
	}
}

// redisFallback reports, per shared-limit kind, whether the last Redis
// call failed and limits are being enforced locally (nil without Redis).
func (r *resources) redisFallback() map[string]bool {
	if r.redis == nil {
		return nil
	}
	m := map[string]bool{"strict": r.strict.FallbackActive(), "cluster": r.cluster.FallbackActive()}
	if r.cacheRedis != nil {
		m["cache"] = r.cacheRedis.Down() // the response cache is skipping Redis after a failure
	}
	return m
}

// KeyStore is the API key store (for the admin API).
func (g *Gateway) KeyStore() auth.KeyStore { return g.res.keys }

// HoldQuotaSaves stops saving file-backed quota counts until
// MergeSavedQuotas (see limiter.LocalQuotas.Hold): for a process started
// by an upgrade, while its parent still counts and saves.
func (g *Gateway) HoldQuotaSaves() { g.res.localQ.Hold() }

// MergeSavedQuotas adds what the parent counted (saved as it exited) to
// this process's quota counts and resumes saving.
func (g *Gateway) MergeSavedQuotas() error { return g.res.localQ.MergeSaved() }

// Quotas is the quota store (for the admin API).
func (g *Gateway) Quotas() limiter.Quotas { return g.res.quotas }

// RedisFallback reports, per shared-limit kind, whether the last Redis
// call failed and limits are being enforced locally (nil without Redis).
func (g *Gateway) RedisFallback() map[string]bool { return g.res.redisFallback() }

// PurgeCache removes the response cache entries p selects (for the admin
// API); with Redis, every instance's memory tier too.
func (g *Gateway) PurgeCache(p cache.Purge) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return g.res.cache.Purge(ctx, p)
}
