package query

// registry names every query `meridian query` runs and query.Run accepts.
// A query's .sql file opens with "-- NAME: purpose" (List reads it).
var registry = map[string]*spec{
	"latency": {
		file: "latency.sql", rollup: "latency_1m.sql",
		dims: map[string]string{
			"region": "region", "agent": "agent", "target": "target", "check": "check_name", "kind": "kind",
			"cdn": "cdn", "member": "cdn_member", "pop": "cdn_pop", "proto": "http_proto", "country": country,
		},
		rollupDims: map[string]string{"region": "region", "target": "target", "check": "check_name", "kind": "kind"},
		filt:       map[string]string{"country": country, "cdn": "cdn", "target": "target", "region": "region", "kind": "kind"},
		rollupFilt: map[string]string{"target": "target", "region": "region", "kind": "kind"},
		defaultBy:  []string{"region", "target"},
		ts:         "ts", rollupTS: "minute",
	},
	"latency-map": {
		file: "latency_map.sql", rollup: "latency_map_1m.sql",
		dims:       latencyMapDims,
		rollupDims: latencyMapDims, // rum_cdn_1m and results_member_1m keep every dimension
		filt:       latencyMapFilt,
		rollupFilt: latencyMapFilt,
		defaultBy:  []string{"country", "member", "source"},
		ts:         "ts", rollupTS: "minute",
		sourceAll: true,
	},
	"cdns": {
		file: "cdns.sql",
		dims: map[string]string{
			"country": country, "cdn": "cdn", "member": "cdn_member", "pop": "cdn_pop",
			"region": "region", "target": "target", "agent": "agent", "check": "check_name",
		},
		filt:      map[string]string{"country": country, "cdn": "cdn", "target": "target", "region": "region", "kind": "kind"},
		defaultBy: []string{"country", "cdn"},
		ts:        "ts",
	},
	"vitals": {
		file: "vitals.sql", rollup: "vitals_1m.sql",
		dims: map[string]string{
			"country": "country", "page": "path(url)", "device": "device", "site": "site",
			"browser": "browser", "os": "os", "region": "region",
		},
		rollupDims: map[string]string{"country": "country", "site": "site"},
		filt:       map[string]string{"site": "site", "country": "country", "device": "device", "region": "region"},
		rollupFilt: map[string]string{"site": "site", "country": "country"},
		defaultBy:  []string{"country"},
		ts:         "ts", rollupTS: "minute",
	},
	"regions": {
		file: "regions.sql",
		dims: map[string]string{
			"region": "region", "target": "target", "check": "check_name", "kind": "kind",
			"agent": "agent", "country": country, "cdn": "cdn",
		},
		filt:      map[string]string{"country": country, "cdn": "cdn", "target": "target", "region": "region", "kind": "kind"},
		defaultBy: []string{"region", "target"},
		ts:        "ts",
	},
	"fleet": {
		file:      "fleet.sql",
		dims:      map[string]string{"agent": "agent", "country": country, "region": "region"},
		filt:      map[string]string{"country": country, "region": "region"},
		defaultBy: []string{"agent"},
	},
	"tls": {
		file: "tls.sql",
		dims: map[string]string{
			"region": "region", "target": "target", "agent": "agent", "country": country, "check": "check_name",
		},
		filt:      map[string]string{"country": country, "target": "target", "region": "region", "kind": "kind"},
		defaultBy: []string{"region", "target"},
		ts:        "ts",
	},
	"steering": {
		file:          "steering.sql",
		dims:          map[string]string{"pool": "pool", "scope": "scope", "member": "member"},
		filt:          map[string]string{"cdn": "member"},
		defaultBy:     []string{"pool", "scope", "member"},
		ts:            "computed_at",
		defaultBucket: "minute",
	},
}

// latencyMapDims and latencyMapFilt are latency-map's dimensions and
// filters: the raw form and the rollup name the same x_ columns.
var (
	latencyMapDims = map[string]string{
		"country": "x_country", "member": "x_member", "cdn": "x_member", "source": "x_source",
		"site": "x_site", "device": "x_device", "target": "x_target", "region": "x_region",
	}
	latencyMapFilt = map[string]string{
		"site": "x_site", "country": "x_country", "cdn": "x_member", "target": "x_target",
		"region": "x_region", "device": "x_device", "source": "x_source",
	}
)
