import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hosts, cdnFor } from '../src/hosts.js';

const map = { '.cloudfront.net': 'cloudfront', 'img.example': 'cf', '127.0.0.1:9001': 'local1' };

test('cdnFor: exact host, hostname, suffix', () => {
  assert.equal(cdnFor(new URL('https://d111.cloudfront.net/x'), map), 'cloudfront');
  assert.equal(cdnFor(new URL('https://cloudfront.net/x'), map), undefined, 'suffix needs a label before it');
  assert.equal(cdnFor(new URL('https://img.example:8443/x'), map), 'cf');
  assert.equal(cdnFor(new URL('http://127.0.0.1:9001/a'), map), 'local1');
  assert.equal(cdnFor(new URL('http://127.0.0.1:9002/a'), map), undefined);
  assert.equal(cdnFor(new URL('https://other.example/'), {}), undefined);
});

const e = (name, duration, transferSize = 0, responseStart = 0) => ({ name, duration, transferSize, responseStart });

test('hosts: count, median, bytes, tao, cdn; busiest first', () => {
  const list = [
    e('https://img.example/a.png', 10, 1000, 5),
    e('https://img.example/b.png', 30, 2000, 5),
    e('https://img.example/c.png', 20, 0, 5), // from cache
    e('https://third.example/t.js', 50), // no Timing-Allow-Origin
    e('https://third.example/u.js', 70),
    e('https://d1.cloudfront.net/x.css', 5, 0, 3),
    e('https://probe.example/p.gif?_mrd=abc', 99, 10, 1),
    e('data:image/png;base64,xx', 1),
    e('not a url', 1),
  ];
  const got = JSON.parse(JSON.stringify(hosts(list, map, new Set(['https://probe.example/p.gif?_mrd=abc']))));
  assert.deepEqual(got, [
    { host: 'img.example', cdn: 'cf', count: 3, median_ms: 20, bytes: 3000, tao: true },
    { host: 'third.example', count: 2, median_ms: 60, bytes: 0, tao: false },
    { host: 'd1.cloudfront.net', cdn: 'cloudfront', count: 1, median_ms: 5, bytes: 0, tao: true },
  ]);
});

test('hosts: ports are part of the host; at most 20 hosts', () => {
  const list = [];
  for (let i = 0; i < 30; i++) for (let j = 0; j <= i; j++) list.push(e(`http://127.0.0.1:${9000 + i}/r${j}`, 1));
  const got = hosts(list, map, new Set());
  assert.equal(got.length, 20);
  assert.equal(got[0].host, '127.0.0.1:9029');
  assert.equal(got[0].count, 30);
  assert.equal(hosts([], map, new Set()).length, 0);
});
