package routertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
)

// sqliteSchema is the gsqlite3 backend's schema as Debian ships it.
const sqliteSchema = "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"

// PDNS is a running PowerDNS Authoritative server.
type PDNS struct {
	DNSAddr  string // 127.0.0.1:PORT, UDP and TCP
	API      string // http://127.0.0.1:PORT, the webserver the API is on
	APIKey   string
	ServerID string // always localhost
}

// PowerDNS starts pdns_server under tb.TempDir() with the gsqlite3 backend
// (whose zones the API can change; the bind backend's it cannot) and the
// geoip backend, which gives LUA records country() from a test-written
// mmdb mapping each CIDR in countries to its ISO code. EDNS Client Subnet
// is honoured, so a query carrying one is answered for that subnet, and
// every cache is off, so a pushed change answers at once.
func PowerDNS(tb testing.TB, countries map[string]string) *PDNS {
	tb.Helper()
	need(tb, "pdns_server", "sqlite3", sqliteSchema)
	dir := tb.TempDir()
	nets := map[string]enrichtest.City{}
	for cidr, cc := range countries {
		nets[cidr] = enrichtest.City{Country: cc}
	}
	mmdb := enrichtest.CityDB(tb, nets)
	db := filepath.Join(dir, "pdns.sqlite3")
	schema, err := os.ReadFile(sqliteSchema)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("sqlite3", db)
	cmd.Stdin = bytes.NewReader(schema)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("routertest: cannot create the PowerDNS database: %v\n%s", err, out)
	}
	writeFile(tb, filepath.Join(dir, "geo.yml"), "domains: []\n")
	p := &PDNS{APIKey: "routertest-key", ServerID: "localhost"}
	dnsPort, webPort := FreePort(tb), FreePort(tb)
	p.DNSAddr = "127.0.0.1:" + strconv.Itoa(dnsPort)
	p.API = "http://127.0.0.1:" + strconv.Itoa(webPort)
	writeFile(tb, filepath.Join(dir, "pdns.conf"), fmt.Sprintf(`launch=gsqlite3,geoip
gsqlite3-database=%s
gsqlite3-dnssec=no
geoip-database-files=mmdb:%s
geoip-zones-file=%s
enable-lua-records=yes
edns-subnet-processing=yes
cache-ttl=0
query-cache-ttl=0
negquery-cache-ttl=0
zone-cache-refresh-interval=0
local-address=127.0.0.1
local-port=%d
api=yes
api-key=%s
webserver=yes
webserver-address=127.0.0.1
webserver-port=%d
webserver-allow-from=127.0.0.1/32
loglevel=6
`, db, mmdb, filepath.Join(dir, "geo.yml"), dnsPort, p.APIKey, webPort))
	proc := start(tb, "pdns_server", "--daemon=no", "--guardian=no", "--disable-syslog", "--write-pid=no",
		"--config-dir="+dir, "--socket-dir="+dir)
	proc.waitFor(tb, "pdns_server", func(ctx context.Context) error {
		return p.do(ctx, http.MethodGet, "/api/v1/servers/localhost", nil, nil)
	})
	return p
}

// CreateZone creates a Native zone with an SOA and one NS through the API.
func (p *PDNS) CreateZone(tb testing.TB, zone string) {
	tb.Helper()
	body := map[string]any{"name": zone, "kind": "Native", "nameservers": []string{"ns1." + zone}}
	if err := p.do(context.Background(), http.MethodPost, "/api/v1/servers/localhost/zones", body, nil); err != nil {
		tb.Fatalf("routertest: cannot create zone %s: %v", zone, err)
	}
}

func (p *PDNS) do(ctx context.Context, method, path string, body, into any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.API+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", p.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if into != nil {
		return json.Unmarshal(b, into)
	}
	return nil
}
