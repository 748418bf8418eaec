// Package dashboards owns Meridian's Grafana dashboards: they are built here
// with grafana-foundation-sdk's typed builders, written as JSON by
// `go run ./dashboards/gen`, and the committed JSON is checked against a
// fresh build by the package's test.
package dashboards

//lint:file-ignore SA1019 the v1 dashboard schema is deliberate: file provisioning loads it on every Grafana version in use; v2 is the newer schema only recent versions read

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/meridian-net/meridian/query"
)

// PluginType is the official ClickHouse datasource plugin's id.
const PluginType = "grafana-clickhouse-datasource"

// ProvisionedUID is the uid deploy/grafana/provisioning/datasources gives
// the datasource; the DS variable selects it by default, and on import the
// user may pick any other ClickHouse datasource instead.
const ProvisionedUID = "meridian-clickhouse"

// Build returns every dashboard as indented JSON, by file name.
func Build() (map[string][]byte, error) {
	boards := map[string]*dashboard.DashboardBuilder{
		"latency.json":     latencyBoard(),
		"latency-map.json": latencyMapBoard(),
		"cdns.json":        cdnBoard(),
		"vitals.json":      vitalsBoard(),
		"fleet.json":       fleetBoard(),
		"tls.json":         tlsBoard(),
		"steering.json":    steeringBoard(),
	}
	out := make(map[string][]byte, len(boards))
	for name, b := range boards {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("cannot build dashboard %s: %w", name, err)
		}
		for i, p := range d.Panels {
			if p.Panel != nil {
				id := uint32(i + 1)
				p.Panel.Id = &id
			}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // SQL reads better with <= than \u003c=
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("cannot encode dashboard %s: %w", name, err)
		}
		out[name] = buf.Bytes()
	}
	return out, nil
}

// Names returns the file names Build writes, sorted.
func Names() []string {
	b, _ := Build()
	names := make([]string, 0, len(b))
	for n := range b {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ds is the datasource every panel and query variable reads: the DS variable.
func ds() common.DataSourceRef {
	t, uid := PluginType, "${DS}"
	return common.DataSourceRef{Type: &t, Uid: &uid}
}

// board starts a dashboard with the DS variable and the named filter
// variables (see filterVar), in that order.
func board(uid, title string, vars ...*dashboard.QueryVariableBuilder) *dashboard.DashboardBuilder {
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Tags([]string{"meridian"}).
		Editable().
		Refresh("1m").
		Time("now-6h", "now").
		Timezone("utc").
		WithVariable(dashboard.NewDatasourceVariableBuilder("DS").
			Label("ClickHouse").
			Type(PluginType).
			Current(option(ProvisionedUID)))
	for _, v := range vars {
		b.WithVariable(v)
	}
	return b
}

func option(v string) dashboard.VariableOption {
	return dashboard.VariableOption{
		Text:  dashboard.StringOrArrayOfString{String: &v},
		Value: dashboard.StringOrArrayOfString{String: &v},
	}
}

// filterVar is a multi-value query variable that starts at All; panels
// filter on it with $__conditionalAll(col IN (${name:singlequote}), $name),
// so All costs no IN list at all.
func filterVar(name, sql string) *dashboard.QueryVariableBuilder {
	all := "$__all"
	allText := "All"
	return dashboard.NewQueryVariableBuilder(name).
		Label(name).
		Datasource(ds()).
		Query(dashboard.StringOrMap{String: &sql}).
		Definition(sql).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).
		IncludeAll(true).
		Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{allText}},
			Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{all}},
		})
}

// sqlQuery is one ClickHouse plugin target (plugin v4 query model). The SDK
// has no ClickHouse query type, so this one implements its Dataquery variant.
type sqlQuery struct {
	RefID      string                `json:"refId"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	EditorType string                `json:"editorType"`
	QueryType  string                `json:"queryType"`
	Format     int                   `json:"format"`
	RawSQL     string                `json:"rawSql"`
}

var _ variants.Dataquery = sqlQuery{}

func (sqlQuery) ImplementsDataqueryVariant() {}
func (sqlQuery) DataqueryType() string       { return PluginType }
func (sqlQuery) Validate() error             { return nil }
func (q sqlQuery) Equals(other variants.Dataquery) bool {
	o, ok := other.(sqlQuery)
	return ok && o.RefID == q.RefID && o.RawSQL == q.RawSQL && o.Format == q.Format && o.QueryType == q.QueryType
}

// Build lets a sqlQuery stand as its own builder.
func (q sqlQuery) Build() (variants.Dataquery, error) { return q, nil }

var _ cog.Builder[variants.Dataquery] = sqlQuery{}

// The plugin's formats: 0 time series, 1 table.
func timeSeriesSQL(sql string) sqlQuery {
	ref := ds()
	return sqlQuery{RefID: "A", Datasource: &ref, EditorType: "sql", QueryType: "timeseries", Format: 0, RawSQL: withSettings(sql)}
}

func tableSQL(sql string) sqlQuery {
	ref := ds()
	return sqlQuery{RefID: "A", Datasource: &ref, EditorType: "sql", QueryType: "table", Format: 1, RawSQL: withSettings(sql)}
}

// withSettings ends a panel that reads rows() with the settings they need.
func withSettings(sql string) string {
	if strings.Contains(sql, "replay = 1") {
		return sql + query.RowsSettings
	}
	return sql
}

func grid(x, y, w, h uint32) dashboard.GridPos {
	return dashboard.GridPos{X: x, Y: y, W: w, H: h}
}

// Filters on the dashboards' variables, as the plugin's $__conditionalAll.
const (
	siteFilter    = "$__conditionalAll(site IN (${site:singlequote}), $site)"
	cdnFilter     = "$__conditionalAll(cdn IN (${cdn:singlequote}), $cdn)"
	countryFilter = "$__conditionalAll(country IN (${country:singlequote}), $country)"
	regionFilter  = "$__conditionalAll(region IN (${region:singlequote}), $region)"
)

// bucket is the time column of time series panels. The plugin's
// $__timeInterval(ts) expands to toStartOfInterval, which 18.16 lacks; this
// form runs on every server we support.
func bucket(col string) string {
	return "toDateTime(intDiv(toUInt32(" + col + "), $__interval_s) * $__interval_s)"
}
