package limiter

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// maxScans bounds the SCAN calls of one RedisQuotas.List: with many
// other keys in the database (rate limits, API keys) a SCAN can match
// none of its batch, and a page must still end. What is left is in the
// next cursor.
const maxScans = 16

// List pages through the quota keys in Redis with SCAN, matching the
// quota prefix and asking for about limit keys a call (COUNT is a hint:
// a page can hold a few more than limit, or fewer, and SCAN may return a
// key again on a later page if the database rehashed meanwhile; a key
// counted during the listing may or may not be in it). Each key's
// counters are then read in one pipeline.
//
// The cursor is SCAN's, as a decimal number. On a Redis Cluster each
// master holds its own keys and its own SCAN cursor: List scans the
// masters one after the other in address order, and its cursor is
// "address,scan-cursor". Replicas are skipped (they hold copies of their
// master's keys). A resharding during the listing can miss or repeat the
// keys of the slots that moved.
//
// Counts taken in the local fallback while Redis was down are not
// listed: Usage and Reset, like List, are about Redis's counters.
func (q *RedisQuotas) List(cursor string, limit int) ([]QuotaUsage, string, error) {
	limit = max(limit, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cluster := q.Client.Mode() == rueidis.ClientModeCluster
	var node string
	var nodes []string
	var clients map[string]rueidis.Client
	scanCursor := cursor
	if cluster {
		clients = q.Client.Nodes()
		nodes = make([]string, 0, len(clients))
		for addr := range clients {
			nodes = append(nodes, addr)
		}
		slices.Sort(nodes)
		if cursor == "" {
			cursor = ","
		}
		var ok bool
		if node, scanCursor, ok = strings.Cut(cursor, ","); !ok {
			return nil, "", ErrBadCursor
		}
	}
	sc := uint64(0)
	if scanCursor != "" {
		var err error
		if sc, err = strconv.ParseUint(scanCursor, 10, 64); err != nil {
			return nil, "", ErrBadCursor
		}
	}
	// on is the client SCAN runs on: the one server, or the current
	// cluster master.
	on := q.Client
	if cluster {
		var err error
		if on, node, sc, err = q.nextMaster(ctx, clients, nodes, node, sc); err != nil {
			return nil, "", err
		}
		if on == nil {
			return nil, "", nil
		}
	}
	seen := map[string]bool{}
	var keys []string
	done := false
	for scans := 0; scans < maxScans && len(keys) < limit && !done; scans++ {
		e, err := on.Do(ctx, on.B().Scan().Cursor(sc).Match(redisQuotaPrefix+"*").Count(int64(limit-len(keys))).Build()).AsScanEntry()
		if err != nil {
			return nil, "", fmt.Errorf("quota list: scan: %w", err)
		}
		for _, k := range e.Elements {
			if !seen[k] && strings.HasPrefix(k, redisQuotaPrefix) && strings.HasSuffix(k, "}") {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		sc = e.Cursor
		if sc != 0 {
			continue
		}
		if !cluster {
			done = true
			break
		}
		// This master is done: on to the next one.
		if on, node, sc, err = q.nextMaster(ctx, clients, nodes, node+"\x00", 0); err != nil {
			return nil, "", err
		}
		done = on == nil
	}
	page, err := q.usages(ctx, keys)
	if err != nil {
		return nil, "", err
	}
	switch {
	case done:
		return page, "", nil
	case cluster:
		return page, node + "," + strconv.FormatUint(sc, 10), nil
	}
	return page, strconv.FormatUint(sc, 10), nil
}

// nextMaster returns the first cluster master at or after address from
// (in address order) and the SCAN cursor to go on with there: sc on from
// itself, 0 on a later node. A nil client: no master left.
func (q *RedisQuotas) nextMaster(ctx context.Context, clients map[string]rueidis.Client, nodes []string, from string, sc uint64) (rueidis.Client, string, uint64, error) {
	for _, addr := range nodes {
		if addr < from {
			continue
		}
		if addr != from {
			sc = 0
		}
		c := clients[addr]
		role, err := c.Do(ctx, c.B().Role().Build()).ToArray()
		if err != nil || len(role) == 0 {
			return nil, "", 0, fmt.Errorf("quota list: role of %s: %w", addr, err)
		}
		if r, _ := role[0].ToString(); r == "master" {
			return c, addr, sc, nil
		}
	}
	return nil, "", 0, nil
}

// usages reads the counters of Redis keys (full quota keys) in one
// pipeline; keys gone or expired since the SCAN are left out.
func (q *RedisQuotas) usages(ctx context.Context, keys []string) ([]QuotaUsage, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make(rueidis.Commands, len(keys))
	for i, k := range keys {
		cmds[i] = q.Client.B().Hgetall().Key(k).Build()
	}
	now := time.Now().UnixNano()
	page := make([]QuotaUsage, 0, len(keys))
	for i, r := range q.Client.DoMulti(ctx, cmds...) {
		m, err := r.AsIntMap()
		if err != nil {
			return nil, fmt.Errorf("quota list: %w", err)
		}
		if m["per"] <= 0 {
			continue // gone since the SCAN
		}
		key := strings.TrimSuffix(strings.TrimPrefix(keys[i], redisQuotaPrefix), "}")
		if u, ok := usageAt(key, m["w"], m["c"], m["p"], m["per"]*1000, now); ok {
			page = append(page, u)
		}
	}
	return page, nil
}
