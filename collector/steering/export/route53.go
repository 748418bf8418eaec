package export

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/meridian-net/meridian/collector/steering"
)

// Route53ChangeBatch is the change batch that makes Route 53 answer as d
// says, for ChangeResourceRecordSets on hostedZoneID (the zone holding the
// pool's dns_name).
//
// Route 53 cannot put Weight and GeoLocation on one record set, so each
// scope gets weighted record sets under a name of its own, and the pool's
// dns_name gets geolocation aliases to them:
//
//	global.www.shop.example.     weighted, one set per member (SetIdentifier meridian-www-global-cdn-a)
//	br.www.shop.example.         weighted, for country:BR (meridian-www-BR-cdn-a)
//	eu.region.www.shop.example.  weighted, for region:eu (meridian-www-region-eu-cdn-a)
//	www.shop.example.            geolocation BR → br.www…, each country of eu without a scope of its own → eu.region.www…,
//	                             default (CountryCode "*") → global.www…  (meridian-www-geo-BR, meridian-www-geo-default)
//
// Every change is an UPSERT with identifiers that depend only on pool,
// scope and member, so each batch overwrites the last. A down member's
// set stays with Weight 0 (never answered while another has weight); the
// weights are the decision's 0–100, within Route 53's 0–255, proportions
// exact. Members with IPv4 addresses get A sets, with IPv6 AAAA sets, with
// CNAMEs CNAME sets. Route 53 has no ASN routing: country+ASN scopes are
// left out (the batch's comment names them) and their clients get their
// country's answer.
func Route53ChangeBatch(d *steering.Decision, pool *steering.Pool, regions map[string][]string, hostedZoneID string) (*types.ChangeBatch, error) {
	if hostedZoneID == "" {
		return nil, optionErrorf("route53 needs the hosted zone id of %s for its alias records: pass --hosted-zone-id (hosted_zone_id= over HTTP)", d.DNSName)
	}
	if err := check(d, pool); err != nil {
		return nil, err
	}
	kind, err := answerKind(pool)
	if err != nil {
		return nil, err
	}
	answers, rtypes, err := pdnsAnswers(pool, kind)
	if err != nil {
		return nil, err
	}
	scopes, err := specificFirst(d)
	if err != nil {
		return nil, err
	}
	b := &r53Builder{d: d, answers: answers, zone: hostedZoneID, ids: map[string]bool{}}
	var skipped []string
	for _, s := range scopes {
		if s.scope.ASN != 0 {
			skipped = append(skipped, s.Scope)
			continue
		}
		if err := b.scope(s, rtypes, regions); err != nil {
			return nil, err
		}
	}
	comment := fmt.Sprintf("meridian steering: pool %s, decision computed %s", d.Pool, d.ComputedAt.UTC().Format("2006-01-02T15:04:05Z"))
	if len(skipped) > 0 {
		comment += "; no ASN routing in Route 53, left out: " + strings.Join(skipped, " ")
	}
	if len(comment) > 256 { // the API's limit
		comment = comment[:253] + "..."
	}
	return &types.ChangeBatch{Comment: aws.String(comment), Changes: slices.Concat(b.weighted, b.geo)}, nil
}

type r53Builder struct {
	d             *steering.Decision
	answers       map[string]map[string][]string
	zone          string
	weighted, geo []types.Change
	ids           map[string]bool // SetIdentifier+type, to refuse a clash rather than overwrite
}

// scope adds s's weighted sets and the geolocation aliases that lead to them.
func (b *r53Builder) scope(s scoped, rtypes []string, regions map[string][]string) error {
	label, err := scopeLabel(s.Scope)
	if err != nil {
		return err
	}
	target := "global." + b.d.DNSName
	var countries []string // geolocation codes sending clients to target
	switch {
	case s.scope.Country != "":
		target, countries = strings.ToLower(s.scope.Country)+"."+b.d.DNSName, []string{s.scope.Country}
	case s.scope.Region != "":
		target = s.scope.Region + ".region." + b.d.DNSName
		ccs, err := regionCountries(regions, s.scope.Region)
		if err != nil {
			return err
		}
		for _, cc := range ccs {
			if _, own := b.d.Scope("country:" + cc); !own {
				countries = append(countries, cc)
			}
		}
	default:
		countries = []string{"*"}
	}
	if len(target) > 254 {
		return fmt.Errorf("cannot export scope %s to route53: the name %s is longer than DNS allows", s.Scope, target)
	}
	for _, t := range rtypes {
		for _, m := range s.Members {
			values := b.answers[t][m.Name]
			if len(values) == 0 {
				continue // no answer of this type: not in this set
			}
			set := &types.ResourceRecordSet{
				Name: aws.String(target), Type: types.RRType(t), TTL: aws.Int64(int64(b.d.TTL)),
				Weight: aws.Int64(int64(m.Weight)),
			}
			for _, v := range values {
				set.ResourceRecords = append(set.ResourceRecords, types.ResourceRecord{Value: aws.String(v)})
			}
			if err := b.add(&b.weighted, set, "meridian-"+b.d.Pool+"-"+label+"-"+m.Name); err != nil {
				return err
			}
		}
		for _, cc := range countries {
			geo := cc
			if cc == "*" {
				geo = "default"
			}
			set := &types.ResourceRecordSet{
				Name: aws.String(b.d.DNSName), Type: types.RRType(t), GeoLocation: &types.GeoLocation{CountryCode: aws.String(cc)},
				AliasTarget: &types.AliasTarget{HostedZoneId: aws.String(b.zone), DNSName: aws.String(target), EvaluateTargetHealth: false},
			}
			if err := b.add(&b.geo, set, "meridian-"+b.d.Pool+"-geo-"+geo); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *r53Builder) add(to *[]types.Change, set *types.ResourceRecordSet, id string) error {
	key := id + " " + string(set.Type)
	switch {
	case len(id) > 128:
		return fmt.Errorf("cannot export to route53: set identifier %s is longer than 128 characters; shorten the pool or member name", id)
	case b.ids[key]:
		return fmt.Errorf("cannot export to route53: two record sets would have the identifier %s; rename the member", id)
	}
	b.ids[key] = true
	set.SetIdentifier = aws.String(id)
	*to = append(*to, types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: set})
	return nil
}

// The JSON of a change batch as `aws route53 change-resource-record-sets
// --change-batch` reads it. The SDK's types have no JSON tags (the API is
// XML) and would write every unset field as null.
type (
	r53Batch struct {
		Comment string      `json:"Comment,omitempty"`
		Changes []r53Change `json:"Changes"`
	}
	r53Change struct {
		Action            string `json:"Action"`
		ResourceRecordSet r53Set `json:"ResourceRecordSet"`
	}
	r53Set struct {
		Name            string          `json:"Name"`
		Type            string          `json:"Type"`
		SetIdentifier   string          `json:"SetIdentifier,omitempty"`
		Weight          *int64          `json:"Weight,omitempty"`
		GeoLocation     *r53Geo         `json:"GeoLocation,omitempty"`
		TTL             *int64          `json:"TTL,omitempty"`
		ResourceRecords []r53Value      `json:"ResourceRecords,omitempty"`
		AliasTarget     *r53AliasTarget `json:"AliasTarget,omitempty"`
	}
	r53Geo struct {
		CountryCode string `json:"CountryCode"`
	}
	r53Value struct {
		Value string `json:"Value"`
	}
	r53AliasTarget struct {
		HostedZoneId         string `json:"HostedZoneId"`
		DNSName              string `json:"DNSName"`
		EvaluateTargetHealth bool   `json:"EvaluateTargetHealth"`
	}
)

func renderRoute53(d *steering.Decision, pool *steering.Pool, regions map[string][]string, opts Options) ([]byte, error) {
	cb, err := Route53ChangeBatch(d, pool, regions, opts.HostedZoneID)
	if err != nil {
		return nil, err
	}
	out := r53Batch{Comment: aws.ToString(cb.Comment), Changes: []r53Change{}}
	for _, c := range cb.Changes {
		s := c.ResourceRecordSet
		j := r53Set{Name: aws.ToString(s.Name), Type: string(s.Type), SetIdentifier: aws.ToString(s.SetIdentifier), Weight: s.Weight, TTL: s.TTL}
		if s.GeoLocation != nil {
			j.GeoLocation = &r53Geo{CountryCode: aws.ToString(s.GeoLocation.CountryCode)}
		}
		for _, r := range s.ResourceRecords {
			j.ResourceRecords = append(j.ResourceRecords, r53Value{aws.ToString(r.Value)})
		}
		if a := s.AliasTarget; a != nil {
			j.AliasTarget = &r53AliasTarget{aws.ToString(a.HostedZoneId), aws.ToString(a.DNSName), a.EvaluateTargetHealth}
		}
		out.Changes = append(out.Changes, r53Change{Action: string(c.Action), ResourceRecordSet: j})
	}
	return marshalIndent(out)
}
