package steering

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed stats.sql
var statsSQL string

var statsTemplate = template.Must(template.New("stats.sql").Parse(statsSQL))

// StatsQuery renders the one query that reads a pool's figures over the
// window ending at now, and its arguments. agentCountry maps agent names to
// their countries (store.AgentCountries).
func StatsQuery(p *Policy, pool *Pool, agentCountry map[string]string, now time.Time) (string, []any, error) {
	k := pool.Knobs()
	var b bytes.Buffer
	err := statsTemplate.Execute(&b, map[string]any{
		"Q":     strconv.FormatFloat(k.Quantile, 'f', -1, 64),
		"Total": k.Metric == "total",
	})
	if err != nil {
		return "", nil, fmt.Errorf("cannot render the steering query: %w", err)
	}
	var rumNames, rumMembers, synNames, synMembers []string
	for _, m := range pool.Members {
		rumNames, rumMembers = append(rumNames, m.RUMName()), append(rumMembers, m.Name)
		synNames, synMembers = append(synNames, m.SyntheticName()), append(synMembers, m.Name)
	}
	// transform() needs arrays with a type: an empty one has none, so each
	// mapping carries one pair that matches nothing ("-" is no agent
	// name and no country code).
	ccs, regions := []string{"-"}, []string{""}
	for _, r := range slices.Sorted(maps.Keys(p.Regions)) {
		for _, cc := range p.Regions[r] {
			ccs, regions = append(ccs, cc), append(regions, r)
		}
	}
	agents, countries := []string{"-"}, []string{""}
	for _, a := range slices.Sorted(maps.Keys(agentCountry)) {
		agents, countries = append(agents, a), append(countries, agentCountry[a])
	}
	from, to := now.Add(-k.Window).Unix(), now.Unix()
	recent := to + 1 // no fast window: nothing is recent
	if k.FastWindow > 0 {
		recent = now.Add(-k.FastWindow).Unix()
	}
	args := []any{
		rumNames, rumMembers, ccs, regions, recent, from, to, rumNames,
		synNames, synMembers, agents, countries, ccs, regions, agents, countries, recent, from, to, synNames,
	}
	return b.String(), args, nil
}

// ReadStats runs StatsQuery and returns its rows as Stats.
func ReadStats(ctx context.Context, conn driver.Conn, p *Policy, pool *Pool, agentCountry map[string]string, now time.Time) ([]Stat, error) {
	sql, args, err := StatsQuery(p, pool, agentCountry, now)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read the figures of pool %s: %w", pool.Name, err)
	}
	defer rows.Close()
	var out []Stat
	for rows.Next() {
		var r StatRow
		if err := rows.Scan(&r.Member, &r.Source, &r.Region, &r.Country, &r.ASN, &r.HasRegion, &r.HasCountry, &r.HasASN,
			&r.Samples, &r.Errors, &r.Q, &r.RecentSamples, &r.RecentErrors, &r.RecentQ); err != nil {
			return nil, fmt.Errorf("cannot read the figures of pool %s: %w", pool.Name, err)
		}
		if s, ok := r.Stat(); ok {
			out = append(out, s)
		}
	}
	return out, rows.Err()
}

// StatRow is one row of the stats query as it comes back.
type StatRow struct {
	Member, Source, Region, Country, ASN string
	HasRegion, HasCountry, HasASN        uint8
	Samples, Errors                      uint64
	Q                                    float64
	RecentSamples, RecentErrors          uint64
	RecentQ                              float64
}

// Stat says which scope the row is about; false for rows that are no scope:
// no member, no country or region known, or no ASN (synthetic results, or
// RUM from an address outside the ASN database).
func (r StatRow) Stat() (Stat, bool) {
	s := Stat{Member: r.Member, Source: r.Source, Samples: r.Samples, Errors: r.Errors, Q: r.Q,
		RecentSamples: r.RecentSamples, RecentErrors: r.RecentErrors, RecentQ: r.RecentQ}
	if r.Member == "" {
		return s, false
	}
	switch {
	case r.HasASN == 1:
		asn, err := strconv.ParseUint(r.ASN, 10, 32)
		if err != nil || asn == 0 || r.Country == "" {
			return s, false
		}
		s.Scope = Scope{Country: r.Country, ASN: uint32(asn)}
	case r.HasCountry == 1:
		if r.Country == "" {
			return s, false
		}
		s.Scope = Scope{Country: r.Country}
	case r.HasRegion == 1:
		if r.Region == "" {
			return s, false
		}
		s.Scope = Scope{Region: r.Region}
	default:
		s.Scope = Global
	}
	return s, true
}
