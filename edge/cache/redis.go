package cache

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
)

// Redis stores entries in Redis, shared by every instance using the
// same server. Every call is bounded by Timeout; after a failure the
// store answers misses without calling Redis for a second (so a dead
// Redis costs one timeout a second, not one per request), then tries
// again. Purges are published on a channel; OnPurge (a Tiered store's
// memory tier) hears every instance's, its own included.
type Redis struct {
	Client  rueidis.Client
	Timeout time.Duration
	Log     *slog.Logger
	// OnPurge is called for every purge any instance publishes.
	OnPurge func(Purge)

	downUntil atomic.Int64 // unix nanos: skip Redis until then
	stop      context.CancelFunc
	failures  atomic.Int64
}

var _ Store = (*Redis)(nil)

const (
	redisPrefix = "sluice:cache:"
	redisTagPre = "sluice:cache-tag:"
	// A URL's stored keys (routes, schemes, variants, callers): a sorted
	// set scored by each key's expiry (unix ms), so expired members are
	// trimmed and the set capped at urlSetMax. (The name changed when it
	// stopped being a plain set, so an older instance's sets don't clash.)
	redisURLPre  = "sluice:cache-urlz:"
	purgeChannel = "sluice:cache:purge"
	downFor      = time.Second
	// urlSetMax caps a URL's set: a client cycling a Vary'd field's
	// value, or the many callers of an authorized route, add a key each.
	// Beyond it the soonest to expire are dropped, entries and all, so
	// every stored entry stays findable by a purge.
	urlSetMax = 4096
)

// Start subscribes to the purge channel (when OnPurge is set), resubscribing
// after a broken connection until Close.
func (r *Redis) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	if r.OnPurge == nil {
		return
	}
	go func() {
		for ctx.Err() == nil {
			err := r.Client.Receive(ctx, r.Client.B().Subscribe().Channel(purgeChannel).Build(), func(m rueidis.PubSubMessage) {
				kind, arg, ok := strings.Cut(m.Message, "\x00")
				if p := (Purge{Kind: kind, Arg: arg}); ok && p.Valid() {
					r.OnPurge(p)
				}
			})
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.Log.Warn("cache: purge subscription broken, resubscribing", "error", err.Error())
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
}

// Close ends the subscription (the client is the gateway's, not closed here).
func (r *Redis) Close() {
	if r.stop != nil {
		r.stop()
	}
}

// Down reports whether the store is skipping Redis after a failure.
func (r *Redis) Down() bool { return time.Now().UnixNano() < r.downUntil.Load() }

// Failures counts failed Redis calls.
func (r *Redis) Failures() int64 { return r.failures.Load() }

func (r *Redis) failed(op string, err error) {
	r.failures.Add(1)
	now := time.Now()
	if prev := r.downUntil.Swap(now.Add(downFor).UnixNano()); prev < now.UnixNano() {
		r.Log.Warn("cache: redis call failed: serving from memory or the upstream for now", "op", op, "error", err.Error())
	}
}

// Get reads key. A missing key, a corrupt value, a timeout or a Redis
// outage are all misses.
func (r *Redis) Get(ctx context.Context, key []byte) (*Entry, bool) {
	if r.Down() {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	b, err := r.Client.Do(ctx, r.Client.B().Get().Key(redisPrefix+string(key)).Build()).AsBytes()
	if err != nil {
		if !rueidis.IsRedisNil(err) {
			r.failed("get", err)
		}
		return nil, false
	}
	e, err := Unmarshal(b)
	if err != nil || e.Key != string(key) {
		return nil, false
	}
	return e, true
}

// Set writes e with an expiry of e.Retain, and adds its key to each of
// its tags' sets (kept as long as the longest member).
func (r *Redis) Set(ctx context.Context, e *Entry, now int64) {
	if r.Down() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	ttl := e.Retain(now)
	k := redisPrefix + e.Key
	// The URL's set (a key purge and an unsafe request's invalidation
	// read it instead of scanning the keyspace): expired members
	// trimmed, this key added with its expiry, its size read for the cap.
	nowMs := now / int64(time.Millisecond)
	us := redisURLPre + URLPart(e.Key)
	cmds := rueidis.Commands{
		r.Client.B().Set().Key(k).Value(rueidis.BinaryString(e.Marshal())).Px(ttl).Build(),
		r.Client.B().Zremrangebyscore().Key(us).Min("-inf").Max(strconv.FormatInt(nowMs, 10)).Build(),
		r.Client.B().Zadd().Key(us).ScoreMember().ScoreMember(float64(nowMs+ttl.Milliseconds()), e.Key).Build(),
		r.Client.B().Zcard().Key(us).Build(),
	}
	const card = 3 // cmds index of the ZCARD
	// Sets kept as long as their longest-lived member: the URL's, and
	// each tag's.
	sets := append(make([]string, 0, len(e.Tags)+1), us)
	for _, t := range e.Tags {
		cmds = append(cmds, r.Client.B().Sadd().Key(redisTagPre+t).Member(e.Key).Build())
		sets = append(sets, redisTagPre+t)
	}
	for _, sk := range sets {
		cmds = append(cmds, r.Client.B().Pexpire().Key(sk).Milliseconds(ttl.Milliseconds()).Gt().Build(),
			r.Client.B().Pexpire().Key(sk).Milliseconds(ttl.Milliseconds()).Nx().Build())
	}
	res := r.Client.DoMulti(ctx, cmds...)
	for _, res := range res {
		if err := res.Error(); err != nil {
			r.failed("set", err)
			return
		}
	}
	if n, _ := res[card].AsInt64(); n > urlSetMax {
		// Over the cap: the soonest to expire go, entries too.
		popped, err := r.Client.Do(ctx, r.Client.B().Zpopmin().Key(us).Count(n-urlSetMax).Build()).AsZScores()
		if err != nil {
			r.failed("set", err)
			return
		}
		keys := make([]string, len(popped))
		for i, z := range popped {
			keys[i] = redisPrefix + z.Member
		}
		if _, err := r.unlinkKeys(ctx, keys); err != nil {
			r.failed("set", err)
		}
	}
}

// Purge deletes the shared copies p selects and publishes p, so every
// instance drops its memory copies. Unlike Get and Set it reports
// errors: an admin asking for a purge must know it did not happen.
func (r *Redis) Purge(ctx context.Context, p Purge) (int, error) {
	if p.Kind == PurgeExact || p.Kind == PurgeInvalidate {
		// On the request path (an unsafe request's invalidation): one
		// timeout at most, and none while Redis is known down.
		if r.Down() {
			return 0, nil
		}
		n, err := r.purge(ctx, p, r.Timeout)
		if err != nil {
			r.failed("invalidate", err)
		}
		return n, err
	}
	return r.purge(ctx, p, 10*r.Timeout)
}

func (r *Redis) purge(ctx context.Context, p Purge, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n, err := r.unlink(ctx, p)
	// Published whatever came of the deletion: the memory tiers drop
	// their copies even when the shared ones could not all be deleted
	// (the error is still reported). Its own short budget: the deletion
	// may have used all of ctx's.
	pctx, pcancel := context.WithTimeout(context.Background(), r.Timeout)
	defer pcancel()
	if perr := r.Client.Do(pctx, r.Client.B().Publish().Channel(purgeChannel).Message(p.Kind+"\x00"+p.Arg).Build()).Error(); perr != nil && err == nil {
		err = perr
	}
	return n, err
}

// unlink deletes the shared copies p selects. A key or tag purge reads
// the URL's or tag's set of keys; a prefix purge walks the keyspace (a
// rare admin call), deleting each SCAN page as it comes.
func (r *Redis) unlink(ctx context.Context, p Purge) (int, error) {
	switch p.Kind {
	case PurgeKey, PurgeTag, PurgeInvalidate:
		set := redisTagPre + p.Arg
		if p.Kind != PurgeTag {
			// The URL's set; a purge naming a whole key (a route's, a
			// variant's) takes the members it selects.
			set = redisURLPre + URLPart(p.Arg)
		}
		var members []string
		var err error
		if p.Kind == PurgeTag {
			members, err = r.Client.Do(ctx, r.Client.B().Smembers().Key(set).Build()).AsStrSlice()
		} else {
			members, err = r.Client.Do(ctx, r.Client.B().Zrange().Key(set).Min("0").Max("-1").Build()).AsStrSlice()
		}
		if err != nil {
			return 0, err
		}
		keys := make([]string, 0, len(members)+2)
		var gone []string // the URL set's members purged
		for _, m := range members {
			if p.Matches(&Entry{Key: m}) || p.Kind == PurgeTag {
				keys = append(keys, redisPrefix+m)
				gone = append(gone, m)
			}
		}
		if p.Kind != PurgeTag {
			keys = append(keys, redisPrefix+p.Arg) // a key stored without a set
		}
		n, err := r.unlinkKeys(ctx, keys)
		if err != nil {
			return n, err
		}
		switch {
		case p.Kind == PurgeTag || URLPart(p.Arg) == p.Arg:
			_, err = r.Client.Do(ctx, r.Client.B().Unlink().Key(set).Build()).AsInt64()
		case len(gone) > 0:
			// Part of the URL's keys: they leave its set.
			err = r.Client.Do(ctx, r.Client.B().Zrem().Key(set).Member(gone...).Build()).Error()
		}
		return n, err
	case PurgePrefix:
		n := 0
		var cursor uint64
		for {
			e, err := r.Client.Do(ctx, r.Client.B().Scan().Cursor(cursor).Match(globEscape(redisPrefix+p.Arg)+"*").Count(1000).Build()).AsScanEntry()
			if err != nil {
				return n, err
			}
			d, err := r.unlinkKeys(ctx, e.Elements)
			n += d
			if err != nil {
				return n, err
			}
			if cursor = e.Cursor; cursor == 0 {
				return n, nil
			}
		}
	case PurgeExact:
		return r.unlinkKeys(ctx, []string{redisPrefix + p.Arg})
	}
	return 0, errors.New("cache: unknown purge kind")
}

// unlinkKeys deletes keys in batches and counts those that existed.
func (r *Redis) unlinkKeys(ctx context.Context, keys []string) (int, error) {
	n := 0
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 500)]
		keys = keys[len(batch):]
		d, err := r.Client.Do(ctx, r.Client.B().Unlink().Key(batch...).Build()).AsInt64()
		if err != nil {
			return n, err
		}
		n += int(d)
	}
	return n, nil
}

// globEscape escapes Redis glob characters, so a purged prefix matches
// itself literally.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
