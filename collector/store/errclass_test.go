package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

func TestRefusesData(t *testing.T) {
	ex := func(code int32, msg string) error {
		return &proto.Exception{Code: code, Name: "DB::Exception", Message: msg}
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"throwIf", ex(395, "Value passed to 'throwIf' function is non zero"), true},
		{"throwIf wrapped as the writer returns it", fmt.Errorf("cannot store 1000 results: %w", ex(395, "Value passed to 'throwIf' function is non zero")), true},
		{"too large string", ex(131, "Too large string size"), true},
		{"cannot parse text", ex(6, "Cannot parse string 'x' as UInt8"), true},
		{"cannot parse datetime", ex(41, "Cannot parse datetime"), true},
		{"out of range", ex(321, "Value is out of range of data type"), true},
		{"arrays of different sizes", ex(190, "Sizes of arrays doesn't match"), true},
		{"null into an ordinary column", ex(349, "Cannot convert NULL value to non-Nullable type"), true},
		{"constraint", ex(469, "Constraint `c` for table t is violated"), true},
		{"too many partitions in one block", ex(252, "Too many partitions for single INSERT block (more than 100). The limit is controlled by 'max_partitions_per_insert_block' setting."), true},

		{"too many parts: merges are behind", ex(252, "Too many parts (300). Merges are processing significantly slower than inserts."), false},
		{"memory limit", ex(241, "Memory limit (for query) exceeded"), false},
		{"table read-only", ex(242, "Table is in readonly mode"), false},
		{"column renamed away", ex(16, "No such column location in table results"), false},
		{"unknown identifier", ex(47, "Unknown identifier: location"), false},
		{"table renamed away", ex(60, "Table test.results doesn't exist."), false},
		{"column type changed", ex(53, "Type mismatch"), false},
		{"illegal type of argument", ex(43, "Illegal type of argument"), false},
		{"bad arguments", ex(36, "Bad arguments"), false},
		{"too many queries", ex(202, "Too many simultaneous queries"), false},
		{"timeout on the server", ex(159, "Timeout exceeded"), false},
		{"network error on the server", ex(210, "Connection refused"), false},
		{"query cancelled (shutdown)", ex(394, "Query was cancelled"), false},
		{"not enough space", ex(243, "Cannot reserve 1 MiB, not enough space"), false},
		{"unknown code", ex(9999, "something new"), false},

		{"nil", nil, false},
		{"connection refused", fmt.Errorf("cannot store 3 results: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), false},
		{"connection dropped", fmt.Errorf("cannot store 3 results: %w", io.EOF), false},
		{"timeout", fmt.Errorf("cannot store 3 results: %w", context.DeadlineExceeded), false},
		{"client-side conversion", errors.New("clickhouse [AppendRow]: converting string to UInt16 is unsupported"), false},
	} {
		if got := refusesData(c.err); got != c.want {
			t.Errorf("%s: refusesData(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestServerError(t *testing.T) {
	code, text := serverError(fmt.Errorf("cannot store 1 results: %w", &proto.Exception{Code: 395, Message: "Value passed to 'throwIf' function is non zero"}))
	if code != 395 || text != "code: 395, message: Value passed to 'throwIf' function is non zero" {
		t.Errorf("got %d %q, want the server's code and text", code, text)
	}
	if code, text := serverError(io.EOF); code != 0 || text != "EOF" {
		t.Errorf("got %d %q for a client error, want 0 and its text", code, text)
	}
}
