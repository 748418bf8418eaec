package query

// LatencySQL renders the latency query and its arguments, for the test that
// runs it on both engines.
func LatencySQL(o LatencyOptions) (string, []any, error) {
	r, err := Render("latency", o.options())
	if err != nil {
		return "", nil, err
	}
	return r.SQL, r.Args, nil
}
