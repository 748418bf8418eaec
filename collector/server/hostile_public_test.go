package server_test

import (
	"strings"
	"testing"
)

// publicCases attack the routes that take no credentials and read no body:
// health, readiness, metrics and the beacon script. What they cannot use
// (a body, a query, a token, an Origin) is ignored, stores nothing and is
// never logged.
func publicCases(e *hostileEnv) []hostileCase {
	var cs []hostileCase
	for _, r := range []struct {
		route, path string
		body        func(t *testing.T, e *hostileEnv, r hresp)
	}{
		{"GET /healthz", "/healthz", bodyIs("ok\n")},
		{"GET /readyz", "/readyz", bodyIs("ready\n")},
		{"GET /metrics", "/metrics", bodyHas("meridian_ingest_rejected_total")},
		{"GET /rum.js", "/rum.js", bodyHas("sendBeacon")},
		{"GET /rum.v1.js", "/rum.v1.js", bodyHas("sendBeacon")},
	} {
		cs = append(cs, publicRoute(e, r.route, r.path, r.body)...)
	}
	return cs
}

func publicRoute(e *hostileEnv, route, path string, body func(t *testing.T, e *hostileEnv, r hresp)) []hostileCase {
	ok := func(attack, name string, reqs ...hreq) hostileCase {
		return hc(route, attack, name, 200, reqs...).then(body)
	}
	withBody := func(b []byte, hdr ...string) hreq {
		return hreq{method: "GET", path: path, header: headers(hdr...), body: b}
	}
	cors := noCORS
	if strings.HasPrefix(path, "/rum") {
		cors = func(t *testing.T, e *hostileEnv, r hresp) {} // the script is public: Access-Control-Allow-Origin *
	}
	return []hostileCase{
		ok(atkMalformed, "a body that is not JSON", withBody([]byte("\x00\xff{"))),
		hc(route, atkOversized, "a 2 MiB URL", 431, longURL("GET", path)),
		ok(atkNested, "nested brackets in the query", get(path+"?a"+strings.Repeat("[a]", 1000)+"=1", nil)),
		ok(atkUTF8, "invalid UTF-8 in the query", get(path+"?%ff=%fe", nil)),
		ok(atkDupKeys, "a repeated query key", get(path+"?a=1&a=2", nil)),
		ok(atkGzipBomb, "a gzip bomb body", withBody(gzipBomb(100<<10), "Content-Encoding", "gzip")),
		ok(atkReplay, "the same request twice", get(path, nil), get(path, nil)),
		ok(atkToken, "an unknown bearer token", get(path, bearer(fakeToken))),
		ok(atkURLToken, "an agent token in the query: not used, not logged", get(path+"?token="+e.agentToken, nil)),
		ok(atkOrigin, "a browser's Origin", get(path, headers("Origin", "https://evil.example"))).then(cors),
		ok(atkSQLNUL, "SQL and NUL in the query", get(path+"?q=%27%3B%20DROP%20TABLE%20results%3B--%00", nil)),
		hc(route, atkSQLNUL, "NUL in the path", 404, get(path+"%00", nil)),
		hc(route, atkMethod, "POST", 405, post(path, nil, []byte("{}"))),
		hc(route, atkMethod, "DELETE", 405, hreq{method: "DELETE", path: path}),
	}
}

// unknownPathCases: paths no route serves are 404, whatever the method.
func unknownPathCases() []hostileCase {
	var cs []hostileCase
	for _, r := range []hreq{
		get("/v1/nope", nil), post("/v1/results/extra", nil, []byte("{}")), get("/admin", nil), get("/.env", nil),
		get("/v1/steering/export/x", nil), post("/v1/beacon/", nil, nil), get("/v1/agent/config/../../../etc/passwd", nil),
		get("/%00", nil), get("/v1/%27%20OR%201=1", nil), hreq{method: "PATCH", path: "/v2/results"},
	} {
		cs = append(cs, hc(routeUnknown, "path", r.method+" "+r.path, 404, r))
	}
	return cs
}

func bodyIs(want string) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		if r.body != want {
			t.Errorf("got %.100q, want %q", r.body, want)
		}
	}
}

func bodyHas(want string) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		if !strings.Contains(r.body, want) {
			t.Errorf("got %.100q…, want it to contain %q", r.body, want)
		}
	}
}
