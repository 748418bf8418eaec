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

	"github.com/go-json-experiment/json/jsontext"
)

// clock is the decoder's clock (the collector's), for CheckClock; tests
// replace it.
var clock = time.Now

// LineError says which NDJSON line of a batch is wrong and why.
type LineError struct {
	Line int
	Err  error
}

// Error says which line and why, cut to maxErrorBytes: a message quoting a
// hostile value (a 200 KiB id, a 10 000-level path) stays readable.
func (e *LineError) Error() string {
	return clip(fmt.Sprintf("line %d: %v", e.Line, e.Err), maxErrorBytes)
}
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
	if err := checkSyntax(b); err != nil {
		return err
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

// checkSyntax reads b's first JSON value as tokens, before encoding/json
// decodes it, to refuse what encoding/json would take and store wrong: a
// repeated key (it keeps the last), a key spelled other than the contract's
// (it matches names case-insensitively, so "CHECK" or "\u212aind" would
// set check or kind, and repeat them) and a \u escape that is no character
// (a lone UTF-16 surrogate, which it would store as U+FFFD). What follows
// the first value is left to the decoder's "trailing data" check.
func checkSyntax(b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return syntaxError(err)
		}
		depth := dec.StackDepth()
		if depth == 0 {
			return nil
		}
		if k, n := dec.StackIndex(depth); tok.Kind() == '"' && k == '{' && n%2 == 1 && !wireName(tok.String()) {
			return fmt.Errorf("field %q: unknown field (not in contract v%d, whose keys are lowercase a-z, 0-9 and _)", pointerField(dec.StackPointer()), Version)
		}
	}
}

// wireName tells whether s can be a key of the contract: every key is
// lowercase a-z, 0-9 and _.
func wireName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}

func syntaxError(err error) error {
	var se *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: truncated (one result per line)")
	case !errors.As(err, &se):
		return fmt.Errorf("invalid JSON: %v", err)
	case errors.Is(se.Err, jsontext.ErrDuplicateName):
		return fmt.Errorf("field %q: repeated key (send each key once)", pointerField(se.JSONPointer))
	case se.JSONPointer != "":
		return fmt.Errorf("field %q: invalid JSON at byte %d: %v", pointerField(se.JSONPointer), se.ByteOffset, se.Err)
	}
	return fmt.Errorf("invalid JSON at byte %d: %v", se.ByteOffset, se.Err)
}

// pointerField names the value at p as the range checks do:
// "/browser_hosts/0/bytes" is "browser_hosts[0].bytes", cut to maxFieldName
// bytes (deep nesting, a huge key) so an error stays one short line.
func pointerField(p jsontext.Pointer) string {
	var sb strings.Builder
	for tok := range p.Tokens() {
		switch {
		case sb.Len() > maxFieldName:
			return clip(sb.String(), maxFieldName)
		case sb.Len() > 0 && tok != "" && strings.Trim(tok, "0123456789") == "":
			sb.WriteString("[" + tok + "]")
		case sb.Len() > 0:
			sb.WriteString("." + tok)
		default:
			sb.WriteString(tok)
		}
	}
	return clip(sb.String(), maxFieldName)
}

const (
	maxFieldName  = 80
	maxErrorBytes = 1024
)

// clip cuts s to at most n bytes of valid UTF-8 and marks the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
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
		return fmt.Errorf("field %s: unknown field (not in contract v%d)", clip(strings.TrimPrefix(msg, "json: unknown field "), maxFieldName), Version)
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
