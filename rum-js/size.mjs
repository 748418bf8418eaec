// Prints the minified and min+gzip (zlib level 9) size of dist/rum.v1.js and
// fails when min+gzip is over the budget.
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BUDGET = 3072; // bytes, min+gzip

export function size(file) {
  const b = fs.readFileSync(file);
  return { min: b.length, gzip: zlib.gzipSync(b, { level: 9 }).length };
}

export function report(file) {
  const s = size(file);
  console.log(`${path.basename(file)}: min ${s.min} B, min+gzip ${s.gzip} B (budget ${BUDGET} B)`);
  if (s.gzip > BUDGET) {
    console.error(`rum-js: ${path.basename(file)} is ${s.gzip - BUDGET} B over the ${BUDGET} B min+gzip budget; make src/ smaller`);
    return false;
  }
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  if (!report(path.join(here, 'dist/rum.v1.js'))) process.exit(1);
}
