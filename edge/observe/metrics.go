package observe

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"
)

// LatencyBuckets span 100 µs to 10 s: the gateway's own added latency
// lives at the bottom, slow upstreams at the top.
var LatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics is one gateway's metrics.
type Metrics struct {
	Registry *prometheus.Registry
	// Handler serves the registry: Prometheus text, or JSON on request.
	Handler func(*fasthttp.RequestCtx)

	requests               *prometheus.CounterVec
	duration               *prometheus.HistogramVec
	rateLimited            *prometheus.CounterVec
	quotaExceeded          *prometheus.CounterVec
	tunnelsOpen            *prometheus.GaugeVec
	tunnelDuration         *prometheus.HistogramVec
	tunnelBytes            *prometheus.CounterVec
	upDuration             *prometheus.HistogramVec
	upErrors               *prometheus.CounterVec
	retries                *prometheus.CounterVec
	authFailures           *prometheus.CounterVec
	reloads                *prometheus.CounterVec
	accessLogDrops         prometheus.Counter
	accessLogLines         prometheus.Counter
	inFlight               atomic.Int64
	authByReason           sync.Map // reason -> prometheus.Counter
	mu                     sync.Mutex
	routes                 map[string]*Route
	upstreams              map[string]*Upstream
	reloadOK, reloadFailed prometheus.Counter
	cache                  cacheMetrics // cache.go
}

// State is what the scrape-time collector reads from the gateway.
type State struct {
	Targets []TargetState
	// RetryBudgetDenied is the retries each upstream's budget refused, total.
	RetryBudgetDenied map[string]int64
	// RedisFallback: per shared-limit kind, whether limits are enforced
	// locally because Redis is failing. nil without Redis.
	RedisFallback map[string]bool
	// Certificates are the TLS listeners' certificates being served.
	Certificates []CertificateState
	// Mirrors are the counters of routes that mirror their requests.
	Mirrors []MirrorState
}

// MirrorState is one route's mirror counters since its config was loaded.
type MirrorState struct {
	Route                  string
	Sent, Dropped, Skipped int64
}

// CertificateState is one served certificate at scrape time.
type CertificateState struct {
	Listener, Name string
	NotAfter       time.Time
}

// TargetState is one target at scrape time.
type TargetState struct {
	Upstream, Target string
	Usable           bool
	InFlight         int64
	HasBreaker       bool
	CircuitState     uint32 // a pool.CircuitState: 0 closed, 1 open, 2 half-open
	CircuitTrips     int64
}

// New registers sluice's metrics, the Go runtime and process collectors,
// and a collector that calls state at every scrape.
func New(version string, started time.Time, state func() State) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry:  reg,
		routes:    map[string]*Route{},
		upstreams: map[string]*Upstream{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_requests_total", Help: "Requests answered, by route, method and status code. Route is \"\" when no route matched.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_request_duration_seconds", Help: "Time from reading a request to handing its response headers to the client, by route.",
			Buckets: LatencyBuckets,
		}, []string{"route"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_rate_limited_total", Help: "Requests refused (or, in shadow mode, that would have been) by a rate limit, by route.",
		}, []string{"route"}),
		quotaExceeded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_quota_exceeded_total", Help: "Requests refused because a quota was used up, by route.",
		}, []string{"route"}),
		tunnelsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_websocket_tunnels_open", Help: "WebSocket tunnels open now, by route.",
		}, []string{"route"}),
		tunnelDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_websocket_tunnel_duration_seconds", Help: "How long closed WebSocket tunnels were open, by route.",
			Buckets: []float64{1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}, []string{"route"}),
		tunnelBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_websocket_bytes_total", Help: "Bytes relayed by WebSocket tunnels, by route and direction (upstream: client to target; client: target to client), counted when a tunnel closes.",
		}, []string{"route", "direction"}),
		upDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_upstream_request_duration_seconds", Help: "Duration of each try sent to a target, by upstream.",
			Buckets: LatencyBuckets,
		}, []string{"upstream"}),
		upErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_upstream_errors_total", Help: "Failed tries, by upstream and kind: connect, busy, timeout, reset, protocol, 5xx.",
		}, []string{"upstream", "kind"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_upstream_retries_total", Help: "Retries sent, by upstream.",
		}, []string{"upstream"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_auth_failures_total", Help: "Requests refused by authentication or authorization, by reason.",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_config_reloads_total", Help: "Config reloads, by result: success or failure.",
		}, []string{"result"}),
		accessLogDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_access_log_dropped_total", Help: "Access log lines dropped because the writer's buffer was full.",
		}),
		accessLogLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_access_log_lines_total", Help: "Access log lines queued for writing.",
		}),
	}
	m.Handler = Handler(reg)
	m.reloadOK = m.reloads.WithLabelValues("success")
	m.reloadFailed = m.reloads.WithLabelValues("failure")
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_build_info", Help: "Always 1; the labels say which sluice is running.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(
		m.requests, m.duration, m.rateLimited, m.quotaExceeded, m.upDuration, m.upErrors,
		m.tunnelsOpen, m.tunnelDuration, m.tunnelBytes,
		m.retries, m.authFailures, m.reloads, m.accessLogDrops, m.accessLogLines, buildInfo,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_requests_in_flight", Help: "Requests being handled now.",
		}, func() float64 { return float64(m.inFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_uptime_seconds", Help: "Seconds since this sluice process started.",
		}, func() float64 { return time.Since(started).Seconds() }),
		&stateCollector{state: state},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Begin and End bracket every request for the in-flight gauge.
func (m *Metrics) Begin() {
	if m != nil {
		m.inFlight.Add(1)
	}
}

// End: see Begin.
func (m *Metrics) End() {
	if m != nil {
		m.inFlight.Add(-1)
	}
}

// Reloaded counts a config reload.
func (m *Metrics) Reloaded(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloadOK.Inc()
	} else {
		m.reloadFailed.Inc()
	}
}

// AuthFailure counts a refusal. reason is one of a closed set chosen by the
// caller (the Fault it answered with), so the map stays small.
func (m *Metrics) AuthFailure(reason string) {
	if m == nil {
		return
	}
	if c, ok := m.authByReason.Load(reason); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c, _ := m.authByReason.LoadOrStore(reason, m.authFailures.WithLabelValues(reason))
	c.(prometheus.Counter).Inc()
}

// AccessLogLine and AccessLogDropped count the access log's work.
func (m *Metrics) AccessLogLine() {
	if m != nil {
		m.accessLogLines.Inc()
	}
}

// AccessLogDropped: see AccessLogLine.
func (m *Metrics) AccessLogDropped() {
	if m != nil {
		m.accessLogDrops.Inc()
	}
}

// Route returns the handles of a route, the same ones across reloads so
// that counters keep counting. Build time only.
func (m *Metrics) Route(name string) *Route {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.routes[name]; r != nil {
		return r
	}
	r := &Route{
		name:          name,
		requests:      m.requests,
		duration:      m.duration.WithLabelValues(name),
		rateLimited:   m.rateLimited.WithLabelValues(name),
		quotaExceeded: m.quotaExceeded.WithLabelValues(name),
		tunnelsOpen:   m.tunnelsOpen.WithLabelValues(name),
		tunnelTime:    m.tunnelDuration.WithLabelValues(name),
		tunnelUp:      m.tunnelBytes.WithLabelValues(name, "upstream"),
		tunnelDown:    m.tunnelBytes.WithLabelValues(name, "client"),
	}
	m.routes[name] = r
	return r
}

// Upstream returns the handles of an upstream. Build time only.
func (m *Metrics) Upstream(name string) *Upstream {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if u := m.upstreams[name]; u != nil {
		return u
	}
	u := &Upstream{
		duration:  m.upDuration.WithLabelValues(name),
		retries:   m.retries.WithLabelValues(name),
		status5xx: m.upErrors.WithLabelValues(name, "5xx"),
	}
	for i, kind := range ErrorKinds {
		u.errors[i] = m.upErrors.WithLabelValues(name, kind)
	}
	m.upstreams[name] = u
	return u
}

// Retain drops the series of routes and upstreams no longer configured,
// so a renamed route does not linger in every scrape. Build time only.
func (m *Metrics) Retain(routes, upstreams []string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keepR := toSet(routes)
	keepR[""] = true // the no-route bucket
	for name := range m.routes {
		if !keepR[name] {
			delete(m.routes, name)
			for _, v := range []*prometheus.CounterVec{m.requests, m.rateLimited, m.quotaExceeded} {
				v.DeletePartialMatch(prometheus.Labels{"route": name})
			}
			m.duration.DeletePartialMatch(prometheus.Labels{"route": name})
			m.tunnelDuration.DeletePartialMatch(prometheus.Labels{"route": name})
			m.tunnelBytes.DeletePartialMatch(prometheus.Labels{"route": name})
			// Tunnels still open on a removed route keep running, no
			// longer reported (their handle's series is gone).
			m.tunnelsOpen.DeletePartialMatch(prometheus.Labels{"route": name})
			m.cache.forget(name)
		}
	}
	keepU := toSet(upstreams)
	for name := range m.upstreams {
		if !keepU[name] {
			delete(m.upstreams, name)
			m.upDuration.DeletePartialMatch(prometheus.Labels{"upstream": name})
			m.upErrors.DeletePartialMatch(prometheus.Labels{"upstream": name})
			m.retries.DeletePartialMatch(prometheus.Labels{"upstream": name})
		}
	}
}

func toSet(names []string) map[string]bool {
	s := make(map[string]bool, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

// Route holds one route's metric children.
type Route struct {
	name          string
	requests      *prometheus.CounterVec
	duration      prometheus.Observer
	rateLimited   prometheus.Counter
	quotaExceeded prometheus.Counter
	tunnelsOpen   prometheus.Gauge
	tunnelTime    prometheus.Observer
	tunnelUp      prometheus.Counter
	tunnelDown    prometheus.Counter
	// byMethod[m][code-100] is created on first use: a route sees a handful
	// of (method, code) pairs, and the rows of unused methods stay nil.
	byMethod [len(methods) + 1]atomic.Pointer[codeRow]
}

type codeRow [500]atomic.Pointer[counterSlot]

type counterSlot struct{ c prometheus.Counter }

// methods are the label values a method can take; anything else is OTHER.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}

func methodIndex(m []byte) int {
	for i, s := range methods {
		if string(m) == s {
			return i
		}
	}
	return len(methods)
}

// Observe records one answered request.
func (r *Route) Observe(method []byte, code int, d time.Duration) {
	if r == nil {
		return
	}
	r.duration.Observe(d.Seconds())
	if code < 100 || code > 599 {
		code = 599 // fasthttp never sends these; keep the label set closed anyway
	}
	mi := methodIndex(method)
	row := r.byMethod[mi].Load()
	if row == nil {
		r.byMethod[mi].CompareAndSwap(nil, new(codeRow))
		row = r.byMethod[mi].Load()
	}
	slot := row[code-100].Load()
	if slot == nil {
		name := "OTHER"
		if mi < len(methods) {
			name = methods[mi]
		}
		// WithLabelValues returns the one child for these labels, so two
		// requests racing here count into the same series.
		row[code-100].CompareAndSwap(nil, &counterSlot{r.requests.WithLabelValues(r.name, name, strconv.Itoa(code))})
		slot = row[code-100].Load()
	}
	slot.c.Inc()
}

// ErrorKinds are the kind label values of sluice_upstream_errors_total,
// indexed by pool.ErrKind-1 (5xx is counted separately). observe does not
// import pool: edge/errkinds_test.go checks the two lists agree.
var ErrorKinds = [...]string{"connect", "busy", "timeout", "reset", "protocol", "tls"}

// Upstream holds one upstream's metric children.
type Upstream struct {
	duration  prometheus.Observer
	retries   prometheus.Counter
	errors    [len(ErrorKinds)]prometheus.Counter
	status5xx prometheus.Counter
}

// Error counts a failed try; kind is a pool.ErrKind (1-based).
func (u *Upstream) Error(kind uint8) {
	if u == nil || kind == 0 || int(kind) > len(u.errors) {
		return
	}
	u.errors[kind-1].Inc()
}

// Status5xx counts a try answered with a 5xx.
func (u *Upstream) Status5xx() {
	if u != nil {
		u.status5xx.Inc()
	}
}

// Try records one try's duration.
func (u *Upstream) Try(d time.Duration) {
	if u != nil {
		u.duration.Observe(d.Seconds())
	}
}

// Retry counts a retry.
func (u *Upstream) Retry() {
	if u != nil {
		u.retries.Inc()
	}
}

// stateCollector turns State into metrics at scrape time.
type stateCollector struct{ state func() State }

var (
	descTargetUp = prometheus.NewDesc("sluice_target_up",
		"1 when the balancer may pick the target (healthy, not ejected, circuit not open), else 0.", []string{"upstream", "target"}, nil)
	descTargetInFlight = prometheus.NewDesc("sluice_target_in_flight",
		"Requests in flight to the target.", []string{"upstream", "target"}, nil)
	descCircuitState = prometheus.NewDesc("sluice_circuit_state",
		"Circuit breaker state: 0 closed, 1 open, 2 half-open. Only targets whose upstream has a circuit breaker.", []string{"upstream", "target"}, nil)
	descCircuitTrips = prometheus.NewDesc("sluice_circuit_trips_total",
		"Times the target's circuit opened (since the target was built).", []string{"upstream", "target"}, nil)
	descBudgetExhausted = prometheus.NewDesc("sluice_upstream_retry_budget_exhausted_total",
		"Retries the upstream's retry budget refused.", []string{"upstream"}, nil)
	descCertExpiry = prometheus.NewDesc("sluice_tls_certificate_expiry_seconds",
		"When the certificate a TLS listener serves expires (NotAfter), as Unix seconds; name is its first DNS name, else its common name.", []string{"listener", "name"}, nil)
	descMirror = prometheus.NewDesc("sluice_mirror_requests_total",
		"Copies of a route's requests for its mirror, by outcome: sent (the shadow's answer dropped), dropped (max_concurrent in flight), skipped (body over the cap, or streamed). Since the route's config was loaded.", []string{"route", "outcome"}, nil)
	descRedisFallback = prometheus.NewDesc("sluice_redis_fallback",
		"1 while limits of this scope are enforced locally because Redis calls fail.", []string{"scope"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTargetUp, descTargetInFlight, descCircuitState, descCircuitTrips, descBudgetExhausted, descRedisFallback, descCertExpiry, descMirror} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.state()
	for _, t := range st.Targets {
		up := 0.0
		if t.Usable {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descTargetUp, prometheus.GaugeValue, up, t.Upstream, t.Target)
		ch <- prometheus.MustNewConstMetric(descTargetInFlight, prometheus.GaugeValue, float64(t.InFlight), t.Upstream, t.Target)
		if t.HasBreaker {
			ch <- prometheus.MustNewConstMetric(descCircuitState, prometheus.GaugeValue, float64(t.CircuitState), t.Upstream, t.Target)
			ch <- prometheus.MustNewConstMetric(descCircuitTrips, prometheus.CounterValue, float64(t.CircuitTrips), t.Upstream, t.Target)
		}
	}
	for name, n := range st.RetryBudgetDenied {
		ch <- prometheus.MustNewConstMetric(descBudgetExhausted, prometheus.CounterValue, float64(n), name)
	}
	for _, c := range st.Certificates {
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(c.NotAfter.Unix()), c.Listener, c.Name)
	}
	for _, m := range st.Mirrors {
		ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(m.Sent), m.Route, "sent")
		ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(m.Dropped), m.Route, "dropped")
		ch <- prometheus.MustNewConstMetric(descMirror, prometheus.CounterValue, float64(m.Skipped), m.Route, "skipped")
	}
	for scope, on := range st.RedisFallback {
		v := 0.0
		if on {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descRedisFallback, prometheus.GaugeValue, v, scope)
	}
}

// RateLimit counts a request refused by a rate limit (or that would have
// been, in shadow mode).
func (r *Route) RateLimit() {
	if r != nil {
		r.rateLimited.Inc()
	}
}

// Quota counts a request refused because its quota was used up.
func (r *Route) Quota() {
	if r != nil {
		r.quotaExceeded.Inc()
	}
}

// TunnelOpened counts a WebSocket tunnel opening.
func (r *Route) TunnelOpened() {
	if r != nil {
		r.tunnelsOpen.Inc()
	}
}

// TunnelClosed records a closed tunnel: how long it was open and the
// bytes it relayed each way.
func (r *Route) TunnelClosed(d time.Duration, toUpstream, toClient int64) {
	if r != nil {
		r.tunnelsOpen.Dec()
		r.tunnelTime.Observe(d.Seconds())
		r.tunnelUp.Add(float64(toUpstream))
		r.tunnelDown.Add(float64(toClient))
	}
}
