import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clsAdd, inpAdd, inpValue } from '../src/vitals.js';

const cls = (entries) => {
  const st = { v: 0 };
  for (const [startTime, value, hadRecentInput] of entries) clsAdd(st, { startTime, value, hadRecentInput });
  return Math.round(st.v * 1e4) / 1e4;
};

test('CLS: shifts less than 1 s apart form one window', () => {
  assert.equal(cls([[100, 0.1], [900, 0.1], [1800, 0.1]]), 0.3);
});

test('CLS: a gap of 1 s or more starts a new window; the largest window wins', () => {
  assert.equal(cls([[100, 0.1], [1100, 0.05], [3000, 0.2], [3500, 0.01]]), 0.21);
});

test('CLS: a window lasts at most 5 s', () => {
  // 0, 900, ..., 4500 in one window (6 x 0.1), 5400 starts the next.
  const e = [];
  for (let t = 0; t <= 6300; t += 900) e.push([t + 1, 0.1]);
  assert.equal(cls(e), 0.6);
});

test('CLS: shifts after input are ignored, nothing is 0', () => {
  assert.equal(cls([[100, 0.5, true], [200, 0.01]]), 0.01);
  assert.equal(cls([]), 0);
});

test('INP: longest duration per interaction, entries without interactionId ignored', () => {
  const st = {};
  inpAdd(st, { interactionId: 7, duration: 48 });
  inpAdd(st, { interactionId: 7, duration: 120 });
  inpAdd(st, { interactionId: 14, duration: 64 });
  inpAdd(st, { interactionId: 0, duration: 500 });
  inpAdd(st, { duration: 600 });
  assert.deepEqual(st, { 7: 120, 14: 64 });
  assert.equal(inpValue(st, 2), 120);
  assert.equal(inpValue({}, 0), undefined);
});

test('INP: p98 skips one worst interaction per 50', () => {
  const st = {};
  for (let i = 1; i <= 60; i++) inpAdd(st, { interactionId: i * 7, duration: i * 10 });
  assert.equal(inpValue(st, 60), 590); // 60 interactions: skip the worst one
  assert.equal(inpValue(st, 49), 600);
  assert.equal(inpValue(st, 120), 580);
  assert.equal(inpValue(st, 100000), 10, 'never past the shortest recorded');
});

test('INP: without interactionCount the count is estimated from ids (step 7)', () => {
  const st = {};
  // Only two interactions crossed the 40 ms threshold, but ids say 101 happened.
  inpAdd(st, { interactionId: 1000, duration: 300 });
  inpAdd(st, { interactionId: 1700, duration: 200 });
  assert.equal(inpValue(st), 200);
  assert.equal(inpValue({ 5: 80 }), 80);
});
