package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestKeyedCache(t *testing.T) {
	rows, loads := []string{"a"}, 0
	var fail error
	c := newKeyedCache(func(context.Context) ([]string, error) {
		loads++
		return rows, fail
	}, func(s string) string { return s })
	ctx := context.Background()
	check := func(key string, wantOK bool, wantLoads int) {
		t.Helper()
		if _, ok, err := c.lookup(ctx, key); ok != wantOK || err != nil || loads != wantLoads {
			t.Errorf("lookup(%q): ok %v err %v after %d loads; want ok %v after %d", key, ok, err, loads, wantOK, wantLoads)
		}
	}
	check("a", true, 1)
	check("a", true, 1) // cached
	rows = []string{"a", "b"}
	check("b", false, 1) // a miss reloads at most once a second
	c.loadedAt = c.loadedAt.Add(-2 * time.Second)
	check("b", true, 2) // now it does: a row added a moment ago is found
	fail = errors.New("ClickHouse away")
	c.loadedAt = c.loadedAt.Add(-time.Minute)
	check("b", true, 3) // a failed reload serves the last good copy
	empty := newKeyedCache(func(context.Context) ([]string, error) { return nil, fail }, func(s string) string { return s })
	if _, _, err := empty.lookup(ctx, "a"); err == nil {
		t.Error("a cache that never loaded: got no error while the table cannot be read")
	}
}
