package chtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bind puts args into sql's positional ? placeholders as ClickHouse
// literals, the way clickhouse-go binds them before a query leaves for the
// server, so the product's parameterised SQL runs on engines reached as
// text (HTTP, chDB). It knows the types the product binds: integers,
// floats, strings, times (as Unix seconds) and slices of those.
func Bind(sql string, args ...any) (string, error) {
	var b strings.Builder
	quote := byte(0)
	n := 0
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case quote != 0:
			if c == '\\' && i+1 < len(sql) {
				b.WriteByte(c)
				i++
				c = sql[i]
			} else if c == quote {
				quote = 0
			}
		case c == '-' && strings.HasPrefix(sql[i:], "--"): // a comment, to the line's end
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i - 1
			}
			b.WriteString(sql[i : i+end])
			i += end - 1
			continue
		case c == '\'' || c == '`' || c == '"':
			quote = c
		case c == '?':
			if n >= len(args) {
				return "", fmt.Errorf("cannot bind: more placeholders than %d arguments in %q", len(args), sql)
			}
			lit, err := literal(args[n])
			if err != nil {
				return "", fmt.Errorf("cannot bind argument %d: %w", n+1, err)
			}
			b.WriteString(lit)
			n++
			continue
		}
		b.WriteByte(c)
	}
	if n != len(args) {
		return "", fmt.Errorf("cannot bind: %d placeholders, %d arguments in %q", n, len(args), sql)
	}
	return b.String(), nil
}

func literal(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'", nil
	case int:
		return strconv.Itoa(v), nil
	case int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v), nil
	case float32:
		return strconv.FormatFloat(float64(v), 'g', -1, 32), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case time.Time:
		return fmt.Sprintf("toDateTime(%d)", v.Unix()), nil
	case []string:
		return list(v)
	case []uint32:
		return list(v)
	case []int64:
		return list(v)
	case []float64:
		return list(v)
	}
	return "", fmt.Errorf("no literal for %T", v)
}

func list[T any](vs []T) (string, error) {
	parts := make([]string, len(vs))
	for i, v := range vs {
		s, err := literal(v)
		if err != nil {
			return "", err
		}
		parts[i] = s
	}
	return "[" + strings.Join(parts, ", ") + "]", nil
}
