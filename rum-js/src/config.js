// Reading the site's configuration from the script tag and deciding whether
// this page view is measured at all. Pure: the caller passes attribute getters.

const MAX_CDNS = 8;

// obj parses a JSON object of string values; anything else is an empty object.
function obj(s) {
  const o = {};
  try {
    const v = JSON.parse(s);
    if (v && typeof v == 'object' && !Array.isArray(v))
      for (const k in v) if (typeof v[k] == 'string') o[k] = v[k];
  } catch (e) {}
  return o;
}

// parseConfig reads the data- attributes of the script tag through get(name)
// (name without "data-"), with src the script's own URL. It returns
// undefined when the tag has no site key or no usable src.
export function parseConfig(get, src) {
  const site = get('site');
  let url, sample = parseFloat(get('sample'));
  if (!site) return;
  try {
    url = new URL('/v1/beacon', src).href;
  } catch (e) {
    return;
  }
  if (!(sample >= 0)) sample = 1; // missing or not a number: measure every page view
  if (sample > 1) sample = 1;
  const hosts = obj(get('hosts')), cdns = [], c = obj(get('cdns'));
  for (const name in c) {
    try {
      const u = new URL(c[name]);
      if (/^https?:$/.test(u.protocol) && cdns.length < MAX_CDNS) {
        cdns.push([name, u.href]);
        if (!hosts[u.host]) hosts[u.host] = name;
      }
    } catch (e) {}
  }
  return { site, sample, url, cdns, hosts, gpc: get('gpc') == '1', query: get('query') == '1' };
}

// sampled decides once per page view; rnd is Math.random().
export const sampled = (rate, rnd) => rnd < rate;

// pageUrl drops credentials and the fragment, and the query unless keepQuery.
export function pageUrl(href, keepQuery) {
  const u = new URL(href);
  u.hash = u.username = u.password = '';
  if (!keepQuery) u.search = '';
  return u.href.slice(0, 1024);
}

// refHost is the referrer's host (with port when not the default), if any.
export function refHost(ref) {
  try {
    return new URL(ref).host || undefined;
  } catch (e) {}
}

// uuid is a random (v4) UUID from c (window.crypto); randomUUID is only there
// in secure contexts, hence the getRandomValues fallback.
export function uuid(c) {
  if (c.randomUUID) return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  let h = '';
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  for (let i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1) + (i % 2 && i > 2 && i < 10 ? '-' : '');
  return h;
}
