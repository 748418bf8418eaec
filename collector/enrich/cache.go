package enrich

import "sync"

// cache remembers recent answers, up to size of them; when full it starts
// over (crude, but bounded, and the next requests refill it).
type cache[K comparable, V any] struct {
	mu   sync.Mutex
	m    map[K]V
	size int
}

func newCache[K comparable, V any](size int) *cache[K, V] {
	return &cache[K, V]{m: make(map[K]V), size: size}
}

func (c *cache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	v, ok := c.m[k]
	c.mu.Unlock()
	return v, ok
}

func (c *cache[K, V]) put(k K, v V) {
	c.mu.Lock()
	if len(c.m) >= c.size {
		clear(c.m)
	}
	c.m[k] = v
	c.mu.Unlock()
}
