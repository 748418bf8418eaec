package chtest

import (
	"testing"
	"time"
)

func TestBind(t *testing.T) {
	for _, c := range []struct {
		sql  string
		args []any
		want string
	}{
		{"SELECT ? + ?", []any{1, uint32(2)}, "SELECT 1 + 2"},
		{"WHERE a = ? AND b = '?'", []any{"it's"}, `WHERE a = 'it\'s' AND b = '?'`},
		{"-- what's this?\nSELECT ?", []any{1.5}, "-- what's this?\nSELECT 1.5"},
		{"SELECT has(?, x), toDateTime(?)", []any{[]string{"a", `b\`}, time.Unix(60, 0)}, `SELECT has(['a', 'b\\'], x), toDateTime(toDateTime(60))`},
	} {
		got, err := Bind(c.sql, c.args...)
		if err != nil || got != c.want {
			t.Errorf("Bind(%q, %v) = %q, %v; want %q", c.sql, c.args, got, err, c.want)
		}
	}
	for _, args := range [][]any{{}, {1, 2}, {struct{}{}}} {
		if _, err := Bind("SELECT ?", args...); err == nil {
			t.Errorf("Bind(SELECT ?, %v): want an error", args)
		}
	}
}
