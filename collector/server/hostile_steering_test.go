package server_test

import (
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	steeringRoute = "GET /v1/steering"
	exportRoute   = "GET /v1/steering/export"
)

// readerCases are the attacks on credentials every steering-reader route
// answers alike; path may carry a query.
func readerCases(e *hostileEnv, route, path string) []hostileCase {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return []hostileCase{
		hc(route, atkToken, "no token", 401, get(path, nil)).then(errReason("no_token")),
		hc(route, atkToken, "unknown token", 401, get(path, bearer(fakeToken))).then(errReason("bad_token")),
		hc(route, atkToken, "an agent token", 403, get(path, bearer(e.agentToken))).then(errReason("agent_token")),
		hc(route, atkToken, "token with SQL", 401, get(path, bearer("mrd_' OR '1'='1"))),
		hc(route, atkDupKeys, "two Authorization headers", 400, get(path, headers("Authorization", "Bearer "+e.readerToken+"\x1eBearer "+fakeToken))),
		hc(route, atkURLToken, "reader token as ?token=", 400, get(path+sep+"token="+e.readerToken, nil)).then(errReason("token_in_url")),
		hc(route, atkURLToken, "header and ?token= both", 400, get(path+sep+"token="+e.readerToken, bearer(e.readerToken))),
		hc(route, atkOversized, "a 2 MiB URL", 431, longURL("GET", path)),
		hc(route, atkOrigin, "a browser's Origin", 200, get(path, bearer(e.readerToken, "Origin", "https://evil.example"))).then(noCORS),
		hc(route, atkGzipBomb, "a gzip bomb body on GET, ignored", 200,
			hreq{method: "GET", path: path, header: bearer(e.readerToken, "Content-Encoding", "gzip"), body: gzipBomb(100 << 10)}),
		hc(route, atkReplay, "the same request twice", 200, get(path, bearer(e.readerToken)), get(path, bearer(e.readerToken))),
		hc(route, atkMethod, "POST", 405, post(path, bearer(e.readerToken), nil)),
		hc(route, atkMethod, "DELETE", 405, hreq{method: "DELETE", path: path, header: bearer(e.readerToken)}),
	}
}

func steeringCases(e *hostileEnv) []hostileCase {
	auth := bearer(e.readerToken)
	q := func(attack, name, query string, want int) hostileCase {
		return hc(steeringRoute, attack, name, want, get("/v1/steering"+query, auth))
	}
	unknown := func(attack, name, query string) hostileCase {
		return q(attack, name, query, 404).then(errReason("unknown_pool")).then(validJSON)
	}
	return append(readerCases(e, steeringRoute, "/v1/steering"),
		q(atkMalformed, "empty pool: every pool", "?pool=", 200),
		hc(steeringRoute, atkMalformed, "a body on GET, ignored", 200, hreq{method: "GET", path: "/v1/steering", header: auth, body: []byte("\x00{")}),
		unknown(atkOversized, "a 100 KiB pool name", "?pool="+strings.Repeat("p", 100<<10)),
		q(atkNested, "nested brackets in a key, ignored", "?pool"+strings.Repeat("[a]", 1000)+"=1", 200),
		unknown(atkUTF8, "invalid UTF-8 pool", "?pool=%ff%fe"),
		q(atkDupKeys, "pool twice", "?pool=www&pool=nope", 400),
		unknown(atkSQLNUL, "pool with SQL", "?pool=www%27%20OR%20%271%27%3D%271"),
		unknown(atkSQLNUL, "pool with NUL", "?pool=www%00"),
		unknown(atkSQLNUL, "pool dropping a table", "?pool=%27%3B%20DROP%20TABLE%20steering_history%3B--"),
	)
}

func exportCases(e *hostileEnv) []hostileCase {
	auth := bearer(e.readerToken)
	q := func(attack, name, query string, want int) hostileCase {
		return hc(exportRoute, attack, name, want, get("/v1/steering/export"+query, auth)).then(validJSON)
	}
	many := strings.Repeat("&server=m=s", 5000)
	return append(readerCases(e, exportRoute, "/v1/steering/export?pool=www"),
		q(atkMalformed, "no pool", "?format=json", 400),
		q(atkMalformed, "unknown format", "?pool=www&format=yaml", 400),
		q(atkMalformed, "server without =", "?pool=www&format=haproxy&server=cdn-a", 400),
		q(atkOversized, "a 100 KiB pool name", "?pool="+strings.Repeat("p", 100<<10), 404),
		q(atkOversized, "5000 server= options", "?pool=www&format=haproxy"+many, 400),
		q(atkNested, "server=a=b=c=d", "?pool=www&format=haproxy&server=cdn-a=b=c=d", 400),
		q(atkNested, "scope with two ASNs", "?pool=www&format=haproxy&scope=country:BR/asn:1/asn:2", 400),
		q(atkUTF8, "invalid UTF-8 backend", "?pool=www&format=haproxy&backend=%ff", 400),
		q(atkUTF8, "invalid UTF-8 hosted zone", "?pool=www&format=route53&hosted_zone_id=%ff", 400),
		q(atkDupKeys, "format twice", "?pool=www&format=json&format=haproxy", 400),
		q(atkDupKeys, "pool twice", "?pool=www&pool=nope", 400),
		q(atkDupKeys, "one member given two servers", "?pool=www&format=haproxy&server=cdn-a=s1&server=cdn-a=s2", 400),
		q(atkSQLNUL, "pool with SQL", "?pool=www%27--", 404),
		q(atkSQLNUL, "scope with NUL", "?pool=www&format=haproxy&scope=global%27%00", 400),
		q(atkSQLNUL, "backend with a statement", "?pool=www&format=haproxy&backend=www;DROP", 400),
		q(atkSQLNUL, "server smuggling a second runtime command", "?pool=www&format=haproxy&server=cdn-a=s1%0Aset%20weight%20x/y%20100", 400),
		q(atkSQLNUL, "hosted zone with SQL and NUL", "?pool=www&format=route53&hosted_zone_id=Z1%27%00", 400),
		q(atkSQLNUL, "format with SQL", "?pool=www&format=json%27--", 400),
	)
}

// validJSON checks an error answer is valid UTF-8 (JSON encodes what it
// echoes of a hostile query).
func validJSON(t *testing.T, e *hostileEnv, r hresp) {
	t.Helper()
	if r.code >= 400 && (!utf8.ValidString(r.body) || !strings.HasPrefix(r.body, "{")) {
		t.Errorf("got %.200q, want a JSON error", r.body)
	}
}
