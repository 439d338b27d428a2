// The command line as a bundle: tsc's dist/cli.js and the modules it imports, put together by
// esbuild into dist/cli.js and a few chunks in dist/cli-chunks/ (one per command that cli.js and
// command-line.ts import lazily, so `topo --help` still loads little). Loading ~110 modules one
// by one cost every command about 20 to 40 ms (a no-change plan of 1,000 services 0.43 s against
// 0.39 s, `--help` 0.12 against 0.10 s; bench/notes.md). The dependencies are not bundled: they
// load from node_modules as before (amqplib's lib/ files by path, the YAML library on first use).
// The library (dist/index.js) stays tsc's modules.
//
// Run by `npm run build`, after tsc, which writes the dist/cli.js this reads.

import { build } from "esbuild";
import { chmodSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(ROOT, "dist");
const ENTRY = join(DIST, "cli.js");
const BANNER = "// topo's command line, bundled by scripts/bundle-cli.mjs from tsc's output in dist/.";

if (readFileSync(ENTRY, "utf8").includes(BANNER)) {
  console.error(`${ENTRY} is already the bundle: run npm run build, whose tsc writes the entry this bundles`);
  process.exit(1);
}
rmSync(join(DIST, "cli-chunks"), { recursive: true, force: true });
await build({
  entryPoints: [ENTRY],
  outdir: DIST,
  entryNames: "[name]",
  chunkNames: "cli-chunks/[name]-[hash]",
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  banner: { js: BANNER },
  logLevel: "warning",
});
chmodSync(ENTRY, 0o755);
