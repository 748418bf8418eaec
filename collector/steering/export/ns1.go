package export

import (
	"fmt"

	"github.com/meridian-net/meridian/collector/steering"
)

// NS1Feed is the body an NS1 data source of type "NSONE Data Feed API"
// takes: feed label → the metadata it sets. Labels are
// <pool>-<scope label>-<member> (package comment), such as
// www-global-cdn-a, www-BR-cdn-a and www-BR-AS28573-cdn-a: create one feed
// per label, connect each to the answer's weight and up metadata in the
// record's scope-matching filter chain (geotarget_country, then
// weighted_shuffle with up filtering).
type NS1Feed map[string]NS1Metadata

// NS1Metadata is what a feed sets on its answer: the decision's weight
// (0–100) and up, false for a down member.
type NS1Metadata struct {
	Weight int  `json:"weight"`
	Up     bool `json:"up"`
}

// NS1FeedOf is d as an NS1 data feed: every scope, ASN ones included (NS1
// filter chains can match ASNs).
func NS1FeedOf(d *steering.Decision) (NS1Feed, error) {
	feed := NS1Feed{}
	for _, sd := range d.Scopes {
		label, err := scopeLabel(sd.Scope)
		if err != nil {
			return nil, err
		}
		for _, m := range sd.Members {
			key := d.Pool + "-" + label + "-" + m.Name
			if _, dup := feed[key]; dup {
				return nil, fmt.Errorf("cannot export pool %s to ns1: two feeds would have the label %s; rename the member", d.Pool, key)
			}
			feed[key] = NS1Metadata{Weight: m.Weight, Up: m.State != steering.StateDown}
		}
	}
	return feed, nil
}

func renderNS1(d *steering.Decision, _ *steering.Pool, _ map[string][]string, _ Options) ([]byte, error) {
	feed, err := NS1FeedOf(d)
	if err != nil {
		return nil, err
	}
	return marshalIndent(feed) // encoding/json sorts the labels
}
