package export

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
)

// route53Batch renders the route53 format and reads it back into the
// SDK's own types, refusing any field they do not have.
func route53Batch(t *testing.T) *types.ChangeBatch {
	t.Helper()
	d, pool, regions := fixture()
	var cb types.ChangeBatch
	strict(t, render(t, "route53", d, pool, regions, fixtureOpts), &cb)
	return &cb
}

func TestRoute53Shape(t *testing.T) {
	cb := route53Batch(t)
	weights := map[string]int64{} // set name + type → sum
	geo := map[string]string{}    // country + type → alias target
	for _, c := range cb.Changes {
		s := c.ResourceRecordSet
		if c.Action != types.ChangeActionUpsert || s == nil || aws.ToString(s.SetIdentifier) == "" {
			t.Fatalf("change %+v: want an UPSERT of a set with an identifier", c)
		}
		switch {
		case s.Weight != nil:
			if *s.Weight < 0 || *s.Weight > 255 || s.GeoLocation != nil || s.AliasTarget != nil || aws.ToInt64(s.TTL) != 30 || len(s.ResourceRecords) == 0 {
				t.Errorf("weighted set %s: %+v", aws.ToString(s.SetIdentifier), s)
			}
			weights[aws.ToString(s.Name)+" "+string(s.Type)] += *s.Weight
		case s.GeoLocation != nil:
			if s.AliasTarget == nil || aws.ToString(s.AliasTarget.HostedZoneId) != fixtureOpts.HostedZoneID || s.TTL != nil || aws.ToString(s.Name) != "www.shop.example." {
				t.Errorf("geolocation set %s: %+v", aws.ToString(s.SetIdentifier), s)
			}
			geo[aws.ToString(s.GeoLocation.CountryCode)+" "+string(s.Type)] = aws.ToString(s.AliasTarget.DNSName)
		default:
			t.Errorf("set %s is neither weighted nor geolocation", aws.ToString(s.SetIdentifier))
		}
	}
	for _, k := range []string{"global.www.shop.example. A", "br.www.shop.example. A"} {
		if weights[k] != 100 {
			t.Errorf("%s: weights sum to %d, want 100", k, weights[k])
		}
	}
	if len(weights) != 4 { // A and AAAA for global and BR; no ASN scope
		t.Errorf("weighted names %v: want A and AAAA for global and br only", weights)
	}
	if geo["BR A"] != "br.www.shop.example." || geo["* A"] != "global.www.shop.example." || geo["* AAAA"] != "global.www.shop.example." || len(geo) != 4 {
		t.Errorf("geolocation aliases %v", geo)
	}
	if !strings.Contains(aws.ToString(cb.Comment), "country:BR/asn:28573") {
		t.Errorf("comment %q does not name the ASN scope left out", aws.ToString(cb.Comment))
	}
}

func TestRoute53StableIdentifiers(t *testing.T) {
	first := setIDs(t, route53Batch(t))
	d, pool, regions := fixture() // a later decision with other weights
	d.ComputedAt = d.ComputedAt.Add(15 * time.Second)
	d.Scopes[0].Members[0].Weight, d.Scopes[0].Members[1].Weight = 50, 50
	cb, err := Route53ChangeBatch(d, pool, regions, fixtureOpts.HostedZoneID)
	if err != nil {
		t.Fatal(err)
	}
	if second := setIDs(t, cb); !slices.Equal(first, second) {
		t.Errorf("set identifiers changed between two decisions:\n%q\n%q", first, second)
	}
	if !slices.Contains(first, "meridian-www-BR-cdn-a A") || !slices.Contains(first, "meridian-www-geo-default AAAA") {
		t.Errorf("identifiers %q: want meridian-www-BR-cdn-a and meridian-www-geo-default", first)
	}
}

func setIDs(t *testing.T, cb *types.ChangeBatch) []string {
	t.Helper()
	var out []string
	for _, c := range cb.Changes {
		out = append(out, aws.ToString(c.ResourceRecordSet.SetIdentifier)+" "+string(c.ResourceRecordSet.Type))
	}
	return out
}

func TestRoute53NeedsZone(t *testing.T) {
	d, pool, regions := fixture()
	_, err := Render("route53", d, pool, regions, Options{})
	var oe *OptionError
	if !errors.As(err, &oe) || !strings.Contains(err.Error(), "--hosted-zone-id") {
		t.Errorf("route53 without a zone: got %v, want an option error naming --hosted-zone-id", err)
	}
}

func TestRoute53Regions(t *testing.T) {
	d, pool, regions := fixture()
	d.Scopes = append(d.Scopes, d.Scopes[0])
	d.Scopes[len(d.Scopes)-1].Scope = "region:sa"
	cb, err := Route53ChangeBatch(d, pool, regions, "Z1")
	if err != nil {
		t.Fatal(err)
	}
	geo := map[string]string{}
	for _, c := range cb.Changes {
		if s := c.ResourceRecordSet; s.GeoLocation != nil && s.Type == types.RRTypeA {
			geo[aws.ToString(s.GeoLocation.CountryCode)] = aws.ToString(s.AliasTarget.DNSName)
		}
	}
	if geo["AR"] != "sa.region.www.shop.example." || geo["CL"] != "sa.region.www.shop.example." || geo["BR"] != "br.www.shop.example." {
		t.Errorf("geolocation with region:sa: %v; want AR and CL to the region, BR to its own scope", geo)
	}
}
