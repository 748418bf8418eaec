package store

import (
	"errors"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// refusedCodes are the ClickHouse error codes that say the rows of an
// INSERT are bad, not the server, the network or the table: a value a
// column, a MATERIALIZED/DEFAULT expression, a constraint or a
// materialized view refuses. Inserting the same rows again fails the
// same way; splitting the batch lets every other row in.
//
// Deliberately absent, so retried with the rows waiting in the journal
// (an operator fixes them, then everything goes in): codes about the
// statement or the schema (UNKNOWN_TABLE 60, NO_SUCH_COLUMN_IN_TABLE 16,
// UNKNOWN_IDENTIFIER 47, TYPE_MISMATCH 53, ILLEGAL_TYPE_OF_ARGUMENT 43,
// BAD_ARGUMENTS 36: a column renamed away or changed type refuses every
// row, and dead-lettering them all would turn an outage into manual
// work), about load (TOO_MANY_PARTS 252 but see below, MEMORY_LIMIT_EXCEEDED
// 241, TOO_MANY_SIMULTANEOUS_QUERIES 202, TIMEOUT_EXCEEDED 159) and about
// the server's state (TABLE_IS_READ_ONLY 242, READONLY 164,
// NOT_ENOUGH_SPACE 243, ABORTED 236, QUERY_WAS_CANCELLED 394, shutdown,
// Keeper). An unknown code waits too: waiting loses nothing.
var refusedCodes = map[int32]string{
	6:   "CANNOT_PARSE_TEXT",
	25:  "CANNOT_PARSE_ESCAPE_SEQUENCE",
	26:  "CANNOT_PARSE_QUOTED_STRING",
	27:  "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
	38:  "CANNOT_PARSE_DATE",
	41:  "CANNOT_PARSE_DATETIME",
	69:  "ARGUMENT_OUT_OF_BOUND",
	70:  "CANNOT_CONVERT_TYPE",
	72:  "CANNOT_PARSE_NUMBER",
	117: "INCORRECT_DATA",
	128: "TOO_LARGE_ARRAY_SIZE",
	131: "TOO_LARGE_STRING_SIZE",
	153: "ILLEGAL_DIVISION",
	190: "SIZES_OF_ARRAYS_DOESNT_MATCH",
	321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
	349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
	376: "CANNOT_PARSE_UUID",
	395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
	407: "DECIMAL_OVERFLOW",
	441: "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
	467: "CANNOT_PARSE_BOOL",
	469: "VIOLATED_CONSTRAINT",
}

// codeTooManyParts is TOO_MANY_PARTS, which is about load ("too many parts
// in all partitions": merges catch up) except for one message: a block
// whose rows span more partitions (days) than max_partitions_per_insert_block.
// Halves span fewer, and a single row spans one, so splitting such a batch
// stores every row and dead-letters none.
const codeTooManyParts = 252

// refusesData reports whether err is ClickHouse refusing the rows of an
// INSERT for what they hold: then the batch is split and the rows that are
// still refused alone are dead-lettered. Any other error (the network, a
// timeout, the server busy, shutting down or read-only, the table or a
// column missing, a client-side error) means the same rows are retried
// later as they are.
func refusesData(err error) bool {
	var ex *proto.Exception
	if !errors.As(err, &ex) {
		return false
	}
	if _, ok := refusedCodes[ex.Code]; ok {
		return true
	}
	return ex.Code == codeTooManyParts && strings.Contains(ex.Message, "Too many partitions for single INSERT block")
}

// serverError is what ClickHouse said about err, for a dead letter: its
// code (0 when err is not a server exception) and text.
func serverError(err error) (int32, string) {
	var ex *proto.Exception
	if errors.As(err, &ex) {
		return ex.Code, ex.Error()
	}
	return 0, err.Error()
}
