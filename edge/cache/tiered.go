package cache

import "context"

// Tiered is memory in front of Redis: a hit in memory costs no Redis
// call, a Redis hit is copied to memory, and writes go to both. Purges
// go to Redis, which tells every instance's memory tier (its own too,
// which is also purged at once so the caller sees its purge done).
type Tiered struct {
	Mem    *Memory
	Shared *Redis
}

var _ Store = (*Tiered)(nil)

// NewTiered joins m and r, and subscribes m to r's purges. Call before r.Start.
func NewTiered(m *Memory, r *Redis) *Tiered {
	r.OnPurge = func(p Purge) { _, _ = m.Purge(context.Background(), p) }
	return &Tiered{Mem: m, Shared: r}
}

func (t *Tiered) Get(ctx context.Context, key []byte) (*Entry, bool) {
	if e, ok := t.Mem.Get(ctx, key); ok {
		return e, true
	}
	e, ok := t.Shared.Get(ctx, key)
	if ok {
		t.Mem.Set(ctx, e, 0)
	}
	return e, ok
}

func (t *Tiered) Set(ctx context.Context, e *Entry, now int64) {
	t.Mem.Set(ctx, e, now)
	t.Shared.Set(ctx, e, now)
}

func (t *Tiered) Purge(ctx context.Context, p Purge) (int, error) {
	n, _ := t.Mem.Purge(ctx, p)
	m, err := t.Shared.Purge(ctx, p)
	return max(n, m), err
}

func (t *Tiered) Close() {
	t.Shared.Close()
	t.Mem.Close()
}
