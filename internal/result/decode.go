package result

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// LineError says which NDJSON line of a batch is wrong and why.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// MaxLineBytes bounds one NDJSON line; a real result is well under 8 KiB.
const MaxLineBytes = 256 << 10

// DecodeNDJSON reads one result per line, strictly: unknown fields, wrong
// types, trailing data and invalid results are errors naming the line and
// field. Blank lines are skipped. It decodes everything or returns an error
// and no results, so a bad batch is never half-accepted.
func DecodeNDJSON(r io.Reader) ([]Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	var out []Result
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var res Result
		if err := Unmarshal(b, &res); err != nil {
			return nil, &LineError{Line: line, Err: err}
		}
		out = append(out, res)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{Line: line + 1, Err: fmt.Errorf("longer than %d bytes", MaxLineBytes)}
		}
		return nil, err
	}
	return out, nil
}

// Unmarshal decodes and validates one result.
func Unmarshal(b []byte, res *Result) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(res); err != nil {
		return describeJSONError(err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object (one result per line)")
	}
	return res.Validate()
}

func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: cannot use JSON %s as %s", te.Field, te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return fmt.Errorf("field %s: unknown field (not in contract v%d)", strings.TrimPrefix(msg, "json: unknown field "), Version)
	}
	if strings.Contains(err.Error(), "parsing time") {
		return fmt.Errorf("field \"ts\": %v", err)
	}
	return err
}

// AppendNDJSON appends res as one JSON line to buf.
func AppendNDJSON(buf []byte, res *Result) ([]byte, error) {
	b, err := json.Marshal(res)
	if err != nil {
		return buf, fmt.Errorf("cannot encode result %s: %w", res.ID, err)
	}
	buf = append(buf, b...)
	return append(buf, '\n'), nil
}
