// Builds src/main.js into dist/rum.v1.js (or OUTDIR/rum.v1.js with --out OUTDIR).
// The output is deterministic: same sources and esbuild version, same bytes.
import * as esbuild from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));

export async function build(outdir = path.join(here, 'dist')) {
  const outfile = path.join(outdir, 'rum.v1.js');
  await esbuild.build({
    entryPoints: [path.join(here, 'src/main.js')],
    outfile,
    bundle: true,
    minify: true,
    format: 'iife',
    target: 'es2019',
    platform: 'browser',
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'warning',
  });
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  console.log(await build(i > 0 ? path.resolve(process.argv[i + 1]) : undefined));
}
