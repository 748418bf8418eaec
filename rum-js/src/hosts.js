// Resource Timing entries aggregated per host and mapped to CDN names.
import { r, median } from './util.js';

const MAX_HOSTS = 20;

// cdnFor maps a URL's host to a CDN name: a key of map matches the host
// (with port), the hostname, or, when it starts with ".", any hostname
// ending in it (".cloudfront.net").
export function cdnFor(u, map) {
  for (const p in map) if (p == u.host || p == u.hostname || (p[0] == '.' && u.hostname.endsWith(p))) return map[p];
}

// hosts aggregates resource entries per host, leaving out non-HTTP URLs and
// the names in skip (the CDN probes), and keeps the 20 busiest hosts.
// tao says whether Timing-Allow-Origin let the details of any entry through.
export function hosts(list, map, skip) {
  const by = {};
  for (const e of list) {
    let u;
    try {
      u = new URL(e.name);
    } catch (x) {
      continue;
    }
    if (!/^https?:$/.test(u.protocol) || skip.has(e.name)) continue;
    const h = by[u.host] || (by[u.host] = { host: u.host, cdn: cdnFor(u, map), count: 0, d: [], bytes: 0, tao: false });
    h.count++;
    h.d.push(e.duration);
    h.bytes += e.transferSize || 0;
    h.tao = h.tao || e.responseStart > 0 || e.transferSize > 0;
  }
  return Object.values(by)
    .sort((a, b) => b.count - a.count)
    .slice(0, MAX_HOSTS)
    .map((h) => ({ host: h.host, cdn: h.cdn, count: h.count, median_ms: r(median(h.d)), bytes: h.bytes, tao: h.tao }));
}
