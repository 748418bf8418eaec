// Rebuilds into a temp dir and fails if the committed dist/rum.v1.js differs
// from a fresh build, or if it is over the size budget. `make test` runs this.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from './build.mjs';
import { report } from './size.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rum-js-'));
let ok = true;
try {
  const fresh = fs.readFileSync(await build(tmp));
  const committed = path.join(here, 'dist/rum.v1.js');
  if (!fs.existsSync(committed) || !fresh.equals(fs.readFileSync(committed))) {
    console.error('rum-js: dist/rum.v1.js differs from a fresh build of src/; run `npm run build` in rum-js and commit dist/rum.v1.js');
    ok = false;
  } else console.log('dist/rum.v1.js matches a fresh build');
  ok = report(committed) && ok;
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
if (!ok) process.exit(1);
