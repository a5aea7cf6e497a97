package edge

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluicegw/sluice/edge/config"
	"github.com/sluicegw/sluice/edge/observe"
	"github.com/sluicegw/sluice/pool"
)

// upstream is a compiled upstream: its pool and the policies the proxy
// applies around it (retries, hashing).
type upstream struct {
	name   string
	pool   *pool.Pool
	retry  retryPolicy
	hasher hasher // what ip_hash and consistent_hash balance on; nil for the other balancers

	budgetLogAt atomic.Int64      // unix ns of the last "budget exhausted" log
	metrics     *observe.Upstream // nil: metrics off
}

// retryPolicy is config.Retry compiled for the request path.
type retryPolicy struct {
	attempts   int
	perTry     time.Duration
	backoff    time.Duration
	maxBackoff time.Duration
	multiplier float64
	jitter     float64
	onKind     [8]bool   // by pool.ErrKind
	onStatus   [100]bool // 500..599
}

func (s *Snapshot) compileUpstream(cfg *config.Config, u *config.Upstream, discovered []pool.TargetSpec) (*upstream, error) {
	settings := pool.Settings{
		ConnectTimeout:    u.ConnectTimeout.D(),
		ReadTimeout:       u.ReadTimeout.D(),
		WriteTimeout:      u.WriteTimeout.D(),
		IdleTimeout:       u.IdleTimeout.D(),
		MaxConns:          u.MaxConnections,
		MaxConnWait:       u.MaxConnWait.D(),
		HeaderBufferBytes: int(cfg.Server.MaxHeaderBytes),
		BufferBodyBytes:   int(cfg.Server.BufferResponseBytes),
		SlowStart:         u.SlowStart.D(),
		Outlier: pool.OutlierSettings{
			ConsecutiveFailures: u.Outlier.ConsecutiveFailures,
			BaseEjection:        u.Outlier.BaseEjection.D(),
			MaxEjection:         u.Outlier.MaxEjection.D(),
			MaxEjectionPercent:  u.Outlier.MaxEjectionPercent,
		},
	}
	if h := u.Health; h != nil {
		settings.Health = &pool.HealthSettings{
			Path: h.Path, Host: h.Host, Interval: h.Interval.D(), Jitter: h.Jitter, Timeout: h.Timeout.D(),
			StatusLo: h.StatusLo, StatusHi: h.StatusHi, Healthy: h.Healthy, Unhealthy: h.Unhealthy,
		}
	}
	if c := u.Circuit; c != nil {
		settings.Circuit = &pool.CircuitSettings{
			Failures: c.Failures, FailureRatio: c.FailureRatio, Window: c.Window.D(), MinRequests: c.MinRequests,
			OpenFor: c.OpenFor.D(), HalfOpenRequests: c.HalfOpenRequests, Successes: c.Successes,
		}
	}
	if u.TLS != nil {
		tc, err := clientTLS(cfg, u)
		if err != nil {
			return nil, err
		}
		settings.TLS = tc
	}
	spec := pool.PoolSpec{
		Name: u.Name, Balancer: u.Balancer, BoundedLoad: u.BoundedLoad, Settings: settings,
		PanicMode: u.PanicMode == nil || *u.PanicMode, RetryBudget: u.Retry.Budget, MinRetries: u.Retry.MinRetriesPerSecond,
	}
	seen := map[string]bool{}
	for _, t := range u.Targets {
		spec.Targets = append(spec.Targets, pool.TargetSpec{URL: t.URL, Weight: t.Weight})
		seen[t.URL] = true
	}
	for _, t := range discovered {
		if !seen[t.URL] { // a static target wins over the same one discovered
			spec.Targets = append(spec.Targets, t)
		}
	}
	p, err := pool.Build(s.res.registry, spec)
	if err != nil {
		return nil, err
	}
	up := &upstream{name: u.Name, pool: p, metrics: s.metrics.Upstream(u.Name)}
	switch {
	case u.Balancer == "consistent_hash":
		up.hasher = compileHasher(u.HashKind, u.HashName)
	case p.HashesKey:
		up.hasher = hashIP{}
	}
	r := u.Retry
	up.retry = retryPolicy{
		attempts: r.Attempts, perTry: r.PerTryTimeout.D(), backoff: r.Backoff.D(), maxBackoff: r.MaxBackoff.D(),
		multiplier: r.Multiplier, jitter: r.Jitter,
	}
	for _, on := range r.On {
		switch on {
		case "connect":
			up.retry.onKind[pool.KindConnect] = true
			up.retry.onKind[pool.KindBusy] = true
			up.retry.onKind[pool.KindTLS] = true // never processed, like connect
		case "timeout":
			up.retry.onKind[pool.KindTimeout] = true
		case "reset":
			up.retry.onKind[pool.KindReset] = true
			up.retry.onKind[pool.KindProtocol] = true
		default:
			code, _ := strconv.Atoi(on)
			if code >= 500 && code <= 599 {
				up.retry.onStatus[code-500] = true
			}
		}
	}
	return up, nil
}

// backoffFor is the pause before retry number n (1-based): backoff x
// multiplier^(n-1), capped, varied by +-jitter.
func (r *retryPolicy) backoffFor(n int) time.Duration {
	d := float64(r.backoff)
	for i := 1; i < n; i++ {
		d *= r.multiplier
		if d >= float64(r.maxBackoff) {
			d = float64(r.maxBackoff)
			break
		}
	}
	return pool.Jitter(time.Duration(d), r.jitter)
}

// clientTLS reads the files of an upstream's tls block (again on every
// snapshot, so a renewed client certificate or CA bundle takes effect on
// reload; the registry keeps targets whose files did not change).
func clientTLS(cfg *config.Config, u *config.Upstream) (*pool.ClientTLS, error) {
	tc := &pool.ClientTLS{ServerName: u.TLS.ServerName, InsecureSkipVerify: u.TLS.InsecureSkipVerify}
	p := "upstreams." + u.Name + ".tls"
	if u.TLS.CAFile != "" {
		ca, msg := config.ReadCABundle(cfg.Resolve(u.TLS.CAFile))
		if msg != "" {
			return nil, fmt.Errorf("%s.ca_file: %s", p, msg)
		}
		tc.CAPEM = ca
	}
	if u.TLS.CertFile != "" {
		kp, msg := config.CheckKeyPair(cfg.Resolve(u.TLS.CertFile), cfg.Resolve(u.TLS.KeyFile), time.Now())
		if msg != "" {
			return nil, fmt.Errorf("%s.cert_file: %s", p, msg)
		}
		tc.CertPEM, tc.KeyPEM = kp.CertPEM, kp.KeyPEM
	}
	return tc, nil
}
