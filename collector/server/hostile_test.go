package server_test

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Attack classes: the columns of the endpoint × attack matrix (issue 15,
// "Hostile input on every endpoint"). Every route the collector registers
// needs at least one case of each.
const (
	atkMalformed = "malformed"
	atkOversized = "oversized"
	atkNested    = "nested"
	atkUTF8      = "utf8"
	atkDupKeys   = "dupkeys"
	atkGzipBomb  = "gzipbomb"
	atkReplay    = "replay"
	atkToken     = "token"    // wrong, missing or misplaced credentials
	atkURLToken  = "urltoken" // a token in the URL query
	atkOrigin    = "origin"   // unregistered or hostile Origin
	atkSQLNUL    = "sqlnul"   // SQL metacharacters and NUL in every string
	atkMethod    = "method"
)

var attacks = []string{atkMalformed, atkOversized, atkNested, atkUTF8, atkDupKeys, atkGzipBomb,
	atkReplay, atkToken, atkURLToken, atkOrigin, atkSQLNUL, atkMethod}

// routeUnknown holds requests to paths no route serves (404).
const routeUnknown = "(no route)"

// hostileCase sends reqs in order; each must be answered want. Then the
// tables have gained exactly stored rows (none when nil), check has passed,
// and the collector still answers /healthz and /readyz without a panic.
type hostileCase struct {
	route, attack, name string
	reqs                []hreq
	want                int
	stored              map[string]int
	check               func(t *testing.T, e *hostileEnv, r hresp)
}

func hc(route, attack, name string, want int, reqs ...hreq) hostileCase {
	return hostileCase{route: route, attack: attack, name: name, want: want, reqs: reqs}
}

func (c hostileCase) stores(table string, n int) hostileCase {
	c.stored = maps.Clone(c.stored)
	if c.stored == nil {
		c.stored = map[string]int{}
	}
	c.stored[table] += n
	return c
}

// then adds a check, run after the ones before it.
func (c hostileCase) then(check func(t *testing.T, e *hostileEnv, r hresp)) hostileCase {
	if before := c.check; before != nil {
		c.check = func(t *testing.T, e *hostileEnv, r hresp) { before(t, e, r); check(t, e, r) }
		return c
	}
	c.check = check
	return c
}

func TestHostileInput(t *testing.T) {
	e := newHostileEnv(t)
	cases := slices.Concat(resultsCases(t, e), beaconCases(t, e), agentConfigCases(e), heartbeatCases(e),
		steeringCases(e), exportCases(e), publicCases(e), unknownPathCases())
	routes := muxRoutes(t)
	requireEveryAttack(t, routes, cases)
	seen := map[[2]string][]int{}
	for _, c := range cases {
		t.Run(c.route+" "+c.attack+" "+c.name, func(t *testing.T) {
			k := [2]string{c.route, c.attack}
			seen[k] = append(seen[k], e.run(t, c).code)
		})
	}
	for _, s := range e.secrets() {
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("the collector logged a token (%.8s…):\n%s", s, e.logs.String())
		}
		if m := e.send(t, hreq{method: "GET", path: "/metrics"}); strings.Contains(m.body, s) {
			t.Errorf("/metrics shows a token (%.8s…)", s)
		}
	}
	t.Log("endpoint × attack → statuses seen\n" + matrix(routes, seen))
}

func (e *hostileEnv) run(t *testing.T, c hostileCase) hresp {
	t.Helper()
	before := e.counts(t)
	var last hresp
	for i, r := range c.reqs {
		last = e.send(t, r)
		if last.code != c.want {
			t.Errorf("request %d of %d: got %d %.300q, want %d", i+1, len(c.reqs), last.code, last.body, c.want)
		}
		if last.code >= 400 && len(last.body) > 2048 {
			t.Errorf("request %d: a %d of %d bytes; an error says what is wrong in a line or two", i+1, last.code, len(last.body))
		}
		for _, s := range e.secrets() {
			if strings.Contains(last.body, s) {
				t.Errorf("request %d: the answer shows a token (%.8s…)", i+1, s)
			}
		}
	}
	after := e.counts(t)
	for table, n := range after {
		if want := before[table] + uint64(c.stored[table]); n != want {
			t.Errorf("table %s: got %d rows, want %d (%+d)", table, n, want, c.stored[table])
		}
	}
	if c.check != nil && !t.Failed() {
		c.check(t, e, last)
	}
	e.healthy(t)
	return last
}

// requireEveryAttack fails for a route without a case of some attack, and
// for a case naming a route the collector does not register.
func requireEveryAttack(t *testing.T, routes []string, cases []hostileCase) {
	t.Helper()
	have := map[[2]string]bool{}
	for _, c := range cases {
		have[[2]string{c.route, c.attack}] = true
		if c.route != routeUnknown && !slices.Contains(routes, c.route) {
			t.Errorf("case %q attacks route %q, which server.go does not register (routes: %q)", c.name, c.route, routes)
		}
	}
	for _, r := range routes {
		for _, a := range attacks {
			if !have[[2]string{r, a}] {
				t.Errorf("route %q has no %s case: add one to the hostile suite", r, a)
			}
		}
	}
}

var routePattern = regexp.MustCompile(`^(?:[A-Z]+ )?/\S*$`)

// muxRoutes reads the package's non-test sources for the ServeMux patterns
// it registers: string literals such as "POST /v1/results" or "/v1/beacon"
// passed to a call whose name holds "handle" (mux.Handle, mux.HandleFunc, a
// helper). A route added there without cases here fails the suite.
func muxRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	set := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok && strings.Contains(strings.ToLower(calleeName(call.Fun)), "handle") {
				for _, a := range call.Args {
					if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						if s, err := strconv.Unquote(lit.Value); err == nil && routePattern.MatchString(s) {
							set[s] = true
						}
					}
				}
			}
			return true
		})
	}
	routes := slices.Sorted(maps.Keys(set))
	if len(routes) < 5 {
		t.Fatalf("found routes %q in the package's sources; the collector serves more: the parser misses how they are registered", routes)
	}
	return routes
}

func calleeName(fun ast.Expr) string {
	switch f := fun.(type) {
	case *ast.Ident:
		return f.Name
	case *ast.SelectorExpr:
		return f.Sel.Name
	}
	return ""
}

// matrix renders the statuses seen per route and attack as a Markdown table.
func matrix(routes []string, seen map[[2]string][]int) string {
	var b strings.Builder
	b.WriteString("| route | " + strings.Join(attacks, " | ") + " |\n|---" + strings.Repeat("|---", len(attacks)) + "|\n")
	for _, r := range routes {
		b.WriteString("| " + r)
		for _, a := range attacks {
			codes := slices.Compact(slices.Sorted(slices.Values(seen[[2]string{r, a}])))
			var s []string
			for _, c := range codes {
				s = append(s, strconv.Itoa(c))
			}
			b.WriteString(" | " + strings.Join(s, " "))
		}
		b.WriteString(" |\n")
	}
	for k, codes := range seen {
		if k[0] == routeUnknown {
			fmt.Fprintf(&b, "%s %s: %v\n", k[0], k[1], codes)
		}
	}
	return b.String()
}

// Request builders.

func get(path string, hdr map[string]string) hreq {
	return hreq{method: "GET", path: path, header: hdr}
}

func post(path string, hdr map[string]string, body []byte) hreq {
	return hreq{method: "POST", path: path, header: hdr, body: body}
}

func bearer(token string, more ...string) map[string]string {
	return headers(append([]string{"Authorization", "Bearer " + token}, more...)...)
}

func headers(kv ...string) map[string]string {
	h := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return h
}

// rawRequest spells a request out for hreq.raw, with its Content-Length.
func rawRequest(method, path string, hdr map[string]string, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n", method, path)
	for _, k := range slices.Sorted(maps.Keys(hdr)) {
		fmt.Fprintf(&b, "%s: %s\r\n", k, hdr[k])
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
	b.Write(body)
	return b.String()
}

// longURL is a request whose URL alone is past net/http's 1 MiB header
// limit: 431, before any handler runs.
func longURL(method, path string) hreq {
	return hreq{raw: rawRequest(method, path+"?q="+strings.Repeat("a", 2<<20), nil, nil)}
}

// gzipBomb is at most wire bytes of concatenated gzip members, each 1 MiB
// of zeros in about 1 KiB: gzip readers go on across members, so 1 MiB
// inflates to about 1 GiB.
func gzipBomb(wire int) []byte {
	bombOnce.Do(func() { bombMember = gz(make([]byte, 1<<20)) })
	var b bytes.Buffer
	for b.Len()+len(bombMember) <= wire {
		b.Write(bombMember)
	}
	return b.Bytes()
}

var (
	bombOnce   sync.Once
	bombMember []byte
)

// errReason checks an error answer is JSON naming reason.
func errReason(reason string) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		if !strings.Contains(r.body, `"reason":"`+reason+`"`) {
			t.Errorf("got %.300q, want a JSON error with reason %s", r.body, reason)
		}
	}
}

// noCORS checks an answer grants no origin access.
func noCORS(t *testing.T, e *hostileEnv, r hresp) {
	t.Helper()
	if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Errorf("got Access-Control-Allow-Origin %q, want none", v)
	}
}
