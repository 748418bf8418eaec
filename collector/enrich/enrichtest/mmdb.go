// Package enrichtest builds tiny MaxMind-format databases for tests, so that
// no test needs a real GeoIP download.
package enrichtest

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// City is one network's record in a City database (GeoLite2 layout).
type City struct {
	Country, Region, City string
}

// ASN is one network's record in an ASN database (GeoLite2-ASN layout).
type ASN struct {
	Number uint32
	Org    string
}

// CityDB writes a City database mapping each CIDR to its record in
// tb.TempDir() and returns its path. Reserved networks (loopback, the
// documentation ranges) are allowed so that tests can use them.
func CityDB(tb testing.TB, nets map[string]City) string {
	tb.Helper()
	return write(tb, "GeoLite2-City", "city.mmdb", func(w *mmdbwriter.Tree) {
		for cidr, c := range nets {
			rec := mmdbtype.Map{
				"country": mmdbtype.Map{"iso_code": mmdbtype.String(c.Country)},
				"city":    mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(c.City)}},
			}
			if c.Region != "" {
				rec["subdivisions"] = mmdbtype.Slice{mmdbtype.Map{"iso_code": mmdbtype.String(c.Region)}}
			}
			insert(tb, w, cidr, rec)
		}
	})
}

// FlatCityDB writes a City database in ip-location-db's flat layout
// (country_code, state1, city as a string).
func FlatCityDB(tb testing.TB, nets map[string]City) string {
	tb.Helper()
	return write(tb, "ip-location-db-city", "flat-city.mmdb", func(w *mmdbwriter.Tree) {
		for cidr, c := range nets {
			insert(tb, w, cidr, mmdbtype.Map{
				"country_code": mmdbtype.String(c.Country),
				"state1":       mmdbtype.String(c.Region),
				"city":         mmdbtype.String(c.City),
			})
		}
	})
}

// ASNDB writes an ASN database and returns its path.
func ASNDB(tb testing.TB, nets map[string]ASN) string {
	tb.Helper()
	return write(tb, "GeoLite2-ASN", "asn.mmdb", func(w *mmdbwriter.Tree) {
		for cidr, a := range nets {
			insert(tb, w, cidr, mmdbtype.Map{
				"autonomous_system_number":       mmdbtype.Uint32(a.Number),
				"autonomous_system_organization": mmdbtype.String(a.Org),
			})
		}
	})
}

func insert(tb testing.TB, w *mmdbwriter.Tree, cidr string, rec mmdbtype.Map) {
	tb.Helper()
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		tb.Fatalf("enrichtest: %v", err)
	}
	if err := w.Insert(n, rec); err != nil {
		tb.Fatalf("enrichtest: cannot insert %s: %v", cidr, err)
	}
}

func write(tb testing.TB, dbType, name string, fill func(*mmdbwriter.Tree)) string {
	tb.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		tb.Fatal(err)
	}
	fill(w)
	path := filepath.Join(tb.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := w.WriteTo(f); err != nil {
		tb.Fatalf("enrichtest: cannot write %s: %v", path, err)
	}
	return path
}
