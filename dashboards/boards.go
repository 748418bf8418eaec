package dashboards

//lint:file-ignore SA1019 the v1 dashboard schema is deliberate: file provisioning loads it on every Grafana version in use; v2 is the newer schema only recent versions read

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/geomap"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/meridian-net/meridian/query"
)

// Variables. Each lists what the time range saw, so a filter never offers a
// value no panel can show.
func siteVar() *dashboard.QueryVariableBuilder {
	return filterVar("site", "SELECT DISTINCT site FROM rum_pageviews WHERE $__timeFilter(ts) ORDER BY site")
}

func cdnVar() *dashboard.QueryVariableBuilder {
	return filterVar("cdn", `SELECT cdn FROM (
  SELECT DISTINCT cdn FROM rum_cdn WHERE $__timeFilter(ts)
  UNION ALL
  SELECT DISTINCT cdn FROM results WHERE $__timeFilter(ts)
) WHERE cdn != '' GROUP BY cdn ORDER BY cdn`)
}

func countryVar() *dashboard.QueryVariableBuilder {
	return filterVar("country", "SELECT DISTINCT country FROM rum_pageviews WHERE $__timeFilter(ts) AND country != '' ORDER BY country")
}

func regionVar() *dashboard.QueryVariableBuilder {
	return filterVar("region", "SELECT DISTINCT region FROM results WHERE $__timeFilter(ts) ORDER BY region")
}

// rows reads a raw table's rows in the dashboard's time range, each stored
// row once, as the query library does (query.RowsSQL), rather than FINAL.
func rows(table string) string {
	sql, err := query.RowsSQL(table, func() string { return "$__timeFilter(ts)" })
	if err != nil {
		panic(err) // a table name in this file is wrong
	}
	return sql
}

func ts(title string, pos dashboard.GridPos, unit, sql string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().Title(title).Datasource(ds()).GridPos(pos).Unit(unit).WithTarget(timeSeriesSQL(sql))
}

func tbl(title string, pos dashboard.GridPos, sql string) *table.PanelBuilder {
	return table.NewPanelBuilder().Title(title).Datasource(ds()).GridPos(pos).WithTarget(tableSQL(sql))
}

// countryMap is a geomap panel placing one marker per ISO country code
// (Grafana's bundled countries gazetteer), coloured by field value.
func countryMap(title string, pos dashboard.GridPos, value, sql string) *geomap.PanelBuilder {
	style := map[string]any{
		"color": map[string]any{"field": value, "fixed": "dark-green"},
		"size":  map[string]any{"field": "samples", "fixed": 5, "min": 4, "max": 20},
		"text":  map[string]any{"field": value, "mode": "field"},
	}
	layer := common.NewMapLayerOptionsBuilder().
		Type("markers").
		Name(value).
		Tooltip(true).
		Location(common.NewFrameGeometrySourceBuilder().
			Mode(common.FrameGeometrySourceModeLookup).
			Lookup("country").
			Gazetteer("public/gazetteer/countries.json")).
		Config(map[string]any{"showLegend": true, "style": style})
	return geomap.NewPanelBuilder().
		Title(title).
		Datasource(ds()).
		GridPos(pos).
		Unit("ms").
		ColorScheme(dashboard.NewFieldColorBuilder().Mode(dashboard.FieldColorModeIdContinuousGrYlRd)).
		View(geomap.NewMapViewConfigBuilder().Id("zero").Zoom(1)).
		Controls(geomap.NewControlsOptionsBuilder().ShowZoom(true).MouseWheelZoom(true)).
		Basemap(common.NewMapLayerOptionsBuilder().Type("default").Name("Basemap")).
		Tooltip(geomap.NewTooltipOptionsBuilder().Mode(geomap.TooltipModeDetails)).
		Layers([]cog.Builder[common.MapLayerOptions]{layer}).
		WithTarget(tableSQL(sql))
}

func latencyBoard() *dashboard.DashboardBuilder {
	check := filterVar("check", "SELECT DISTINCT check_name FROM results WHERE $__timeFilter(ts) ORDER BY check_name")
	const checks = "$__conditionalAll(check_name IN (${check:singlequote}), $check)"
	return board("meridian-latency", "Meridian — latency", check, regionVar()).
		WithPanel(ts("p95 total time by region", grid(0, 0, 12, 9), "ms", `SELECT `+bucket("ts")+` AS time, region,
  quantileIf(0.95)(assumeNotNull(total_ms), ok = 1 AND isNotNull(total_ms)) AS p95_ms
FROM `+rows("results")+`
WHERE $__timeFilter(ts) AND kind = 'http' AND `+checks+` AND `+regionFilter+`
GROUP BY time, region ORDER BY time, region`)).
		WithPanel(ts("median HTTP phases", grid(12, 0, 12, 9), "ms", `SELECT `+bucket("ts")+` AS time,
  quantile(0.5)(dns_ms) AS dns, quantile(0.5)(connect_ms) AS connect, quantile(0.5)(tls_ms) AS tls,
  quantile(0.5)(ttfb_ms) AS ttfb, quantile(0.5)(transfer_ms) AS transfer
FROM `+rows("results")+`
WHERE $__timeFilter(ts) AND kind = 'http' AND ok = 1 AND `+checks+` AND `+regionFilter+`
GROUP BY time ORDER BY time`)).
		WithPanel(tbl("latency by region and target", grid(0, 9, 24, 9), `SELECT region, target, count() AS n, countIf(ok = 0) AS failed,
  round(quantileIf(0.5)(assumeNotNull(total_ms), ok = 1 AND isNotNull(total_ms)), 1) AS p50_ms,
  round(quantileIf(0.95)(assumeNotNull(total_ms), ok = 1 AND isNotNull(total_ms)), 1) AS p95_ms
FROM `+rows("results")+`
WHERE $__timeFilter(ts) AND `+checks+` AND `+regionFilter+`
GROUP BY region, target ORDER BY p95_ms DESC, region, target`)).
		WithPanel(ts("failures by error class", grid(0, 18, 24, 9), "short", `SELECT `+bucket("ts")+` AS time, error, count() AS n
FROM `+rows("results")+`
WHERE $__timeFilter(ts) AND ok = 0 AND `+checks+` AND `+regionFilter+`
GROUP BY time, error ORDER BY time, error`))
}

// rumCDN is the WHERE clause of RUM per-CDN timings: real users' successful
// fetches with a duration, narrowed by the site, CDN and country variables.
const rumCDN = `$__timeFilter(ts) AND is_bot = 0 AND ` + siteFilter + ` AND ` + cdnFilter + ` AND ` + countryFilter

const rumOK = `error = 0 AND isNotNull(duration_ms)`

func latencyMapBoard() *dashboard.DashboardBuilder {
	return board("meridian-latency-map", "Meridian — latency map", siteVar(), cdnVar(), countryVar(), regionVar()).
		WithPanel(countryMap("RUM: p75 resource time by country", grid(0, 0, 12, 12), "p75_ms", `SELECT country,
  round(quantile(0.75)(duration_ms), 1) AS p75_ms, count() AS samples
FROM `+rows("rum_cdn")+`
WHERE `+rumCDN+` AND `+rumOK+` AND country != ''
GROUP BY country ORDER BY country`)).
		WithPanel(countryMap("agents: p75 total time by agent country", grid(12, 0, 12, 12), "p75_ms", `SELECT country,
  round(quantile(0.75)(total_ms), 1) AS p75_ms, count() AS samples
FROM (
  SELECT agent, total_ms FROM `+rows("results")+`
  WHERE $__timeFilter(ts) AND ok = 1 AND isNotNull(total_ms) AND `+cdnFilter+` AND `+regionFilter+`
) AS r ALL INNER JOIN (SELECT agent, country FROM agent_countries FINAL) AS c USING agent
WHERE `+countryFilter+`
GROUP BY country ORDER BY country`)).
		WithPanel(tbl("RUM latency by country", grid(0, 12, 24, 10), `SELECT country,
  round(quantileIf(0.5)(assumeNotNull(duration_ms), `+rumOK+`), 1) AS p50_ms,
  round(quantileIf(0.75)(assumeNotNull(duration_ms), `+rumOK+`), 1) AS p75_ms,
  round(quantileIf(0.95)(assumeNotNull(duration_ms), `+rumOK+`), 1) AS p95_ms,
  countIf(`+rumOK+`) AS samples,
  round(countIf(error = 1) / count(), 4) AS error_rate
FROM `+rows("rum_cdn")+`
WHERE `+rumCDN+`
GROUP BY country ORDER BY country`))
}

func cdnBoard() *dashboard.DashboardBuilder {
	return board("meridian-cdns", "Meridian — CDN comparison", siteVar(), cdnVar(), countryVar(), regionVar()).
		WithPanel(tbl("RUM: p75 by country and CDN", grid(0, 0, 12, 12), `SELECT country, cdn,
  round(quantileIf(0.75)(assumeNotNull(duration_ms), `+rumOK+`), 1) AS p75_ms,
  countIf(`+rumOK+`) AS samples,
  round(countIf(error = 1) / count(), 4) AS error_rate
FROM `+rows("rum_cdn")+`
WHERE `+rumCDN+` AND cdn != ''
GROUP BY country, cdn ORDER BY country, cdn`)).
		WithPanel(ts("RUM: p75 by CDN", grid(12, 0, 12, 12), "ms", `SELECT `+bucket("ts")+` AS time, cdn,
  quantile(0.75)(duration_ms) AS p75_ms
FROM `+rows("rum_cdn")+`
WHERE `+rumCDN+` AND `+rumOK+` AND cdn != ''
GROUP BY time, cdn ORDER BY time, cdn`)).
		WithPanel(tbl("agents: POP and cache hits by region and CDN", grid(0, 12, 24, 10), `SELECT region, cdn, cdn_pop, count() AS n,
  round(countIf(cdn_cache = 'hit') / count(), 4) AS hit_share,
  round(quantileIf(0.75)(assumeNotNull(total_ms), ok = 1 AND isNotNull(total_ms)), 1) AS p75_ms
FROM `+rows("results")+`
WHERE $__timeFilter(ts) AND cdn != '' AND `+cdnFilter+` AND `+regionFilter+`
GROUP BY region, cdn, cdn_pop ORDER BY region, cdn, cdn_pop`))
}

// Core Web Vitals "good" thresholds: LCP 2.5 s, INP 200 ms, CLS 0.1.
const (
	lcpGood = `countIf(isNotNull(lcp_ms) AND assumeNotNull(lcp_ms) <= 2500) / countIf(isNotNull(lcp_ms))`
	inpGood = `countIf(isNotNull(inp_ms) AND assumeNotNull(inp_ms) <= 200) / countIf(isNotNull(inp_ms))`
	clsGood = `countIf(isNotNull(cls) AND assumeNotNull(cls) <= 0.1) / countIf(isNotNull(cls))`
	rumPV   = `$__timeFilter(ts) AND is_bot = 0 AND ` + siteFilter + ` AND ` + countryFilter
)

func vitalsBoard() *dashboard.DashboardBuilder {
	return board("meridian-vitals", "Meridian — RUM vitals", siteVar(), countryVar()).
		WithPanel(stat.NewPanelBuilder().Title("Core Web Vitals, p75").Datasource(ds()).GridPos(grid(0, 0, 24, 5)).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false).Fields("/.*/")).
			WithTarget(tableSQL(`SELECT round(quantile(0.75)(lcp_ms), 1) AS lcp_p75_ms,
  round(quantile(0.75)(inp_ms), 1) AS inp_p75_ms,
  round(quantile(0.75)(cls), 3) AS cls_p75,
  count() AS pageviews
FROM ` + rows("rum_pageviews") + `
WHERE ` + rumPV))).
		WithPanel(tbl("vitals by country: p75 and good share", grid(0, 5, 24, 10), `SELECT country,
  round(quantile(0.75)(lcp_ms), 1) AS lcp_p75_ms, round(`+lcpGood+`, 4) AS lcp_good,
  round(quantile(0.75)(inp_ms), 1) AS inp_p75_ms, round(`+inpGood+`, 4) AS inp_good,
  round(quantile(0.75)(cls), 3) AS cls_p75, round(`+clsGood+`, 4) AS cls_good,
  count() AS pageviews
FROM `+rows("rum_pageviews")+`
WHERE `+rumPV+`
GROUP BY country ORDER BY country`)).
		WithPanel(ts("LCP and INP p75", grid(0, 15, 24, 9), "ms", `SELECT `+bucket("ts")+` AS time,
  quantile(0.75)(lcp_ms) AS lcp_p75, quantile(0.75)(inp_ms) AS inp_p75
FROM `+rows("rum_pageviews")+`
WHERE `+rumPV+`
GROUP BY time ORDER BY time`))
}

func fleetBoard() *dashboard.DashboardBuilder {
	countries := filterVar("country", "SELECT DISTINCT country FROM agent_countries FINAL WHERE country != '' ORDER BY country")
	regions := filterVar("region", "SELECT DISTINCT region FROM agents FINAL ORDER BY region")
	return board("meridian-fleet", "Meridian — agent fleet", regions, countries).
		WithPanel(tbl("agents: last seen and spool", grid(0, 0, 24, 10), `SELECT agent, region, country, disabled,
  if(last_seen = toDateTime(0), NULL, last_seen) AS last_seen_at,
  if(last_seen = toDateTime(0), NULL, toUInt32(now()) - toUInt32(last_seen)) AS lag_s, agent_version, spool_results, spool_bytes, last_error
FROM (
  SELECT agent, region, disabled, country
  FROM (SELECT name AS agent, region, disabled FROM agents FINAL) AS a
  ANY LEFT JOIN (SELECT agent, country FROM agent_countries FINAL) AS c USING agent
) AS ac ANY LEFT JOIN (
  SELECT agent, max(ts) AS last_seen, argMax(version, ts) AS agent_version,
    argMax(spool_results, ts) AS spool_results, argMax(spool_bytes, ts) AS spool_bytes,
    argMax(last_error, ts) AS last_error
  FROM agent_heartbeats GROUP BY agent
) AS h USING agent
WHERE `+regionFilter+` AND `+countryFilter+`
ORDER BY agent`)).
		WithPanel(ts("spool depth by agent", grid(0, 10, 12, 9), "short", `SELECT `+bucket("ts")+` AS time, agent, max(spool_results) AS spool
FROM agent_heartbeats
WHERE $__timeFilter(ts) AND agent IN (SELECT name FROM agents FINAL WHERE `+regionFilter+`)
GROUP BY time, agent ORDER BY time, agent`)).
		WithPanel(tbl("coverage by country", grid(12, 10, 12, 9), `SELECT country, count() AS agents, countIf(seen) AS reporting
FROM (
  SELECT agent, country FROM agent_countries FINAL WHERE `+countryFilter+`
) AS c ANY LEFT JOIN (
  SELECT agent, 1 AS seen FROM agent_heartbeats WHERE $__timeFilter(ts) GROUP BY agent
) AS h USING agent
GROUP BY country ORDER BY country`))
}

func tlsBoard() *dashboard.DashboardBuilder {
	const where = `$__timeFilter(ts) AND cert_sha256 != '' AND ` + regionFilter
	return board("meridian-tls", "Meridian — TLS and certificates", regionVar()).
		WithPanel(tbl("certificates by region and target", grid(0, 0, 24, 10), `SELECT region, target,
  argMax(cert_issuer, ts) AS issuer, argMax(cert_subject, ts) AS subject,
  round(min(cert_days_left), 1) AS days_left, argMax(toString(tls_version), ts) AS tls_version,
  max(ts) AS last_checked
FROM `+rows("results")+`
WHERE `+where+`
GROUP BY region, target ORDER BY days_left, region, target`)).
		WithPanel(tbl("issuers", grid(0, 10, 12, 9), `SELECT cert_issuer AS issuer, uniqExact(target) AS targets,
  round(min(cert_days_left), 1) AS min_days_left
FROM `+rows("results")+`
WHERE `+where+`
GROUP BY issuer ORDER BY issuer`)).
		WithPanel(tbl("validity per trust store", grid(12, 10, 12, 9), `SELECT region, store, count() AS checks, countIf(valid = 0) AS invalid
FROM `+rows("results")+`
ARRAY JOIN trust_store AS store, trust_valid AS valid
WHERE `+where+`
GROUP BY region, store ORDER BY region, store`))
}

func steeringBoard() *dashboard.DashboardBuilder {
	pool := filterVar("pool", "SELECT DISTINCT pool FROM steering_history WHERE $__timeFilter(computed_at) ORDER BY pool")
	scope := filterVar("scope", "SELECT DISTINCT scope FROM steering_history WHERE $__timeFilter(computed_at) ORDER BY scope")
	const where = `$__timeFilter(computed_at) AND $__conditionalAll(pool IN (${pool:singlequote}), $pool) AND $__conditionalAll(scope IN (${scope:singlequote}), $scope)`
	return board("meridian-steering", "Meridian — steering weights", pool, scope).
		WithPanel(ts("published weight by member", grid(0, 0, 24, 10), "short", `SELECT `+bucket("computed_at")+` AS time, member, avg(weight) AS weight
FROM steering_history
WHERE `+where+`
GROUP BY time, member ORDER BY time, member`)).
		WithPanel(tbl("last decision", grid(0, 10, 24, 10), `SELECT pool, scope, member, weight, state, score_ms, samples, reason
FROM steering_history
WHERE `+where+` AND (pool, decision) IN (
  SELECT pool, max(decision) FROM steering_history WHERE `+where+` GROUP BY pool
)
ORDER BY pool, scope, member`))
}
