package server_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// resultScalars and resultLists are the string fields of a result that
// reach storage (agent is the token's, never the sender's); "a[].b" is
// field b of each element of array a.
var (
	resultScalars = []string{"check", "target", "error", "error_message", "url", "http_proto", "remote_ip",
		"dns_source", "location", "cdn", "cdn_member", "cdn_pop", "cdn_cache", "tls_version", "tls_cipher",
		"tls_alpn", "tls_sni", "cert_subject", "cert_issuer", "cert_sha256", "resolver", "qtype", "rcode", "transport"}
	resultLists = []string{"cert_sans", "answers", "trust[].store", "trust[].error",
		"browser_hosts[].host", "browser_hosts[].cdn", "browser_hosts[].cdn_pop"}
	// resultColumn names the column of a field where it differs.
	resultColumn = map[string]string{"check": "check_name", "transport": "dns_transport",
		"trust[].store": "trust_store", "trust[].error": "trust_error", "browser_hosts[].host": "bh_host",
		"browser_hosts[].cdn": "bh_cdn", "browser_hosts[].cdn_pop": "bh_cdn_pop"}
)

// hostileResult is a failed result with hostile in every string field,
// each prefixed with its name so that swapped columns show; it returns the
// line and those fields.
func hostileResult(t *testing.T) ([]byte, []string) {
	t.Helper()
	v := func(field string) string { return field + "=" + hostile }
	line := resultLine(t, func(m map[string]any) {
		for _, f := range resultScalars {
			m[f] = v(f)
		}
		m["ok"] = false
		m["cert_sans"] = []string{v("cert_sans0"), v("cert_sans1")}
		m["answers"] = []string{v("answers0"), "", v("answers2")}
		m["trust"] = []map[string]any{{"store": v("trust0.store"), "valid": false, "error": v("trust0.error")},
			{"store": v("trust1.store"), "valid": true}}
		m["browser_hosts"] = []map[string]any{{"host": v("bh0.host"), "cdn": v("bh0.cdn"), "cdn_pop": v("bh0.cdn_pop"), "requests": 1, "bytes": 1}}
	})
	return line, append(append([]string{}, resultScalars...), resultLists...)
}

// resultStored reads back the row of the result line and compares each of
// fields with what was sent, byte for byte; the agent must be the token's.
func resultStored(line []byte, fields []string) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		var sent map[string]any
		if err := json.Unmarshal(line, &sent); err != nil {
			t.Fatal(err)
		}
		cols, want := []string{"agent"}, []any{"ams-1"}
		for _, f := range fields {
			c := resultColumn[f]
			if c == "" {
				c = f
			}
			cols, want = append(cols, c), append(want, sentValue(sent, f))
		}
		compareRow(t, e, "SELECT "+strings.Join(cols, ", ")+" FROM results FINAL WHERE id = ?", cols, want, sent["id"])
	}
}

// sentValue is field's value in a decoded JSON object: a string, or for
// "a[].b" and arrays of strings a []string.
func sentValue(obj map[string]any, field string) any {
	list, sub, isList := strings.Cut(field, "[].")
	if !isList {
		switch v := obj[field].(type) {
		case []any:
			out := []string{}
			for _, s := range v {
				out = append(out, s.(string))
			}
			return out
		case nil:
			return ""
		default:
			return v
		}
	}
	out := []string{}
	for _, el := range obj[list].([]any) {
		s, _ := el.(map[string]any)[sub].(string)
		out = append(out, s)
	}
	return out
}

// compareRow runs query (one row, args bound) and compares its columns
// with want: strings and []string, byte for byte.
func compareRow(t *testing.T, e *hostileEnv, query string, cols []string, want []any, args ...any) {
	t.Helper()
	dest := make([]any, len(want))
	for i, w := range want {
		dest[i] = reflect.New(reflect.TypeOf(w)).Interface()
	}
	if err := e.conn.QueryRow(context.Background(), query, args...).Scan(dest...); err != nil {
		t.Fatalf("%s %q: %v", query, args, err)
	}
	for i, w := range want {
		if got := reflect.ValueOf(dest[i]).Elem().Interface(); !reflect.DeepEqual(got, w) {
			t.Errorf("column %s: stored %q, sent %q", cols[i], got, w)
		}
	}
}
