package limiter

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// gcraScript is GCRA run atomically in Redis: exact across any number of
// gateways. Time comes from Redis (TIME), never from the gateways' clocks,
// so skew between instances can't loosen the limit. The state is one key
// (the theoretical arrival time, in microseconds) that expires once the
// bucket would be full again.
//
// KEYS[1]: the bucket; ARGV[1]: emission interval (us); ARGV[2]: burst
// allowance, (burst-1) x interval (us).
// Returns {allowed, retry_after_us, reset_after_us}.
var gcraScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local allowance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local debt = tat - now
if debt > allowance then
  return {0, debt - allowance, debt}
end
local nxt = tat + interval
redis.call('SET', KEYS[1], nxt, 'PX', math.floor((nxt - now) / 1000) + 1000)
return {1, 0, nxt - now}
`)

// Strict limits requests exactly across every gateway sharing a Redis:
// one atomic script per request (rueidis pipelines concurrent calls on
// its connections). When Redis does not answer within Timeout it falls
// back to the local limiter with the limit divided by Instances, logs that
// once per outage and reports it in FallbackActive, and goes back to Redis
// as soon as a call succeeds again.
type Strict struct {
	Client    rueidis.Client
	Local     *Limiter
	Timeout   time.Duration
	Instances int
	Log       *slog.Logger

	fallback outage
}

// FallbackActive reports whether the last call fell back to local limits.
func (s *Strict) FallbackActive() bool { return s.fallback.active() }

// Take spends a token of key's bucket. The Redis key is hash-tagged
// ("sluice:rl:{key}") so a Redis Cluster keeps a bucket on one slot.
func (s *Strict) Take(key []byte, lim Limit, now int64) Result {
	interval := max(lim.interval()/1000, 1) // us
	burst := int64(max(lim.Burst, 1))
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	vals, err := gcraScript.Exec(ctx, s.Client,
		[]string{"sluice:rl:{" + string(key) + "}"},
		[]string{strconv.FormatInt(interval, 10), strconv.FormatInt((burst-1)*interval, 10)},
	).AsIntSlice()
	if err != nil || len(vals) != 3 {
		s.fallback.failed(s.Log, "strict rate limits fall back to local limits", err, "instances", s.Instances)
		local := lim
		local.Rate = max(lim.Rate/max(s.Instances, 1), 1)
		local.Burst = max(lim.Burst/max(s.Instances, 1), 1)
		return s.Local.Take(append([]byte("fallback|"), key...), local, now)
	}
	s.fallback.ok(s.Log, "strict rate limits")
	us := time.Microsecond
	res := Result{Allowed: vals[0] == 1, Limit: int(burst), RetryAfter: time.Duration(vals[1]) * us, ResetAfter: time.Duration(vals[2]) * us}
	if res.Allowed {
		res.Remaining = int(max((burst*interval-vals[2])/interval, 0))
	}
	return res
}

func errString(err error) string {
	if err == nil {
		return "bad reply"
	}
	return err.Error()
}
