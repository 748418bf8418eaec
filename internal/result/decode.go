package result

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// clock is the decoder's clock (the collector's), for CheckClock; tests
// replace it.
var clock = time.Now

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
// field. Every value must be within its declared range (ranges.go) and ts
// at most MaxFutureSkew ahead of the decoder's clock. Blank lines are skipped. It decodes everything or returns an error
// and no results, so a bad batch is never half-accepted.
func DecodeNDJSON(r io.Reader) ([]Result, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	var out []Result
	line := 0
	now := clock()
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var res Result
		if err := unmarshalAt(b, &res, now); err != nil {
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

// Unmarshal decodes and validates one result, as DecodeNDJSON does each
// line: strictly, within the declared ranges and the clock window.
func Unmarshal(b []byte, res *Result) error {
	return unmarshalAt(b, res, clock())
}

func unmarshalAt(b []byte, res *Result, now time.Time) error {
	// encoding/json would silently replace invalid UTF-8 with U+FFFD: a
	// string must be stored byte for byte or refused.
	if !utf8.Valid(b) {
		return fmt.Errorf("invalid UTF-8 at byte %d: strings must be UTF-8", invalidUTF8At(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(res); err != nil {
		return describeJSONError(err)
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object (one result per line)")
	}
	if err := res.Validate(); err != nil {
		return err
	}
	return res.CheckClock(now)
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: cannot use JSON %s as %s", wireField(te.Field), te.Value, te.Type)
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

// wireField drops the Go names of embedded structs ("DNS.ttl" is "ttl" on
// the wire: the groups are flattened).
func wireField(f string) string {
	for _, g := range []string{"HTTP.", "TLS.", "DNS.", "ICMP.", "Browser.", "Host."} {
		f = strings.TrimPrefix(f, g)
	}
	return f
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
