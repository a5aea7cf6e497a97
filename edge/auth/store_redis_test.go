package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicegw/sluice/internal/testutil"
)

func TestRedisStore(t *testing.T) {
	r := testutil.StartRedis(t)
	redisStoreChecks(t, []string{r.Addr})
	// Redis gone: lookups fail with an error that is not "not found", so
	// the gateway answers 503 instead of treating the key as unknown.
	a := NewRedisStore(testutil.RedisClient(t, r.Addr), time.Second)
	_, raw, _ := a.Create(context.Background(), KeySpec{Name: "x"})
	r.Stop()
	if _, err := a.Lookup([]byte(raw), time.Now()); err == nil || errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("with Redis down: %v", err)
	}
}

// The store's records, ids and index live on different slots of a Redis
// Cluster; rueidis routes each command to its node.
func TestRedisStoreOnARealRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	redisStoreChecks(t, testutil.StartRedisCluster(t))
}

func redisStoreChecks(t *testing.T, addrs []string) {
	ctx := context.Background()
	// Two stores on two connections: two sluice instances.
	a := NewRedisStore(testutil.RedisClient(t, addrs...), time.Second)
	b := NewRedisStore(testutil.RedisClient(t, addrs...), time.Second)

	rec, raw, err := a.Create(ctx, KeySpec{Name: "svc", Roles: []string{"reader"}, Quota: 100})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Lookup([]byte(raw), time.Now())
	if err != nil || got.ID != rec.ID || got.Quota != 100 {
		t.Fatalf("lookup through the other instance: %+v %v", got, err)
	}
	again, _ := b.Lookup([]byte(raw), time.Now())
	if again != got {
		t.Error("a cache hit decoded the record again")
	}
	if _, err := b.Lookup([]byte(raw+"x"), time.Now()); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	list, err := b.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "svc" {
		t.Fatalf("list %+v %v", list, err)
	}

	// Revoke through a: b, which holds the key in its client-side cache,
	// refuses it within a second (Redis pushes the invalidation).
	if _, err := a.Revoke(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		if _, err := b.Lookup([]byte(raw), time.Now()); errors.Is(err, ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other instance still accepts a revoked key after 1s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.Delete(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, rec.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := a.Delete(ctx, rec.ID); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("second delete: %v", err)
	}

}
