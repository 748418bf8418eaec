import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig, sampled, pageUrl, refHost, uuid } from '../src/config.js';
import { webcrypto } from 'node:crypto';

const attrs = (a) => (k) => (k in a ? a[k] : null);
const SRC = 'https://collector.example:8443/rum.v1.js';

test('parseConfig reads the tag', () => {
  const c = parseConfig(
    attrs({
      site: 'KEY',
      sample: '0.25',
      cdns: '{"cf":"https://cdn1.example/probe.gif","fastly":"https://cdn2.example/p.gif?x=1"}',
      hosts: '{".cloudfront.net":"cloudfront","img.example":"cf"}',
      gpc: '1',
    }),
    SRC,
  );
  assert.deepEqual(c, {
    site: 'KEY',
    sample: 0.25,
    url: 'https://collector.example:8443/v1/beacon',
    cdns: [
      ['cf', 'https://cdn1.example/probe.gif'],
      ['fastly', 'https://cdn2.example/p.gif?x=1'],
    ],
    hosts: { '.cloudfront.net': 'cloudfront', 'img.example': 'cf', 'cdn1.example': 'cf', 'cdn2.example': 'fastly' },
    gpc: true,
    query: false,
  });
});

test('parseConfig defaults and bad values', () => {
  const c = parseConfig(attrs({ site: 'K', cdns: '[1,2]', hosts: '{bad json', query: '1' }), SRC);
  assert.equal(c.sample, 1);
  assert.deepEqual(c.cdns, []);
  assert.deepEqual(c.hosts, {});
  assert.equal(c.gpc, false);
  assert.equal(c.query, true);
  assert.equal(parseConfig(attrs({ sample: '1' }), SRC), undefined, 'no site key');
  assert.equal(parseConfig(attrs({ site: 'K' }), ''), undefined, 'no src');
});

test('parseConfig sample rate', () => {
  for (const [in_, want] of [
    ['0', 0],
    ['0.1', 0.1],
    ['1', 1],
    ['7', 1],
    ['-1', 1],
    ['abc', 1],
    [null, 1],
  ])
    assert.equal(parseConfig(attrs({ site: 'K', sample: in_ }), SRC).sample, want, `sample ${in_}`);
});

test('parseConfig keeps http(s) probe URLs only, at most 8, non-string values dropped', () => {
  const cdns = { a: 'javascript:alert(1)', b: 'not a url', c: 42, d: 'http://d.example/p' };
  for (let i = 0; i < 10; i++) cdns['n' + i] = `https://n${i}.example/p`;
  const c = parseConfig(attrs({ site: 'K', cdns: JSON.stringify(cdns) }), SRC);
  assert.equal(c.cdns.length, 8);
  assert.deepEqual(c.cdns[0], ['d', 'http://d.example/p']);
});

test('parseConfig does not let a probe host override a configured mapping', () => {
  const c = parseConfig(attrs({ site: 'K', cdns: '{"cf":"https://x.example/p"}', hosts: '{"x.example":"other"}' }), SRC);
  assert.equal(c.hosts['x.example'], 'other');
});

test('sampled', () => {
  assert.equal(sampled(0, 0), false);
  assert.equal(sampled(1, 0.9999999), true);
  assert.equal(sampled(0.5, 0.49), true);
  assert.equal(sampled(0.5, 0.5), false);
});

test('pageUrl strips query, fragment and credentials', () => {
  assert.equal(pageUrl('https://u:p@x.example/a/b?q=1#frag'), 'https://x.example/a/b');
  assert.equal(pageUrl('https://x.example/a?q=1#f', true), 'https://x.example/a?q=1');
  assert.equal(pageUrl('http://x.example:8080'), 'http://x.example:8080/');
  assert.equal(pageUrl('https://x.example/' + 'a'.repeat(2000)).length, 1024);
});

test('refHost', () => {
  assert.equal(refHost('https://www.google.com/search?q=x'), 'www.google.com');
  assert.equal(refHost('http://127.0.0.1:9000/'), '127.0.0.1:9000');
  assert.equal(refHost(''), undefined);
});

test('uuid uses randomUUID, else a v4 from getRandomValues', () => {
  assert.equal(uuid({ randomUUID: () => 'r' }), 'r');
  const re = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const c = { getRandomValues: (b) => webcrypto.getRandomValues(b) };
  const seen = new Set();
  for (let i = 0; i < 50; i++) {
    const u = uuid(c);
    assert.match(u, re);
    seen.add(u);
  }
  assert.equal(seen.size, 50);
  assert.equal(uuid({ getRandomValues: (b) => b.fill(255) }), 'ffffffff-ffff-4fff-bfff-ffffffffffff');
});
