// The command line as a bundle: tsc's dist/cli.js and the modules it imports, put together by
// esbuild into dist/cli.js and chunks in dist/cli-chunks/ (one for each command that cli.js and
// command-line.ts import lazily, and one for each part two of them share, so `topo --help` still
// loads little). Loading ~110 modules one by one cost every command 20 to 35 ms (a no-change
// plan of 1,000 services 0.425 s against 0.40 s, `validate` 0.19 against 0.17 s; bench/notes.md).
// The dependencies are not bundled: they load from node_modules as before (amqplib's lib/ files
// by path, the YAML library on first use), one copy each. The library (dist/index.js) stays
// tsc's modules.
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
