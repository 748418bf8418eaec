package query

import (
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// scan reads any query's rows into a Table: grouping columns (aliased
// d_NAME) are named NAME; nan quantiles (an empty set), NULL and the zero
// DateTime become nil; floats are rounded to 4 decimals.
func scan(rows driver.Rows) (*Table, error) {
	types := rows.ColumnTypes()
	t := &Table{}
	for _, c := range rows.Columns() {
		t.Columns = append(t.Columns, strings.TrimPrefix(c, "d_"))
	}
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]any, len(dest))
		for i, v := range dest {
			row[i] = clean(reflect.ValueOf(v).Elem().Interface())
		}
		t.Rows = append(t.Rows, row)
	}
	return t, rows.Err()
}

func clean(v any) any {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		v = rv.Elem().Interface()
	}
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return math.Round(v*1e4) / 1e4
	case time.Time:
		if v.Unix() <= 0 {
			return nil
		}
		return v.UTC()
	}
	return v
}
