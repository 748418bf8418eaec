package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/meridian-net/meridian/internal/result"
)

const resultsRoute = "POST /v1/results"

// hostile goes into every string a client controls: SQL quotes, comments
// and statement breaks, other quotes, placeholders and template or format
// verbs, a percent-escape, a NUL byte and other C0 controls (escaped in
// JSON, as they must be), and valid but unusual Unicode (U+2028, a non-BMP
// emoji, the noncharacter U+FFFF). shortHostile fits 16-byte fields.
const (
	hostile      = "'; DROP TABLE results; -- \" ` \\ ? $1 {{.Table}} %s %00 \x00 \x01\x1f\t\r\n \u2028 😀 \uffff /* ' OR '1'='1"
	shortHostile = "'\";\x00--\\`%"
)

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// resultLine is one valid http result line, edited by edit.
func resultLine(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	m := map[string]any{"v": 1, "id": newID(), "agent": "claimed", "check": "home", "kind": "http",
		"target": "http://127.0.0.1/", "ts": time.Now().UTC().Format(time.RFC3339Nano), "ok": true, "total_ms": 12.5}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// swap replaces the first old in b by new, failing when there is none.
func swap(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("no %q in %s", old, b)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func resultsCases(t *testing.T, e *hostileEnv) []hostileCase {
	return slices.Concat(resultsMalformed(t, e), resultsSize(t, e), resultsStrings(t, e), resultsKeys(t, e), resultsAuth(t, e), resultsReplay(t, e))
}

func (e *hostileEnv) postResults(body []byte, hdr ...string) hreq {
	return post("/v1/results", bearer(e.agentToken, hdr...), body)
}

func resultsMalformed(t *testing.T, e *hostileEnv) []hostileCase {
	good := resultLine(t, nil)
	bad := func(name string, body []byte, hdr ...string) hostileCase {
		return hc(resultsRoute, atkMalformed, name, 400, e.postResults(body, hdr...)).then(errReason("bad_batch"))
	}
	return []hostileCase{
		bad("not JSON", []byte("hello\n")),
		bad("a JSON array", []byte(`[{"v":1}]`+"\n")),
		bad("null", []byte("null\n")),
		bad("a number", []byte("42\n")),
		bad("truncated result", good[:len(good)/2]),
		bad("empty body", nil),
		bad("blank lines only", []byte("\n \r\n\t\n")),
		bad("raw NUL inside a string", swap(t, good, `"check":"home"`, "\"check\":\"ho\x00me\"")),
		bad("raw newline inside a string", swap(t, good, `"check":"home"`, "\"check\":\"ho\nme\"")),
		bad("trailing data after the object", append(bytes.TrimSpace(good), "{}\n"...)),
		bad("a good line then a bad one", append(slices.Clone(good), "hello\n"...)),
		bad("byte order mark", append([]byte("\xef\xbb\xbf"), good...)),
		bad("not gzip but says so", good, "Content-Encoding", "gzip"),
		bad("replay header not 0 or 1", good, result.ReplayHeader, "yes"),
		hc(resultsRoute, atkMalformed, "unknown Content-Encoding", 415, e.postResults(good, "Content-Encoding", "br")),
	}
}

func resultsSize(t *testing.T, e *hostileEnv) []hostileCase {
	good := resultLine(t, nil)
	big := resultLine(t, func(m map[string]any) { m["target"] = strings.Repeat("t", 200<<10) })
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	return []hostileCase{
		hc(resultsRoute, atkOversized, "2 MiB on the wire (limit 1 MiB)", 413,
			hreq{raw: rawRequest("POST", "/v1/results", bearer(e.agentToken), append(bytes.Repeat([]byte("\n"), 2<<20), good...))}),
		hc(resultsRoute, atkOversized, "a line over 256 KiB", 400,
			e.postResults(resultLine(t, func(m map[string]any) { m["target"] = strings.Repeat("t", 300<<10) }))).then(errReason("bad_batch")),
		hc(resultsRoute, atkOversized, "a 2 MiB Authorization header", 431,
			hreq{raw: rawRequest("POST", "/v1/results", bearer(strings.Repeat("x", 2<<20)), good)}),
		hc(resultsRoute, atkOversized, "a 200 KiB target, within every limit, stored as sent", 200, e.postResults(big)).
			stores("results", 1).then(resultStored(big, []string{"target"})),
		hc(resultsRoute, atkNested, "answers nested 20 000 deep", 400,
			e.postResults(swap(t, good, `"ok":true`, `"ok":true,"answers":`+deep(20000)))).then(errReason("bad_batch")),
		hc(resultsRoute, atkNested, "an unknown key holding 100 000 nested arrays", 400,
			e.postResults(swap(t, good, `"ok":true`, `"ok":true,"x":`+deep(100000)))).then(errReason("bad_batch")),
		hc(resultsRoute, atkNested, "objects nested 10 000 deep inside trust", 400,
			e.postResults(swap(t, good, `"ok":true`, `"ok":true,"trust":[{"store":`+strings.Repeat(`{"a":`, 10000)+"1"+strings.Repeat("}", 10000)+"}]"))),
		hc(resultsRoute, atkNested, "a line of 200 000 open brackets", 400, e.postResults([]byte(strings.Repeat("[", 200000)+"\n"))),
		hc(resultsRoute, atkGzipBomb, "1 MiB of gzip members inflating to 1 GiB (limit 4 MiB)", 413,
			hreq{raw: rawRequest("POST", "/v1/results", bearer(e.agentToken, "Content-Encoding", "gzip"), gzipBomb(1<<20-1<<10))}).then(errReason("bad_batch")),
		hc(resultsRoute, atkGzipBomb, "one gzip member of 8 MiB of newlines", 413,
			e.postResults(gz(bytes.Repeat([]byte("\n"), 8<<20)), "Content-Encoding", "gzip")),
		hc(resultsRoute, atkGzipBomb, "gzip then garbage", 400, e.postResults(append(gz(good), "garbage"...), "Content-Encoding", "gzip")),
	}
}

func resultsStrings(t *testing.T, e *hostileEnv) []hostileCase {
	every, cols := hostileResult(t)
	nul := resultLine(t, func(m map[string]any) { m["check"], m["target"] = "\x00", "\x00\x00" })
	unusual := resultLine(t, func(m map[string]any) { m["target"] = "\u2028😀\uffff\U0010FFFF\u00e9\u0301" })
	good := resultLine(t, nil)
	utf := func(name, old, new string) hostileCase {
		return hc(resultsRoute, atkUTF8, name, 400, e.postResults(swap(t, good, old, new))).then(errReason("bad_batch"))
	}
	return []hostileCase{
		hc(resultsRoute, atkSQLNUL, "every string field", 200, e.postResults(every)).stores("results", 1).then(resultStored(every, cols)),
		hc(resultsRoute, atkSQLNUL, "strings of NUL bytes", 200, e.postResults(nul)).stores("results", 1).then(resultStored(nul, []string{"check", "target"})),
		hc(resultsRoute, atkSQLNUL, "hostile id", 400, e.postResults(swap(t, good, `"id":"`, `"id":"'; DROP TABLE results; --`))),
		hc(resultsRoute, atkSQLNUL, "hostile kind", 400, e.postResults(swap(t, good, `"kind":"http"`, `"kind":"http' OR '1'='1"`))),
		hc(resultsRoute, atkSQLNUL, "hostile query string, ignored", 200,
			post("/v1/results?q=%27%3B%20DROP%20TABLE%20results%3B--%00", bearer(e.agentToken), good)).stores("results", 1),
		hc(resultsRoute, atkSQLNUL, "raw NUL in a header", 400,
			hreq{raw: rawRequest("POST", "/v1/results", bearer(e.agentToken, "X-Check", "a\x00b"), good)}),
		utf("raw invalid byte in target", `"target":"http`, "\"target\":\"\xffhttp"),
		utf("overlong encoding of /", `"target":"http`, "\"target\":\"\xc0\xafhttp"),
		utf("a surrogate encoded in UTF-8", `"target":"http`, "\"target\":\"\xed\xa0\x80http"),
		utf("an escaped lone surrogate", `"target":"http`, `"target":"\ud800http`),
		utf("escaped surrogates in the wrong order", `"target":"http`, `"target":"\udc00\ud800http`),
		utf("invalid UTF-8 in a key", `"target"`, "\"targ\xffet\""),
		hc(resultsRoute, atkUTF8, "unusual but valid Unicode, stored as sent", 200, e.postResults(unusual)).
			stores("results", 1).then(resultStored(unusual, []string{"target"})),
	}
}

func resultsKeys(t *testing.T, e *hostileEnv) []hostileCase {
	good := resultLine(t, func(m map[string]any) {
		m["trust"] = []map[string]any{{"store": "system", "valid": true}}
		m["browser_hosts"] = []map[string]any{{"host": "a.example", "requests": 1, "bytes": 1}}
	})
	dup := func(name, old, new string) hostileCase {
		return hc(resultsRoute, atkDupKeys, name, 400, e.postResults(swap(t, good, old, new))).then(errReason("bad_batch"))
	}
	return []hostileCase{
		dup("check twice", `"check":"home"`, `"check":"home","check":"away"`),
		dup("ok twice", `"ok":true`, `"ok":true,"ok":false`),
		dup("check and CHECK", `"check":"home"`, `"check":"home","CHECK":"away"`),
		dup("CHECK alone", `"check":"home"`, `"CHECK":"home"`),
		dup("kind spelled with a Kelvin sign", `"kind":"http"`, `"\u212aind":"http"`),
		dup("trust[0].store twice", `"store":"system"`, `"store":"system","store":"evil"`),
		dup("browser_hosts[0].host twice", `"host":"a.example"`, `"host":"a.example","host":"b.example"`),
	}
}

func resultsAuth(t *testing.T, e *hostileEnv) []hostileCase {
	good := resultLine(t, nil)
	tok := func(name string, hdr map[string]string, want int) hostileCase {
		return hc(resultsRoute, atkToken, name, want, post("/v1/results", hdr, good))
	}
	return []hostileCase{
		tok("no Authorization", nil, 401).then(errReason("no_token")),
		tok("unknown token", bearer(fakeToken), 401).then(errReason("bad_token")),
		tok("a steering-reader token", bearer(e.readerToken), 401).then(errReason("bad_token")),
		tok("Basic scheme", headers("Authorization", "Basic "+e.agentToken), 401),
		tok("Bearer and nothing", headers("Authorization", "Bearer "), 401),
		tok("token with SQL", bearer("mrd_' OR '1'='1"), 401),
		tok("two Authorization headers, unknown first", headers("Authorization", "Bearer "+fakeToken+"\x1eBearer "+e.agentToken), 400),
		tok("two Authorization headers, valid first", headers("Authorization", "Bearer "+e.agentToken+"\x1eBearer "+fakeToken), 400),
		hc(resultsRoute, atkToken, "NUL in the token", 400, hreq{raw: rawRequest("POST", "/v1/results", bearer(e.agentToken+"\x00"), good)}),
		hc(resultsRoute, atkURLToken, "agent token as ?token=", 400, post("/v1/results?token="+e.agentToken, nil, good)).then(errReason("token_in_url")),
		hc(resultsRoute, atkURLToken, "agent token as ?access_token=", 400, post("/v1/results?access_token="+e.agentToken, nil, good)),
		hc(resultsRoute, atkURLToken, "header and ?token= both", 400, post("/v1/results?token="+e.agentToken, bearer(e.agentToken), good)),
		hc(resultsRoute, atkURLToken, "token as a path segment", 404, post("/v1/results/"+e.agentToken, nil, good)),
		hc(resultsRoute, atkOrigin, "a browser's Origin on an agent post", 200,
			post("/v1/results", bearer(e.agentToken, "Origin", "https://evil.example"), good)).stores("results", 1).then(noCORS),
		hc(resultsRoute, atkOrigin, "CORS preflight", 405, hreq{method: "OPTIONS", path: "/v1/results", header: headers("Origin", "https://evil.example")}).then(noCORS),
		hc(resultsRoute, atkMethod, "GET", 405, get("/v1/results", bearer(e.agentToken))),
		hc(resultsRoute, atkMethod, "PUT", 405, hreq{method: "PUT", path: "/v1/results", header: bearer(e.agentToken), body: good}),
		hc(resultsRoute, atkMethod, "DELETE", 405, hreq{method: "DELETE", path: "/v1/results", header: bearer(e.agentToken)}),
	}
}

func resultsReplay(t *testing.T, e *hostileEnv) []hostileCase {
	three := slices.Concat(resultLine(t, nil), resultLine(t, nil), resultLine(t, nil))
	again := slices.Concat(resultLine(t, nil), resultLine(t, nil))
	first := resultLine(t, nil)
	var m map[string]any
	json.Unmarshal(first, &m)
	m["target"] = "http://evil.example/"
	changed, _ := json.Marshal(m)
	return []hostileCase{
		hc(resultsRoute, atkReplay, "the same batch twice", 200, e.postResults(three), e.postResults(three)).
			stores("results", 3).then(countedOnce(three, 0)),
		hc(resultsRoute, atkReplay, "again with Meridian-Replay: 1", 200, e.postResults(again), e.postResults(again, result.ReplayHeader, "1")).
			stores("results", 2).then(countedOnce(again, 2)),
		hc(resultsRoute, atkReplay, "an id again with other values", 200, e.postResults(first), e.postResults(append(changed, '\n'))).
			stores("results", 1).then(countedOnce(first, 0)),
	}
}

// countedOnce checks the ids of batch are stored once under FINAL, with
// replays rows marked replay = 1.
func countedOnce(batch []byte, replays uint64) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		var ids []string
		for _, line := range bytes.Split(bytes.TrimSpace(batch), []byte("\n")) {
			var m struct{ ID string }
			json.Unmarshal(line, &m)
			ids = append(ids, m.ID)
		}
		var final, marked uint64
		ctx := context.Background()
		if err := e.conn.QueryRow(ctx, "SELECT count() FROM results FINAL WHERE has(?, id)", ids).Scan(&final); err != nil {
			t.Fatal(err)
		}
		if err := e.conn.QueryRow(ctx, "SELECT countIf(replay = 1) FROM results WHERE has(?, id)", ids).Scan(&marked); err != nil {
			t.Fatal(err)
		}
		if final != uint64(len(ids)) || marked != replays {
			t.Errorf("got %d rows under FINAL and %d marked replay, want %d and %d", final, marked, len(ids), replays)
		}
	}
}
