package cache

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

func newTestRedis(t *testing.T) *Redis {
	t.Helper()
	srv := testutil.StartRedis(t)
	r := &Redis{Client: testutil.RedisClient(t, srv.Addr), Timeout: 2 * time.Second, Log: slog.New(slog.DiscardHandler)}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

// urlSetSize is how many keys the URL's set lists.
func urlSetSize(t *testing.T, r *Redis, url string) int64 {
	t.Helper()
	n, err := r.Client.Do(context.Background(), r.Client.B().Zcard().Key(redisURLPre+url).Build()).AsInt64()
	if err != nil { // a plain set (how it was kept before)
		n, err = r.Client.Do(context.Background(), r.Client.B().Scard().Key(redisURLPre+url).Build()).AsInt64()
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func variant(url string, i int, now int64, life time.Duration) *Entry {
	return &Entry{Key: fmt.Sprintf("%s\x00r:r\x00s:http\x00v:%d", url, i), Route: "r", Status: 200,
		ResponseTime: now, Lifetime: int64(life), Body: []byte("x")}
}

// The URL's set of keys (what a key purge and an unsafe request's
// invalidation read) must not grow without bound: a client cycling a
// Vary'd header's value adds a key per value. Purged keys leave it,
// expired ones are trimmed when the URL is stored again, and it holds at
// most urlSetMax keys (the oldest to expire go, entries and all, so no
// stored entry is missing from its set).
func TestRedisURLSetIsBounded(t *testing.T) {
	ctx := context.Background()
	r := newTestRedis(t)
	now := time.Now().UnixNano()
	const url = "a/p"

	for i := range 3 {
		r.Set(ctx, variant(url, i, now, time.Minute), now)
	}
	if n := urlSetSize(t, r, url); n != 3 {
		t.Fatalf("set holds %d keys, want 3", n)
	}
	if _, err := r.Purge(ctx, Purge{Kind: PurgeInvalidate, Arg: url + "\x00r:r"}); err != nil {
		t.Fatal(err)
	}
	if n := urlSetSize(t, r, url); n != 0 {
		t.Fatalf("after the route's invalidation the set still holds %d keys", n)
	}
	for i := range 3 {
		if _, ok := r.Get(ctx, []byte(variant(url, i, now, 0).Key)); ok {
			t.Fatalf("variant %d still stored after the route's invalidation", i)
		}
	}

	// Expired members: stored an hour later, the minute-long ones are gone.
	for i := range 3 {
		r.Set(ctx, variant(url, i, now, time.Minute), now)
	}
	later := now + int64(time.Hour)
	r.Set(ctx, variant(url, 99, later, time.Minute), later)
	if n := urlSetSize(t, r, url); n != 1 {
		t.Fatalf("set holds %d keys after the others expired, want 1", n)
	}

	// The cap.
	for i := range urlSetMax + 10 {
		r.Set(ctx, variant(url, 1000+i, later, time.Minute+time.Duration(i)*time.Second), later)
	}
	if n := urlSetSize(t, r, url); n != urlSetMax {
		t.Fatalf("set holds %d keys, want the cap %d", n, urlSetMax)
	}
	// The first ones (soonest to expire) were dropped with their entries.
	if _, ok := r.Get(ctx, []byte(variant(url, 99, later, 0).Key)); ok {
		t.Fatal("an entry dropped from its URL's set is still stored (a purge could not find it)")
	}
	if _, ok := r.Get(ctx, []byte(variant(url, 1000+urlSetMax+9, later, 0).Key)); !ok {
		t.Fatal("the newest entry is not stored")
	}
}
