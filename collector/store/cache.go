package store

import (
	"context"
	"sync"
	"time"
)

// keyedCache holds a small table's rows in memory by key (a token's hash):
// reloaded every ttl and, at most once per missReload, when a key is
// unknown, so a row added a moment ago is found at once while unknown keys
// cannot hammer ClickHouse. A failed reload keeps serving the last good
// copy while ClickHouse is away.
type keyedCache[T any] struct {
	load       func(ctx context.Context) ([]T, error)
	key        func(T) string
	ttl        time.Duration
	missReload time.Duration

	mu       sync.Mutex
	byKey    map[string]T
	loadedAt time.Time
}

func newKeyedCache[T any](load func(context.Context) ([]T, error), key func(T) string) *keyedCache[T] {
	return &keyedCache[T]{load: load, key: key, ttl: 30 * time.Second, missReload: time.Second}
}

func (c *keyedCache[T]) lookup(ctx context.Context, key string) (T, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	age := time.Since(c.loadedAt)
	v, ok := c.byKey[key]
	if c.byKey != nil && age <= c.ttl && (ok || age <= c.missReload) {
		return v, ok, nil
	}
	rows, err := c.load(ctx)
	if err != nil {
		if c.byKey == nil {
			return v, false, err
		}
		return v, ok, nil
	}
	c.byKey = make(map[string]T, len(rows))
	for _, r := range rows {
		c.byKey[c.key(r)] = r
	}
	c.loadedAt = time.Now()
	v, ok = c.byKey[key]
	return v, ok, nil
}
