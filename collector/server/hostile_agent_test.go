package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"
)

const (
	agentConfigRoute = "GET /v1/agent/config"
	heartbeatRoute   = "POST /v1/agent/heartbeat"
)

// servesOwnConfig checks the answer is ams-1's own document.
func servesOwnConfig(t *testing.T, e *hostileEnv, r hresp) {
	t.Helper()
	if r.body != hostileAgentConfig {
		t.Errorf("got %q, want ams-1's config", r.body)
	}
}

func agentConfigCases(e *hostileEnv) []hostileCase {
	path := "/v1/agent/config"
	auth := func(more ...string) map[string]string { return bearer(e.agentToken, more...) }
	ok := func(attack, name string, r ...hreq) hostileCase {
		return hc(agentConfigRoute, attack, name, 200, r...).then(servesOwnConfig)
	}
	withBody := func(body []byte, more ...string) hreq {
		return hreq{method: "GET", path: path, header: auth(more...), body: body}
	}
	return []hostileCase{
		ok(atkMalformed, "a body on GET, ignored", withBody([]byte("\x00\xff{not json"))),
		ok(atkMalformed, "unterminated If-None-Match", get(path, auth("If-None-Match", `"abc`))),
		hc(agentConfigRoute, atkOversized, "a 2 MiB URL", 431, longURL("GET", path)),
		hc(agentConfigRoute, atkOversized, "a 2 MiB Authorization header", 431, hreq{raw: rawRequest("GET", path, bearer(strings.Repeat("x", 2<<20)), nil)}),
		ok(atkNested, "nested brackets in the query, ignored", get(path+"?a"+strings.Repeat("[a]", 1000)+"=1", auth())),
		ok(atkNested, "a nested JSON body, ignored", withBody([]byte(strings.Repeat("[", 100000)))),
		ok(atkUTF8, "invalid UTF-8 in If-None-Match", get(path, auth("If-None-Match", "\"\xff\xfe\""))),
		ok(atkUTF8, "invalid UTF-8 in the query, ignored", get(path+"?agent=%ff%fe", auth())),
		hc(agentConfigRoute, atkDupKeys, "two Authorization headers", 400, get(path, headers("Authorization", "Bearer "+e.agentToken+"\x1eBearer "+fakeToken))),
		ok(atkDupKeys, "a repeated query key, ignored", get(path+"?agent=a&agent=b", auth())),
		ok(atkGzipBomb, "a gzip bomb body on GET, ignored", withBody(gzipBomb(100<<10), "Content-Encoding", "gzip")),
		ok(atkReplay, "the same request twice", get(path, auth()), get(path, auth())),
		hc(agentConfigRoute, atkToken, "no token", 401, get(path, nil)).then(errReason("no_token")),
		hc(agentConfigRoute, atkToken, "unknown token", 401, get(path, bearer(fakeToken))).then(errReason("bad_token")),
		hc(agentConfigRoute, atkToken, "a steering-reader token", 401, get(path, bearer(e.readerToken))),
		hc(agentConfigRoute, atkToken, "token with SQL", 401, get(path, bearer("mrd_' OR '1'='1"))),
		hc(agentConfigRoute, atkURLToken, "agent token as ?token=", 400, get(path+"?token="+e.agentToken, nil)).then(errReason("token_in_url")),
		hc(agentConfigRoute, atkURLToken, "header and ?token= both", 400, get(path+"?token="+e.agentToken, auth())),
		ok(atkOrigin, "a browser's Origin", get(path, auth("Origin", "https://evil.example"))).then(noCORS),
		ok(atkSQLNUL, "another agent named in the query, with SQL and NUL", get(path+"?agent=gru-1%27%20OR%20%271%27%3D%271%00", auth())),
		hc(agentConfigRoute, atkSQLNUL, "NUL in the path", 404, get(path+"%00", auth())),
		hc(agentConfigRoute, atkMethod, "POST", 405, post(path, auth(), nil)),
		hc(agentConfigRoute, atkMethod, "DELETE", 405, hreq{method: "DELETE", path: path, header: auth()}),
	}
}

func heartbeatCases(e *hostileEnv) []hostileCase {
	path := "/v1/agent/heartbeat"
	beat := func(body string, more ...string) hreq { return post(path, bearer(e.agentToken, more...), []byte(body)) }
	bad := func(attack, name, body string) hostileCase {
		return hc(heartbeatRoute, attack, name, 400, beat(body)).then(errReason("bad_heartbeat"))
	}
	stored := func(attack, name string, body string) hostileCase {
		return hc(heartbeatRoute, attack, name, 204, beat(body)).stores("agent_heartbeats", 1).then(heartbeatStored(body))
	}
	good := `{"version":"v1","uptime_s":5}`
	deep := strings.Repeat("[", 30000) + strings.Repeat("]", 30000)
	return []hostileCase{
		bad(atkMalformed, "not JSON", "hello"),
		bad(atkMalformed, "null", "null"),
		bad(atkMalformed, "a JSON array", "[]"),
		bad(atkMalformed, "empty body", ""),
		bad(atkMalformed, "two objects", good+good),
		bad(atkMalformed, "trailing garbage", good+" garbage"),
		bad(atkMalformed, "wrong type", `{"uptime_s":"5"}`),
		bad(atkMalformed, "negative count", `{"uptime_s":-5}`),
		bad(atkMalformed, "raw NUL inside a string", "{\"version\":\"v\x001\"}"),
		hc(heartbeatRoute, atkOversized, "70 KiB", 413, beat(`{"last_error":"`+strings.Repeat("x", 70<<10)+`"}`)),
		hc(heartbeatRoute, atkOversized, "a 2 MiB URL", 431, longURL("POST", path)),
		hc(heartbeatRoute, atkOversized, "a 60 KiB last_error, kept to its first 1024 bytes", 204,
			beat(`{"version":"long-error","last_error":"`+strings.Repeat("é", 30<<10)+`"}`)).stores("agent_heartbeats", 1).
			then(heartbeatStored(`{"version":"long-error","last_error":"` + strings.Repeat("é", 512) + `"}`)),
		bad(atkNested, "an unknown key holding 30 000 nested arrays", `{"x":`+deep+`}`),
		bad(atkNested, "version as nested objects", `{"version":`+strings.Repeat(`{"a":`, 5000)+"1"+strings.Repeat("}", 5000)+`}`),
		bad(atkUTF8, "raw invalid byte in last_error", "{\"last_error\":\"\xff\"}"),
		bad(atkUTF8, "an escaped lone surrogate", `{"last_error":"\ud800"}`),
		stored(atkUTF8, "unusual but valid Unicode, stored as sent", `{"version":"`+uuid.NewString()+"\",\"last_error\":\"\u2028😀\uffff\U0010FFFF\"}"),
		bad(atkDupKeys, "version twice", `{"version":"v1","version":"v2"}`),
		stored(atkDupKeys, "VERSION: an unknown key, ignored", `{"VERSION":"v9","version":"`+uuid.NewString()+`"}`),
		hc(heartbeatRoute, atkGzipBomb, "gzip members inflating to 60 MiB", 415, beat(string(gzipBomb(60<<10)), "Content-Encoding", "gzip")),
		bad(atkGzipBomb, "the same bomb without Content-Encoding", string(gzipBomb(60<<10))),
		hc(heartbeatRoute, atkReplay, "the same heartbeat twice: two reports, both kept", 204, beat(good), beat(good)).stores("agent_heartbeats", 2),
		hc(heartbeatRoute, atkToken, "no token", 401, post(path, nil, []byte(good))).then(errReason("no_token")),
		hc(heartbeatRoute, atkToken, "unknown token", 401, post(path, bearer(fakeToken), []byte(good))),
		hc(heartbeatRoute, atkToken, "a steering-reader token", 401, post(path, bearer(e.readerToken), []byte(good))),
		hc(heartbeatRoute, atkURLToken, "agent token as ?token=", 400, post(path+"?token="+e.agentToken, nil, []byte(good))).then(errReason("token_in_url")),
		hc(heartbeatRoute, atkURLToken, "header and ?token= both", 400, post(path+"?token="+e.agentToken, bearer(e.agentToken), []byte(good))),
		hc(heartbeatRoute, atkOrigin, "a browser's Origin", 204, beat(good, "Origin", "https://evil.example")).stores("agent_heartbeats", 1).then(noCORS),
		stored(atkSQLNUL, "version and last_error", hostileHeartbeat()),
		hc(heartbeatRoute, atkMethod, "GET", 405, get(path, bearer(e.agentToken))),
	}
}

// hostileHeartbeat has hostile in its strings and a version no other case
// uses, by which heartbeatStored finds its row.
func hostileHeartbeat() string {
	b, _ := json.Marshal(map[string]any{"version": uuid.NewString()[:8] + shortHostile + hostile[:60], "last_error": "last_error=" + hostile})
	return string(b)
}

// heartbeatStored finds the row by the heartbeat's version and compares
// version and last_error with what was sent (want), byte for byte.
func heartbeatStored(want string) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		var hb struct {
			Version   string `json:"version"`
			LastError string `json:"last_error"`
		}
		if err := json.Unmarshal([]byte(want), &hb); err != nil {
			t.Fatal(err)
		}
		compareRow(t, e, "SELECT version, last_error FROM agent_heartbeats WHERE version = ?",
			[]string{"version", "last_error"}, []any{hb.Version, hb.LastError}, hb.Version)
	}
}
