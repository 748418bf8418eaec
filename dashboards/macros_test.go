package dashboards

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// What Grafana and the ClickHouse plugin (grafana/clickhouse-datasource)
// make of a panel's rawSql before ClickHouse sees it, in their order:
//  1. the plugin's frontend applyConditionalAll (src/data/CHDatasource.ts),
//  2. Grafana's templateSrv.replace with the plugin's format function,
//  3. the plugin's backend macros (pkg/macros/macros.go), applied by
//     grafana-plugin-sdk-go's sqlutil.Interpolate, longest name first.
// The tests below quote the plugin's own expected strings.

// grafanaVar is a variable's current selection: its values, or All, which
// (without a custom all value) stands for every option.
type grafanaVar struct {
	Values []string
	All    bool
}

type grafanaQuery struct {
	From, To time.Time
	Interval time.Duration
	Vars     map[string]grafanaVar
}

func expand(sql string, q grafanaQuery) (string, error) {
	sql = applyConditionalAll(sql, q.Vars)
	sql = replaceVars(sql, q.Vars)
	return interpolateMacros(sql, q)
}

var conditionalVar = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// applyConditionalAll mirrors CHDatasource.applyConditionalAll: from the
// last $__conditionalAll(cond, $var) back, the call becomes cond, or 1=1
// where the variable selects All (or nothing).
func applyConditionalAll(raw string, vars map[string]grafanaVar) string {
	const macro = "$__conditionalAll("
	for i := strings.LastIndex(raw, macro); i != -1; i = strings.LastIndex(raw, macro) {
		params := macroArgs(raw, i+len(macro)-1)
		if len(params) != 2 {
			return raw
		}
		phrase := params[0]
		if m := conditionalVar.FindStringSubmatch(strings.TrimSpace(params[1])); m != nil {
			name := m[1] + m[2]
			if v, ok := vars[name]; ok && (v.All || strings.Join(v.Values, ",") == "") {
				phrase = "1=1"
			}
		}
		raw = jsReplaceFirst(raw, macro+params[0]+","+params[1]+")", phrase)
	}
	return raw
}

// macroArgs mirrors CHDatasource.getMacroArgs: split at depth-1 commas up
// to the bracket closing the one at argsIndex.
func macroArgs(q string, argsIndex int) []string {
	s := q[argsIndex:]
	var args []string
	depth, last := 0, 1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '(' && c != ')' && c != ',' {
			continue
		}
		if c == '(' {
			depth++
		} else if c == ')' {
			depth--
		}
		if c == ',' && depth == 1 {
			args = append(args, s[last:i])
			last = i + 1
		}
		if depth == 0 {
			return append(args, s[last:i])
		}
	}
	return nil
}

// jsReplaceFirst is JavaScript's String.prototype.replace with a string
// pattern: the first occurrence only, and $$, $&, $` and $' in repl are
// special.
func jsReplaceFirst(s, old, repl string) string {
	i := strings.Index(s, old)
	if i < 0 {
		return s
	}
	var b strings.Builder
	for j := 0; j < len(repl); j++ {
		if repl[j] == '$' && j+1 < len(repl) {
			switch repl[j+1] {
			case '$':
				b.WriteByte('$')
				j++
				continue
			case '&':
				b.WriteString(old)
				j++
				continue
			case '`':
				b.WriteString(s[:i])
				j++
				continue
			case '\'':
				b.WriteString(s[i+len(old):])
				j++
				continue
			}
		}
		b.WriteByte(repl[j])
	}
	return s[:i] + b.String() + s[i+len(old):]
}

// grafanaVarRef is Grafana's variable syntax: $name, [[name:fmt]], ${name.field:fmt}.
var grafanaVarRef = regexp.MustCompile(`\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}`)

// replaceVars mirrors templateSrv.replace for the formats dashboards use:
// singlequote, and none, which the plugin's format function turns into
// 'a','b' for a multi-value selection. Unknown names stay as written.
func replaceVars(sql string, vars map[string]grafanaVar) string {
	return grafanaVarRef.ReplaceAllStringFunc(sql, func(ref string) string {
		m := grafanaVarRef.FindStringSubmatch(ref)
		name, format := m[1]+m[2]+m[4], m[3]+m[6]
		v, ok := vars[name]
		if !ok {
			return ref
		}
		switch format {
		case "singlequote", "":
			q := make([]string, len(v.Values))
			for i, x := range v.Values {
				q[i] = "'" + strings.ReplaceAll(x, "'", `\'`) + "'"
			}
			return strings.Join(q, ",")
		default:
			panic("variable format not mirrored: " + format)
		}
	})
}

type macroFunc func(q grafanaQuery, args []string) (string, error)

func timeToDate(t time.Time) string     { return fmt.Sprintf("toDate('%s')", t.Format("2006-01-02")) }
func timeToDateTime(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
func timeToDateTime64(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Milli(%d)", t.UnixMilli())
}

func oneArg(f func(q grafanaQuery, col string) string) macroFunc {
	return func(q grafanaQuery, args []string) (string, error) {
		if len(args) != 1 {
			return "", fmt.Errorf("unexpected number of arguments: expected 1 argument, received %d", len(args))
		}
		return f(q, args[0]), nil
	}
}

func intervalSeconds(q grafanaQuery) int { return int(math.Max(q.Interval.Seconds(), 1)) }

// chMacros mirrors pkg/macros.Macros plus the sqlutil default the plugin
// does not override that dashboards may meet ($__interval_ms).
var chMacros = map[string]macroFunc{
	"fromTime":    func(q grafanaQuery, _ []string) (string, error) { return timeToDateTime(q.From), nil },
	"toTime":      func(q grafanaQuery, _ []string) (string, error) { return timeToDateTime(q.To), nil },
	"fromTime_ms": func(q grafanaQuery, _ []string) (string, error) { return timeToDateTime64(q.From), nil },
	"toTime_ms":   func(q grafanaQuery, _ []string) (string, error) { return timeToDateTime64(q.To), nil },
	"timeFilter": oneArg(func(q grafanaQuery, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, timeToDateTime(q.From), c, timeToDateTime(q.To))
	}),
	"timeFilter_ms": oneArg(func(q grafanaQuery, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, timeToDateTime64(q.From), c, timeToDateTime64(q.To))
	}),
	"dateFilter": oneArg(func(q grafanaQuery, c string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", c, timeToDate(q.From), c, timeToDate(q.To))
	}),
	"timeInterval": oneArg(func(q grafanaQuery, c string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %d second)", c, intervalSeconds(q))
	}),
	"timeInterval_ms": oneArg(func(q grafanaQuery, c string) string {
		return fmt.Sprintf("toStartOfInterval(toDateTime64(%s, 3), INTERVAL %d millisecond)", c, int(math.Max(float64(q.Interval.Milliseconds()), 1)))
	}),
	"interval_s": func(q grafanaQuery, _ []string) (string, error) { return strconv.Itoa(intervalSeconds(q)), nil },
	"interval_ms": func(q grafanaQuery, _ []string) (string, error) {
		return strconv.FormatInt(q.Interval.Milliseconds(), 10), nil
	},
}

func init() {
	dt := func(q grafanaQuery, args []string) (string, error) {
		if len(args) != 2 {
			return "", fmt.Errorf("unexpected number of arguments: expected 2 arguments, received %d", len(args))
		}
		return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
			args[0], timeToDate(q.From), args[0], timeToDate(q.To),
			args[1], timeToDateTime(q.From), args[1], timeToDateTime(q.To)), nil
	}
	chMacros["dateTimeFilter"], chMacros["dt"] = dt, dt
}

// interpolateMacros mirrors sqlutil.Interpolate: macro names longest first,
// each found as \$__name\b with an optional bracketed argument list (depth
// aware, arguments trimmed), every occurrence of the same text replaced.
func interpolateMacros(sql string, q grafanaQuery) (string, error) {
	names := make([]string, 0, len(chMacros))
	for n := range chMacros {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if len(names[i]) != len(names[j]) {
			return len(names[i]) > len(names[j])
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		rx := regexp.MustCompile(`\$__` + n + `\b`)
		type match struct {
			full string
			args []string
		}
		var ms []match
		for _, w := range rx.FindAllStringIndex(sql, -1) {
			args, length := parseArgs(sql[w[1]:])
			if length < 0 {
				return sql, fmt.Errorf("failed to parse macro arguments (missing close bracket?)")
			}
			ms = append(ms, match{sql[w[0] : w[1]+length], args})
		}
		for _, m := range ms {
			res, err := chMacros[n](q, m.args)
			if err != nil {
				return sql, err
			}
			sql = strings.ReplaceAll(sql, m.full, res)
		}
	}
	return sql, nil
}

func parseArgs(s string) ([]string, int) {
	if !strings.HasPrefix(s, "(") {
		return nil, 0
	}
	var args []string
	depth := 0
	var arg []rune
	for i, r := range s {
		switch r {
		case '(':
			depth++
			if depth == 1 {
				continue
			}
		case ')':
			depth--
			if depth == 0 {
				return append(args, strings.TrimSpace(string(arg))), i + 1
			}
		case ',':
			if depth == 1 {
				args = append(args, strings.TrimSpace(string(arg)))
				arg = nil
				continue
			}
		}
		arg = append(arg, r)
	}
	return nil, -1
}

// The plugin's own cases (pkg/macros/macros_test.go TestInterpolate and the
// per-macro tests; src/data/CHDatasource.test.ts for $__conditionalAll).
func TestExpandMirrorsThePlugin(t *testing.T) {
	from, _ := time.Parse("2006-01-02T15:04:05.000Z", "2014-11-12T11:45:26.123Z")
	to, _ := time.Parse("2006-01-02T15:04:05.000Z", "2015-11-12T11:45:26.456Z")
	q := grafanaQuery{From: from, To: to, Interval: 20 * time.Second, Vars: map[string]grafanaVar{
		"all":  {Values: []string{"a", "b"}, All: true},
		"some": {Values: []string{"x", "o'k"}},
		"one":  {Values: []string{"v"}},
	}}
	for _, c := range []struct{ in, want string }{
		{"select * from foo where $__timeFilter(cast(sth as timestamp))", "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= toDateTime(1447328726)"},
		{"select * from foo where $__timeFilter(cast(sth as timestamp) )", "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= toDateTime(1447328726)"},
		{"select * from foo where $__timeFilter_ms(cast(sth as timestamp))", "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)"},
		{"select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100", "select * from foo where ( date >= toDateTime(1415792726) and date <= toDateTime(1447328726) ) limit 100"},
		{"select * from foo where ( date >= $__fromTime_ms and date <= $__toTime_ms ) limit 100", "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) and date <= fromUnixTimestamp64Milli(1447328726456) ) limit 100"},
		{"$__dateFilter(dateCol)", "dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')"},
		{"$__dateTimeFilter(dateCol, timeCol)", "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND (timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))"},
		{"select $__timeInterval(col) from foo", "select toStartOfInterval(toDateTime(col), INTERVAL 20 second) from foo"},
		{"select $__timeInterval_ms(col) from foo", "select toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond) from foo"},
		{"select toStartOfInterval(col, INTERVAL $__interval_s second) AS time from foo", "select toStartOfInterval(col, INTERVAL 20 second) AS time from foo"},
		// $__conditionalAll: All (or an empty selection) drops the condition.
		{"SELECT * FROM t WHERE $__conditionalAll(c IN (${all:singlequote}), $all)", "SELECT * FROM t WHERE 1=1"},
		{"SELECT * FROM t WHERE $__conditionalAll(c IN (${all:singlequote}), ${all})", "SELECT * FROM t WHERE 1=1"},
		{"SELECT * FROM t WHERE $__conditionalAll(c IN (${some:singlequote}), $some) AND $__conditionalAll(d IN ($one), $one)", `SELECT * FROM t WHERE c IN ('x','o\'k') AND d IN ('v')`},
		{"SELECT * FROM t WHERE $__conditionalAll(c = 1, $unknown)", "SELECT * FROM t WHERE c = 1"},
	} {
		got, err := expand(c.in, q)
		if err != nil || got != c.want {
			t.Errorf("expand(%q)\ngot  %q (%v)\nwant %q", c.in, got, err, c.want)
		}
	}
	if _, err := expand("$__timeFilter(a, b)", q); err == nil {
		t.Error("$__timeFilter with two arguments: no error, want one as the plugin's")
	}
}
