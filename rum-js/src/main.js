// Meridian RUM beacon: measures one page view and sends one beacon when the
// page is hidden or left. Loaded as
//   <script async src="https://COLLECTOR/rum.v1.js" data-site="KEY"></script>
// See ../BEACON.md for the configuration attributes and the beacon body.
import { parseConfig, sampled, pageUrl, refHost, uuid } from './config.js';
import { clsAdd, inpAdd, inpValue } from './vitals.js';
import { navTiming, probeTiming, serverTiming } from './timing.js';
import { hosts } from './hosts.js';
import { r, some } from './util.js';

const w = window, d = w.document, n = w.navigator, P = w.performance, PO = w.PerformanceObserver;
const tag = d.currentScript || d.querySelector('script[data-site]');
const cfg = tag && parseConfig((k) => tag.getAttribute('data-' + k), tag.src);

// Not sampled, or the visitor asked not to be tracked: do nothing at all.
if (cfg && PO && sampled(cfg.sample, Math.random()) && !(cfg.gpc && n.globalPrivacyControl)) start(cfg);

function start(cfg) {
  const pv = uuid(w.crypto), nav = P.getEntriesByType('navigation')[0] || {};
  const act = nav.activationStart || 0, since = (t) => r(Math.max(t - act, 0));
  const vit = {}, cls = { v: 0 }, inp = {}, res = [], skip = new Set(), probes = [], obs = [];
  const types = PO.supportedEntryTypes || [];
  let hidden = d.visibilityState == 'hidden' ? 0 : 1 / 0, last = -1e9, sent;

  const ob = (type, f, o) => {
    if (types.includes(type)) {
      const po = new PO((l) => l.getEntries().forEach(f));
      po.observe({ type, buffered: true, ...o });
      obs.push([po, f]);
      return 1;
    }
  };
  ob('paint', (e) => {
    if (e.name == 'first-contentful-paint' && e.startTime < hidden) vit.fcp_ms = since(e.startTime);
  });
  ob('largest-contentful-paint', (e) => {
    if (e.startTime < hidden) vit.lcp_ms = since(e.startTime);
  });
  const clsOn = ob('layout-shift', (e) => clsAdd(cls, e));
  ob('event', (e) => inpAdd(inp, e), { durationThreshold: 40 });
  ob('first-input', (e) => inpAdd(inp, e));
  ob('resource', (e) => res.length < 2000 && res.push(e));

  const send = () => {
    if (sent) return;
    sent = 1;
    obs.forEach(([po, f]) => po.takeRecords().forEach(f));
    const c = n.connection, h = hosts(res, cfg.hosts, skip);
    vit.inp_ms = inpValue(inp, P.interactionCount);
    vit.cls = clsOn ? Math.round(cls.v * 1e4) / 1e4 : undefined;
    vit.ttfb_ms = nav.responseStart > 0 ? since(nav.responseStart) : undefined;
    const body = JSON.stringify({
      v: 1,
      site: cfg.site,
      pv,
      url: pageUrl(location.href, cfg.query),
      ref_host: refHost(d.referrer),
      sample: cfg.sample,
      webdriver: !!n.webdriver,
      nav: nav.entryType ? some(navTiming(nav)) : undefined,
      vitals: some(vit),
      conn: c ? some({ effective_type: c.effectiveType, rtt_ms: c.rtt }) : undefined,
      server_timing: serverTiming(nav.serverTiming),
      hosts: h.length ? h : undefined,
      cdn_probes: probes.length ? probes : undefined,
    });
    try {
      if (n.sendBeacon(cfg.url, new Blob([body], { type: 'text/plain' }))) return;
    } catch (e) {}
    fetch(cfg.url, {
      method: 'POST',
      body,
      keepalive: true,
      mode: 'no-cors',
      credentials: 'omit',
      headers: { 'Content-Type': 'text/plain' },
    }).catch(() => {});
  };
  const on = (t, f, o) => addEventListener(t, f, { capture: true, ...o });
  on('visibilitychange', (e) => {
    if (d.visibilityState == 'hidden') {
      hidden = Math.min(hidden, e.timeStamp);
      send();
    }
  });
  on('pagehide', send);

  if (!cfg.cdns.length) return;
  // Active CDN probes: only after load, when idle, and not within ~1 s of
  // the visitor's last pointer or key event.
  ['pointerdown', 'keydown', 'scroll'].forEach((t) => on(t, () => (last = P.now()), { passive: true }));
  const sleep = (ms) => new Promise((f) => setTimeout(f, ms));
  const idle = (f) => (w.requestIdleCallback ? requestIdleCallback(f, { timeout: 5e3 }) : setTimeout(f, 1e3));
  const calm = () =>
    new Promise((f) => {
      const go = () => idle(() => (P.now() - last < 1e3 ? setTimeout(go, 1e3) : f()));
      go();
    });
  const run = async () => {
    for (const [cdn, url] of cfg.cdns) {
      const p = { cdn, url };
      for (const k of ['cold', 'warm']) {
        await calm();
        if (sent) return;
        const u = k == 'cold' ? url + (url.includes('?') ? '&' : '?') + '_mrd=' + Math.random().toString(36).slice(2) : url;
        let e, i = 0;
        skip.add(u);
        // CORS mode, body read to the end: Chromium records the Resource
        // Timing entry of an opaque (no-cors) fetch only when it is
        // garbage-collected. The probe object needs Access-Control-Allow-Origin.
        try {
          const f = await fetch(u, { credentials: 'omit', signal: AbortSignal.timeout && AbortSignal.timeout(1e4) });
          await f.arrayBuffer();
          if (!f.ok) p[k] = { error: true, status: f.status };
        } catch (x) {
          p[k] = { error: true };
        }
        while (!p[k] && !(e = res.filter((x) => x.name == u).pop()) && i++ < 30) await sleep(100);
        if (e) p[k] = probeTiming(e);
        // A probe is reported as soon as its cold fetch is in, so a page
        // left before the warm one still tells something.
        if (k == 'cold' && p[k]) probes.push(p);
        if (!p[k] || p[k].error) break;
      }
    }
  };
  const go = () => setTimeout(() => idle(run));
  d.readyState == 'complete' ? go() : on('load', go);
}
