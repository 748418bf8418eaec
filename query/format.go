package query

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Formats lists the output formats Write accepts.
var Formats = []string{"table", "csv", "json"}

// Write prints t in format: an aligned table for people, CSV or JSON
// (an array of objects) for programs.
func Write(w io.Writer, t *Table, format string) error {
	switch format {
	case "", "table":
		return writeTable(w, t)
	case "csv":
		return writeCSV(w, t)
	case "json":
		return writeJSON(w, t)
	}
	return fmt.Errorf("unknown format %q: choose %s", format, strings.Join(Formats, ", "))
}

func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		return v
	case time.Time:
		return v.Format(time.RFC3339)
	default:
		return fmt.Sprint(v)
	}
}

func writeTable(w io.Writer, t *Table) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.Columns, "\t")+"\t")
	for _, row := range t.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			if cells[i] = cell(v); v == nil {
				cells[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	if len(t.Rows) == 0 {
		fmt.Fprintln(tw, "(no results in this window)\t")
	}
	return tw.Flush()
}

func writeCSV(w io.Writer, t *Table) error {
	cw := csv.NewWriter(w)
	cw.Write(t.Columns)
	for _, row := range t.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = cell(v)
		}
		cw.Write(cells)
	}
	cw.Flush()
	return cw.Error()
}

func writeJSON(w io.Writer, t *Table) error {
	out := make([]map[string]any, len(t.Rows))
	for i, row := range t.Rows {
		m := make(map[string]any, len(row))
		for j, v := range row {
			m[t.Columns[j]] = v
		}
		out[i] = m
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
