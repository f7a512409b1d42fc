// Reads cases (JSON on stdin: [{layers, limits}]) and writes what the
// page's plan (web/layers.js) says of each: {error} or {shapes, stats}.
// Run by plan_test.go, which compares it with pkg/deep's Plan and Count.
// web/ has no package.json saying its .js files are modules: a copy named
// .mjs is imported.
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dir = mkdtempSync(path.join(os.tmpdir(), 'plan-mirror-'));
const copy = path.join(dir, 'layers.mjs');
copyFileSync(fileURLToPath(new URL('../../web/layers.js', import.meta.url)), copy);
let plan;
try {
  ({ plan } = await import(pathToFileURL(copy).href));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const cases = JSON.parse(readFileSync(0, 'utf8'));
const out = cases.map(({ layers, limits }) => {
  const r = plan(layers ?? [], limits);
  if (r.error) return { error: r.error.message, index: r.error.index, before: r.shapes?.length };
  return {
    shapes: r.shapes.map((s) => [s.c, s.h, s.w]),
    params: String(r.stats.params), macs: String(r.stats.macs), activations: String(r.stats.activations),
  };
});
process.stdout.write(JSON.stringify(out));
