package store

import "github.com/ClickHouse/clickhouse-go/v2/lib/driver"

// NewWriterWithFault is NewWriter whose every insert first asks fault,
// which may fail it as the network would: a transient error in the middle
// of a bisection, against the real ClickHouse.
func NewWriterWithFault(conn driver.Conn, opt WriterOptions, fault func(rows []Row) error) (*Writer, error) {
	w := &Writer{conn: conn}
	s, err := newSink("results", opt, jsonCodec[Row](), func(rows []Row) error {
		if err := fault(rows); err != nil {
			return err
		}
		return w.send(rows)
	})
	if err != nil {
		return nil, err
	}
	w.s = s
	return w, nil
}
