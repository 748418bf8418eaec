import { test } from 'node:test';
import assert from 'node:assert/strict';
import { navTiming, probeTiming, serverTiming, phases } from '../src/timing.js';
import { median, some, span } from '../src/util.js';

const nav = {
  entryType: 'navigation',
  type: 'navigate',
  startTime: 0,
  redirectStart: 0,
  redirectEnd: 0,
  fetchStart: 2.5,
  domainLookupStart: 3,
  domainLookupEnd: 13.04,
  connectStart: 13.04,
  secureConnectionStart: 25.1,
  connectEnd: 50.16,
  requestStart: 50.2,
  responseStart: 120.26,
  responseEnd: 130,
  domInteractive: 300.55,
  domComplete: 500,
  loadEventEnd: 0,
  nextHopProtocol: 'h2',
  transferSize: 12345,
  deliveryType: '',
};

test('navTiming: phases, milestones, absent ones omitted', () => {
  const got = JSON.parse(JSON.stringify(navTiming(nav)));
  assert.deepEqual(got, {
    type: 'navigate',
    dns_ms: 10,
    connect_ms: 12.1,
    tls_ms: 25.1,
    ttfb_ms: 70.1,
    response_ms: 9.7,
    dom_interactive_ms: 300.6,
    dom_complete_ms: 500,
    protocol: 'h2',
    transfer_bytes: 12345,
    delivery_type: '',
  });
});

test('navTiming: redirect, plain http, load', () => {
  const got = navTiming({ ...nav, redirectStart: 1, redirectEnd: 2.04, secureConnectionStart: 0, loadEventEnd: 700, nextHopProtocol: '' });
  assert.equal(got.redirect_ms, 1);
  assert.equal(got.connect_ms, 37.1);
  assert.equal(got.tls_ms, undefined);
  assert.equal(got.load_ms, 700);
  assert.equal(got.protocol, undefined);
});

test('phases: a reused connection is 0, not absent', () => {
  const e = { domainLookupStart: 5, domainLookupEnd: 5, connectStart: 5, connectEnd: 5, secureConnectionStart: 5, requestStart: 6, responseStart: 20 };
  assert.deepEqual(phases(e), { dns_ms: 0, connect_ms: 0, tls_ms: 0, ttfb_ms: 14 });
});

test('probeTiming: without Timing-Allow-Origin only the duration is known', () => {
  const noTAO = { name: 'x', startTime: 1000, duration: 85.06, domainLookupStart: 0, domainLookupEnd: 0, connectStart: 0, connectEnd: 0, secureConnectionStart: 0, requestStart: 0, responseStart: 0, transferSize: 0 };
  assert.deepEqual(JSON.parse(JSON.stringify(probeTiming(noTAO))), { duration_ms: 85.1 });
  const tao = { ...noTAO, domainLookupStart: 1001, domainLookupEnd: 1011, connectStart: 1011, secureConnectionStart: 1021, connectEnd: 1041, requestStart: 1041, responseStart: 1071, transferSize: 300 };
  assert.deepEqual(probeTiming(tao), { dns_ms: 10, connect_ms: 10, tls_ms: 20, ttfb_ms: 30, duration_ms: 85.1, bytes: 300 });
});

test('serverTiming', () => {
  assert.equal(serverTiming(undefined), undefined);
  assert.equal(serverTiming([]), undefined);
  const got = JSON.parse(JSON.stringify(serverTiming([
    { name: 'cdn-cache', duration: 0, description: 'HIT' },
    { name: 'origin', duration: 12.345, description: '' },
  ])));
  assert.deepEqual(got, [{ name: 'cdn-cache', desc: 'HIT' }, { name: 'origin', dur: 12.3 }]);
  assert.equal(serverTiming(Array.from({ length: 30 }, (_, i) => ({ name: 'm' + i, duration: 1, description: '' }))).length, 10);
});

test('util', () => {
  assert.equal(median([3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(span(0, 10), undefined);
  assert.equal(span(10, 5), undefined);
  assert.equal(span(10, 10.04), 0);
  assert.equal(some({ a: undefined }), undefined);
  assert.deepEqual(some({ a: undefined, b: 0 }), { a: undefined, b: 0 });
});
