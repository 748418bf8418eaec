package enrich

import "sync"

// cache remembers recent answers, up to size of them, in two generations:
// when the newer holds half of size it becomes the older and the older is
// dropped; an answer found in the older moves to the newer. What is asked
// for often stays, however many rare keys pass through. (It used to start
// over when full: with more distinct user agents than it holds, each wipe
// cost a burst of parses; TestCacheKeepsHotKeys.)
type cache[K comparable, V any] struct {
	mu       sync.Mutex
	cur, old map[K]V
	size     int
}

func newCache[K comparable, V any](size int) *cache[K, V] {
	return &cache[K, V]{cur: make(map[K]V), old: make(map[K]V), size: max(size, 2)}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	if ok {
		delete(c.old, k)
		c.add(k, v)
	}
	return v, ok
}

func (c *cache[K, V]) put(k K, v V) {
	c.mu.Lock()
	c.add(k, v)
	c.mu.Unlock()
}

func (c *cache[K, V]) add(k K, v V) {
	if len(c.cur) >= c.size/2 {
		c.old, c.cur = c.cur, make(map[K]V, len(c.cur))
	}
	c.cur[k] = v
}
