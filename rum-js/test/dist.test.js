// Runs the built dist/rum.v1.js in a fake browser (node:vm) to check the glue
// that the pure tests cannot: configuration from the tag, sampling, GPC, one
// beacon per page view, the transport and the CDN probes. Run `npm run build`
// first; `npm run check` makes sure dist matches src.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import vm from 'node:vm';
import { webcrypto } from 'node:crypto';

const code = fs.readFileSync(new URL('../dist/rum.v1.js', import.meta.url), 'utf8');

const navEntry = {
  entryType: 'navigation', name: 'https://shop.example/p?q=1', type: 'navigate', startTime: 0, activationStart: 0,
  redirectStart: 0, redirectEnd: 0, domainLookupStart: 1, domainLookupEnd: 11, connectStart: 11,
  secureConnectionStart: 21, connectEnd: 41, requestStart: 41, responseStart: 91, responseEnd: 101,
  domInteractive: 200, domComplete: 400, loadEventEnd: 410, nextHopProtocol: 'h2', transferSize: 5000,
  deliveryType: '', serverTiming: [{ name: 'cdn-cache', duration: 0, description: 'HIT' }],
};

function browser(attrs, { random = 0.5, gpc = false, beaconOK = true, entries = {} } = {}) {
  const listeners = {}, beacons = [], fetches = [], observers = [];
  let clock = 1000;
  const buffered = {
    paint: [{ name: 'first-contentful-paint', startTime: 150 }],
    'largest-contentful-paint': [{ startTime: 300 }],
    'layout-shift': [{ startTime: 500, value: 0.05 }, { startTime: 800, value: 0.02 }],
    event: [{ interactionId: 7, duration: 64 }],
    'first-input': [],
    resource: [
      { name: 'https://collector.example/rum.v1.js', duration: 20, transferSize: 3000, responseStart: 10 },
      { name: 'https://img.cdn1.example/a.jpg', duration: 40, transferSize: 9000, responseStart: 30 },
      { name: 'https://img.cdn1.example/b.jpg', duration: 60, transferSize: 1000, responseStart: 30 },
    ],
    ...entries,
  };
  const tag = { src: 'https://collector.example/rum.v1.js', getAttribute: (k) => attrs[k.slice(5)] ?? null };
  class PerformanceObserver {
    static supportedEntryTypes = Object.keys(buffered);
    constructor(cb) { this.cb = cb; this.pending = []; observers.push(this); }
    observe(o) { this.type = o.type; this.opts = o; if (o.buffered) this.pending.push(...buffered[o.type]); }
    takeRecords() { const p = this.pending; this.pending = []; return p; }
    deliver(list) { this.cb({ getEntries: () => list }); }
  }
  const win = {
    document: { currentScript: tag, visibilityState: 'visible', readyState: 'complete', referrer: 'https://www.search.example/?q=x' },
    navigator: {
      webdriver: false, globalPrivacyControl: gpc, connection: { effectiveType: '4g', rtt: 50 },
      sendBeacon: (url, blob) => { beacons.push({ url, blob }); return beaconOK; },
    },
    performance: { getEntriesByType: (t) => (t == 'navigation' ? [navEntry] : []), now: () => clock },
    PerformanceObserver,
    location: { href: 'https://shop.example/p?q=1#top' },
    crypto: webcrypto,
    Blob, URL, Set, Promise, AbortSignal,
    addEventListener: (t, f, o) => (listeners[t] ||= []).push({ f, o }),
    // A virtual clock: timers run at once but move time on.
    setTimeout: (f, ms = 0) => { clock += ms; setImmediate(f); },
    requestIdleCallback: (f) => setImmediate(f),
    fetch: async (url, opts) => {
      fetches.push({ url, opts, at: clock });
      if (opts.method == 'POST') return {};
      const e = { name: url, startTime: clock, duration: 30, domainLookupStart: clock, domainLookupEnd: clock + 5,
        connectStart: clock + 5, secureConnectionStart: clock + 10, connectEnd: clock + 20, requestStart: clock + 20,
        responseStart: clock + 28, transferSize: 400 };
      setImmediate(() => observers.filter((o) => o.type == 'resource').forEach((o) => o.deliver([e])));
      return { ok: !url.includes('404'), status: url.includes('404') ? 404 : 200, arrayBuffer: async () => new ArrayBuffer(4) };
    },
  };
  win.window = win;
  const ctx = vm.createContext(win);
  vm.runInContext(`Math.random = () => ${random}`, ctx);
  vm.runInContext(code, ctx);
  const fire = (t, e = {}) => (listeners[t] || []).forEach((l) => l.f({ type: t, timeStamp: clock, ...e }));
  const hide = () => { win.document.visibilityState = 'hidden'; fire('visibilitychange'); };
  const body = async (i = 0) => JSON.parse(await beacons[i].blob.text());
  return { win, listeners, beacons, fetches, observers, fire, hide, body, tick: () => new Promise(setImmediate) };
}

test('one beacon on hide, none on the pagehide after it', async () => {
  const b = browser({ site: 'KEY', sample: '0.6' });
  b.hide();
  b.fire('pagehide');
  assert.equal(b.beacons.length, 1);
  assert.equal(b.beacons[0].url, 'https://collector.example/v1/beacon');
  assert.equal(b.beacons[0].blob.type, 'text/plain');
  const got = await b.body();
  assert.match(got.pv, /^[0-9a-f-]{36}$/);
  delete got.pv;
  assert.deepEqual(got, {
    v: 1, site: 'KEY', url: 'https://shop.example/p', ref_host: 'www.search.example', sample: 0.6, webdriver: false,
    nav: { type: 'navigate', dns_ms: 10, connect_ms: 10, tls_ms: 20, ttfb_ms: 50, response_ms: 10, dom_interactive_ms: 200,
      dom_complete_ms: 400, load_ms: 410, protocol: 'h2', transfer_bytes: 5000, delivery_type: '' },
    vitals: { fcp_ms: 150, lcp_ms: 300, inp_ms: 64, cls: 0.07, ttfb_ms: 91 },
    conn: { effective_type: '4g', rtt_ms: 50 },
    server_timing: [{ name: 'cdn-cache', desc: 'HIT' }],
    hosts: [
      { host: 'img.cdn1.example', count: 2, median_ms: 50, bytes: 10000, tao: true },
      { host: 'collector.example', count: 1, median_ms: 20, bytes: 3000, tao: true },
    ],
  });
  assert.ok(!b.fetches.length, 'no probes without data-cdns');
  const ev = b.observers.find((o) => o.type == 'event');
  assert.equal(ev.opts.durationThreshold, 40);
  assert.ok(b.observers.every((o) => o.opts.buffered));
});

test('pagehide alone sends too', async () => {
  const b = browser({ site: 'KEY' });
  b.fire('pagehide');
  assert.equal(b.beacons.length, 1);
  assert.equal((await b.body()).sample, 1);
});

test('not sampled: nothing at all', () => {
  for (const [sample, random] of [['0', 0], ['0.1', 0.1]]) {
    const b = browser({ site: 'KEY', sample }, { random });
    assert.deepEqual(b.listeners, {});
    assert.equal(b.observers.length, 0);
  }
});

test('no site key: nothing at all', () => {
  const b = browser({});
  assert.deepEqual(b.listeners, {});
});

test('Global Privacy Control is honoured only when the site asks', () => {
  assert.deepEqual(browser({ site: 'K', gpc: '1' }, { gpc: true }).listeners, {});
  const b = browser({ site: 'K' }, { gpc: true });
  b.hide();
  assert.equal(b.beacons.length, 1);
});

test('sendBeacon refused: fetch keepalive with text/plain', async () => {
  const b = browser({ site: 'K' }, { beaconOK: false });
  b.hide();
  assert.equal(b.fetches.length, 1);
  const { url, opts } = b.fetches[0];
  assert.equal(url, 'https://collector.example/v1/beacon');
  assert.equal(opts.method, 'POST');
  assert.equal(opts.keepalive, true);
  assert.equal(opts.credentials, 'omit');
  assert.equal(opts.headers['Content-Type'], 'text/plain');
  assert.equal(JSON.parse(opts.body).site, 'K');
});

test('CDN probes: cold then warm, after input has been quiet for 1 s', async () => {
  const b = browser({ site: 'K', cdns: '{"cf":"https://p.cf.example/probe.gif","fy":"https://p.fy.example/x.gif?v=2"}' });
  b.fire('pointerdown');
  const t0 = b.win.performance.now();
  for (let i = 0; i < 100 && b.fetches.length < 4; i++) await b.tick();
  assert.equal(b.fetches.length, 4);
  assert.ok(b.fetches[0].at - t0 >= 1000, 'postponed after a pointer event');
  assert.match(b.fetches[0].url, /^https:\/\/p\.cf\.example\/probe\.gif\?_mrd=[0-9a-z]+$/);
  assert.equal(b.fetches[1].url, 'https://p.cf.example/probe.gif');
  assert.match(b.fetches[2].url, /^https:\/\/p\.fy\.example\/x\.gif\?v=2&_mrd=/);
  assert.equal(b.fetches[0].opts.mode, undefined, 'CORS mode, so that the entry is recorded once the body is read');
  assert.equal(b.fetches[0].opts.credentials, 'omit');
  for (let i = 0; i < 20; i++) await b.tick();
  b.hide();
  const got = await b.body();
  const t = { dns_ms: 5, connect_ms: 5, tls_ms: 10, ttfb_ms: 8, duration_ms: 30, bytes: 400 };
  assert.deepEqual(got.cdn_probes, [
    { cdn: 'cf', url: 'https://p.cf.example/probe.gif', cold: t, warm: t },
    { cdn: 'fy', url: 'https://p.fy.example/x.gif?v=2', cold: t, warm: t },
  ]);
  assert.deepEqual(got.hosts.map((h) => h.host), ['img.cdn1.example', 'collector.example'], 'probes are not counted per host');
});

test('CDN probe that fails is reported as an error', async () => {
  const b = browser({ site: 'K', cdns: '{"cf":"https://p.cf.example/probe.gif"}' });
  b.win.fetch = async () => { throw new TypeError('Failed to fetch'); };
  for (let i = 0; i < 20; i++) await b.tick();
  b.hide();
  assert.deepEqual((await b.body()).cdn_probes, [{ cdn: 'cf', url: 'https://p.cf.example/probe.gif', cold: { error: true } }]);
});

test('CDN probe answering an HTTP error is reported with its status', async () => {
  const b = browser({ site: 'K', cdns: '{"cf":"https://p.cf.example/404.gif"}' });
  for (let i = 0; i < 20; i++) await b.tick();
  b.hide();
  assert.deepEqual((await b.body()).cdn_probes, [{ cdn: 'cf', url: 'https://p.cf.example/404.gif', cold: { error: true, status: 404 } }]);
});
