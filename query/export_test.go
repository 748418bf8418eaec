package query

// LatencySQL renders the latency query and its arguments, for the test that
// runs it on both engines.
func LatencySQL(o LatencyOptions) (string, []any, error) {
	sql, args, _, err := latencySQL(&o)
	return sql, args, err
}
