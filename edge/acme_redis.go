package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/redis/rueidis"
)

// redisStorage is certmagic's Storage in Redis (acme.storage.type:
// redis), for several sluice instances: one of them orders a
// certificate, under a lock the others wait on, and all of them load it
// from here and answer its challenges (certmagic keeps challenge tokens
// in the storage too).
//
// Layout, all under one hash tag so a Redis Cluster keeps them in one
// slot (the scripts touch several keys):
//
//	{PREFIX}:k:KEY   a hash: v = the value, m = when stored (unix ns)
//	{PREFIX}:index   a set of every KEY, for List and directory semantics
//	{PREFIX}:lock:N  a lock: a random token, with an expiry
//
// A lock expires redisLockTTL after its last refresh; the holder refreshes
// it every third of that while it holds it, so a crashed instance's lock
// frees itself and a live one's never does.
type redisStorage struct {
	client rueidis.Client
	base   string
	log    *slog.Logger

	mu    sync.Mutex
	locks map[string]*redisLock // held by this instance
	// local is a one-slot semaphore per lock name, taken before the
	// Redis lock and given back after it: two holders in this instance
	// never share one Redis lock (else, after the lock expired and this
	// instance took it again, the first holder's Unlock would free the
	// second's).
	local map[string]chan struct{}
	// unlocked is closed (and replaced) at every Unlock: waitUnlocked
	// waits on it.
	unlocked chan struct{}
}

type redisLock struct {
	token string
	stop  context.CancelFunc
	done  chan struct{}
}

// redisLockTTL and redisLockPoll: how long an unrefreshed lock lives, and
// how often a waiter tries again.
var (
	redisLockTTL  = 30 * time.Second
	redisLockPoll = 200 * time.Millisecond
)

func newRedisStorage(c rueidis.Client, prefix string, log *slog.Logger) *redisStorage {
	return &redisStorage{client: c, base: "{" + prefix + "}", log: log, locks: map[string]*redisLock{},
		local: map[string]chan struct{}{}, unlocked: make(chan struct{})}
}

var _ certmagic.Storage = (*redisStorage)(nil)

func (s *redisStorage) dataKey(key string) string { return s.base + ":k:" + key }
func (s *redisStorage) indexKey() string          { return s.base + ":index" }
func (s *redisStorage) lockKey(name string) string {
	return s.base + ":lock:" + name
}

// storeScript sets the value and its time and indexes the key, at once.
var storeScript = rueidis.NewLuaScript(`
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'm', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1`)

// Store implements certmagic.Storage.
func (s *redisStorage) Store(ctx context.Context, key string, value []byte) error {
	err := storeScript.Exec(ctx, s.client, []string{s.dataKey(key), s.indexKey()},
		[]string{string(value), strconv.FormatInt(time.Now().UnixNano(), 10), key}).Error()
	if err != nil {
		return fmt.Errorf("acme redis storage: store %s: %w", key, err)
	}
	return nil
}

// Load implements certmagic.Storage.
func (s *redisStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.client.Do(ctx, s.client.B().Hget().Key(s.dataKey(key)).Field("v").Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("acme redis storage: load %s: %w", key, err)
	}
	return v, nil
}

// deleteScript deletes a key and every key under it (KEY/...).
var deleteScript = rueidis.NewLuaScript(`
local prefix = ARGV[1] .. '/'
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if k == ARGV[1] or string.sub(k, 1, #prefix) == prefix then
    redis.call('DEL', ARGV[2] .. k)
    redis.call('SREM', KEYS[1], k)
  end
end
return 1`)

// Delete implements certmagic.Storage: a directory goes with everything
// in it; a missing key is not an error.
func (s *redisStorage) Delete(ctx context.Context, key string) error {
	err := deleteScript.Exec(ctx, s.client, []string{s.indexKey()}, []string{key, s.base + ":k:"}).Error()
	if err != nil {
		return fmt.Errorf("acme redis storage: delete %s: %w", key, err)
	}
	return nil
}

// keys returns every stored key.
func (s *redisStorage) keys(ctx context.Context) ([]string, error) {
	ks, err := s.client.Do(ctx, s.client.B().Smembers().Key(s.indexKey()).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("acme redis storage: list: %w", err)
	}
	return ks, nil
}

// Exists implements certmagic.Storage: a key or a directory.
func (s *redisStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage: the keys directly under dir, or with
// recursive every key and directory below it.
func (s *redisStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	all, err := s.keys(ctx)
	if err != nil {
		return nil, err
	}
	out := listUnder(all, dir, recursive)
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	return out, nil
}

// listUnder is List over a list of keys: file-system semantics over
// slash-separated names (a "directory" is a prefix of whole components).
func listUnder(all []string, dir string, recursive bool) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	if dir == "" {
		prefix = ""
	}
	var out []string
	add := func(k string) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, k := range all {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok || rest == "" {
			continue
		}
		if !recursive {
			first, _, _ := strings.Cut(rest, "/")
			add(prefix + first)
			continue
		}
		parts := strings.Split(rest, "/")
		for i := range parts {
			add(prefix + strings.Join(parts[:i+1], "/"))
		}
	}
	slices.Sort(out)
	return out
}

// Stat implements certmagic.Storage.
func (s *redisStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	vals, err := s.client.Do(ctx, s.client.B().Hmget().Key(s.dataKey(key)).Field("v", "m").Build()).ToArray()
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("acme redis storage: stat %s: %w", key, err)
	}
	if len(vals) == 2 && !vals[0].IsNil() {
		v, _ := vals[0].ToString()
		m, _ := vals[1].AsInt64()
		return certmagic.KeyInfo{Key: key, Modified: time.Unix(0, m), Size: int64(len(v)), IsTerminal: true}, nil
	}
	all, err := s.keys(ctx)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(listUnder(all, key, false)) > 0 {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, fs.ErrNotExist
}

// refreshScript and unlockScript act on a lock only while it holds the
// caller's token: a lock that expired and was taken by another instance
// is never extended or released by the old holder.
var (
	refreshScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
	unlockScript = rueidis.NewLuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// Lock implements certmagic.Locker: it waits until it holds name (or ctx
// ends), then keeps the lock alive until Unlock.
func (s *redisStorage) Lock(ctx context.Context, name string) error {
	s.mu.Lock()
	sem := s.local[name]
	if sem == nil {
		sem = make(chan struct{}, 1)
		s.local[name] = sem
	}
	s.mu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("acme redis storage: waiting for lock %s: %w", name, ctx.Err())
	}
	if err := s.lockRedis(ctx, name); err != nil {
		<-sem
		return err
	}
	return nil
}

// lockRedis takes the Redis lock, once this instance's own is held.
func (s *redisStorage) lockRedis(ctx context.Context, name string) error {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	key := s.lockKey(name)
	for {
		err := s.client.Do(ctx, s.client.B().Set().Key(key).Value(token).Nx().PxMilliseconds(redisLockTTL.Milliseconds()).Build()).Error()
		if err == nil {
			break
		}
		if !rueidis.IsRedisNil(err) { // nil: someone else holds it
			return fmt.Errorf("acme redis storage: lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("acme redis storage: waiting for lock %s: %w", name, ctx.Err())
		case <-time.After(redisLockPoll):
		}
	}
	rctx, stop := context.WithCancel(context.Background())
	l := &redisLock{token: token, stop: stop, done: make(chan struct{})}
	go s.keepLock(rctx, name, l)
	s.mu.Lock()
	s.locks[name] = l
	s.mu.Unlock()
	return nil
}

// keepLock refreshes a held lock until stopped. A refresh that fails is
// logged (the next one may work: the lock lives a TTL); a lock found
// expired or held by another token is lost (Redis was unreachable for a
// TTL, or a holder's clock stalled): logged, and no longer refreshed,
// since another instance may now be doing the same work.
func (s *redisStorage) keepLock(ctx context.Context, name string, l *redisLock) {
	defer close(l.done)
	t := time.NewTicker(redisLockTTL / 3)
	defer t.Stop()
	key := s.lockKey(name)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := refreshScript.Exec(ctx, s.client, []string{key}, []string{l.token, strconv.FormatInt(redisLockTTL.Milliseconds(), 10)}).AsInt64()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				s.log.Warn("acme redis storage: refreshing a lock failed", "lock", name, "error", err.Error())
			case n == 0:
				s.log.Error("acme redis storage: lock lost (it expired or another instance holds it); another instance may do the same work", "lock", name)
				return
			}
		}
	}
}

// Unlock implements certmagic.Locker.
func (s *redisStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	l := s.locks[name]
	s.mu.Unlock()
	if l == nil {
		return errors.New("acme redis storage: unlock " + name + ": not held by this instance")
	}
	l.stop()
	<-l.done
	err := unlockScript.Exec(ctx, s.client, []string{s.lockKey(name)}, []string{l.token}).Error()
	s.mu.Lock()
	delete(s.locks, name)
	close(s.unlocked)
	s.unlocked = make(chan struct{})
	<-s.local[name] // the next holder in this instance may go on
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("acme redis storage: unlock %s: %w", name, err)
	}
	return nil
}

// waitUnlocked waits until this instance holds no lock, or ctx ends.
func (s *redisStorage) waitUnlocked(ctx context.Context) {
	for {
		s.mu.Lock()
		n, ch := len(s.locks), s.unlocked
		s.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// String names the storage in certmagic's logs.
func (s *redisStorage) String() string { return "redis " + s.base }

// checkRedisForACME warns at start about a Redis that may lose what the
// ACME storage keeps: an allkeys-* eviction policy can evict a
// certificate, its key, the index or a lock; without persistence a Redis
// restart loses the account and certificates, and every instance orders
// again (into the CA's rate limits). A Redis that does not answer CONFIG
// GET (managed services often refuse it) is not checked.
func checkRedisForACME(ctx context.Context, c rueidis.Client, log *slog.Logger) {
	conf := func(name string) (string, bool) {
		m, err := c.Do(ctx, c.B().ConfigGet().Parameter(name).Build()).AsStrMap()
		v, ok := m[name]
		return v, err == nil && ok
	}
	if p, ok := conf("maxmemory-policy"); ok && strings.HasPrefix(p, "allkeys-") {
		log.Warn("acme redis storage: Redis may evict certificates, keys and locks (use noeviction or a volatile-* policy)", "maxmemory-policy", p)
	}
	save, ok1 := conf("save")
	aof, ok2 := conf("appendonly")
	if ok1 && ok2 && save == "" && aof == "no" {
		log.Warn("acme redis storage: Redis persists nothing (save and appendonly off): a Redis restart loses the certificates, and they are ordered again")
	}
}
