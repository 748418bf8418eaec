package store

import "github.com/ClickHouse/clickhouse-go/v2/lib/driver"

// NewWriterWithFault is NewWriter whose every insert first asks fault,
// which may fail it as the network would: a transient error in the middle
// of a bisection, against the real ClickHouse.
func NewWriterWithFault(conn driver.Conn, opt WriterOptions, fault func(rows []Row) error) (*Writer, error) {
	return NewWriterWrapped(conn, opt, func(rows []Row, insert func([]Row) error) error {
		if err := fault(rows); err != nil {
			return err
		}
		return insert(rows)
	})
}

// NewWriterWrapped is NewWriter whose every insert goes through wrap, which
// calls insert (the real one) or not, and may fail after it did: an insert
// that landed but whose acknowledgement was lost.
func NewWriterWrapped(conn driver.Conn, opt WriterOptions, wrap func(rows []Row, insert func([]Row) error) error) (*Writer, error) {
	w := &Writer{conn: conn}
	s, err := newSink("results", opt, resultsCodec(), func(rows []Row) error { return wrap(rows, w.send) })
	if err != nil {
		return nil, err
	}
	w.s = s
	return w, nil
}
