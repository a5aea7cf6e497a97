package auth

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// RedisStore keeps API keys in Redis, shared by every sluice instance.
//
// Records are read-mostly, so lookups use rueidis client-side caching
// (RESP3 tracking): a hot key is answered from process memory, and when a
// key is revoked or deleted through any instance Redis pushes an
// invalidation to every instance that cached it. A decoded record is
// reused while the cached value is unchanged, so a cache hit does no JSON
// work.
//
// Layout: sluice:apikey:h:<sha256> -> record JSON; sluice:apikey:id:<id> ->
// sha256; sluice:apikeys -> set of ids.
type RedisStore struct {
	client  rueidis.Client
	timeout time.Duration
	ttl     time.Duration

	mu      sync.RWMutex
	decoded map[string]decodedRecord // by hash hex
}

type decodedRecord struct {
	raw string // the JSON it was decoded from
	rec *KeyRecord
}

// NewRedisStore uses client (which must have client-side caching on, as
// rueidis does by default). timeout bounds a request-path lookup.
func NewRedisStore(client rueidis.Client, timeout time.Duration) *RedisStore {
	return &RedisStore{client: client, timeout: timeout, ttl: 10 * time.Minute, decoded: map[string]decodedRecord{}}
}

const (
	redisHashKey = "sluice:apikey:h:"
	redisIDKey   = "sluice:apikey:id:"
	redisIDs     = "sluice:apikeys"
)

type redisRecord struct {
	KeyRecord
	Hash string `json:"sha256"`
}

func encodeRecord(r KeyRecord) string {
	b, _ := json.Marshal(redisRecord{KeyRecord: r, Hash: r.Hash})
	return string(b)
}

func decodeRecord(s string) (*KeyRecord, error) {
	var rr redisRecord
	if err := json.Unmarshal([]byte(s), &rr); err != nil {
		return nil, fmt.Errorf("api key record: %w", err)
	}
	rr.KeyRecord.Hash = rr.Hash
	return &rr.KeyRecord, nil
}

// Create stores a new key: the record first, then its id and the index,
// so a crash in between leaves at worst an unlisted, working key.
func (s *RedisStore) Create(ctx context.Context, spec KeySpec) (KeyRecord, string, error) {
	raw, err := NewRawKey()
	if err != nil {
		return KeyRecord{}, "", err
	}
	rec := newRecord(spec, raw, time.Now())
	c := s.client
	for _, resp := range c.DoMulti(ctx,
		c.B().Set().Key(redisHashKey+rec.Hash).Value(encodeRecord(rec)).Build(),
		c.B().Set().Key(redisIDKey+rec.ID).Value(rec.Hash).Build(),
		c.B().Sadd().Key(redisIDs).Member(rec.ID).Build(),
	) {
		if err := resp.Error(); err != nil {
			return KeyRecord{}, "", fmt.Errorf("api key store: %w", err)
		}
	}
	return rec, raw, nil
}

func (s *RedisStore) hashOf(ctx context.Context, id string) (string, error) {
	h, err := s.client.Do(ctx, s.client.B().Get().Key(redisIDKey+id).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return "", ErrKeyNotFound
	}
	return h, err
}

// Get returns one key.
func (s *RedisStore) Get(ctx context.Context, id string) (KeyRecord, error) {
	h, err := s.hashOf(ctx, id)
	if err != nil {
		return KeyRecord{}, err
	}
	v, err := s.client.Do(ctx, s.client.B().Get().Key(redisHashKey+h).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return KeyRecord{}, ErrKeyNotFound
	}
	if err != nil {
		return KeyRecord{}, err
	}
	r, err := decodeRecord(v)
	if err != nil {
		return KeyRecord{}, err
	}
	return *r, nil
}

// List returns every key.
func (s *RedisStore) List(ctx context.Context) ([]KeyRecord, error) {
	ids, err := s.client.Do(ctx, s.client.B().Smembers().Key(redisIDs).Build()).AsStrSlice()
	if err != nil {
		return nil, err
	}
	out := make([]KeyRecord, 0, len(ids))
	for _, id := range ids {
		r, err := s.Get(ctx, id)
		if errors.Is(err, ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Revoke marks a key revoked. The write invalidates every instance's
// cached copy.
func (s *RedisStore) Revoke(ctx context.Context, id string) (KeyRecord, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return KeyRecord{}, err
	}
	if r.RevokedAt == nil {
		now := time.Now().UTC()
		r.RevokedAt = &now
	}
	if err := s.client.Do(ctx, s.client.B().Set().Key(redisHashKey+r.Hash).Value(encodeRecord(r)).Build()).Error(); err != nil {
		return KeyRecord{}, err
	}
	return r, nil
}

// Delete removes a key.
func (s *RedisStore) Delete(ctx context.Context, id string) error {
	h, err := s.hashOf(ctx, id)
	if err != nil {
		return err
	}
	c := s.client
	for _, resp := range c.DoMulti(ctx,
		c.B().Del().Key(redisHashKey+h).Build(),
		c.B().Del().Key(redisIDKey+id).Build(),
		c.B().Srem().Key(redisIDs).Member(id).Build(),
	) {
		if err := resp.Error(); err != nil {
			return err
		}
	}
	return nil
}

// Lookup finds an active key, from the client-side cache when hot.
func (s *RedisStore) Lookup(raw []byte, now time.Time) (*KeyRecord, error) {
	sum := HashKey(raw)
	var hexBuf [64]byte
	hex.Encode(hexBuf[:], sum[:])
	h := string(hexBuf[:])
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	v, err := s.client.DoCache(ctx, s.client.B().Get().Key(redisHashKey+h).Cache(), s.ttl).ToString()
	if rueidis.IsRedisNil(err) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("api key store: %w", err)
	}
	s.mu.RLock()
	d, ok := s.decoded[h]
	s.mu.RUnlock()
	if !ok || d.raw != v {
		rec, err := decodeRecord(v)
		if err != nil {
			return nil, err
		}
		d = decodedRecord{raw: v, rec: rec}
		s.mu.Lock()
		if len(s.decoded) > 100000 {
			clear(s.decoded) // bounded; a cold restart of this memo is cheap
		}
		s.decoded[h] = d
		s.mu.Unlock()
	}
	if !d.rec.Active(now) {
		return nil, ErrKeyNotFound
	}
	return d.rec, nil
}

var _ KeyStore = (*RedisStore)(nil)
