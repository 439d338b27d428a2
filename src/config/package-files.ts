// The files of topo's package that are not modules (package.json, the schema and its validator),
// found from the package's root, not from the place of the module that asks: the command line
// runs as a bundle (scripts/bundle-cli.mjs puts its modules in other folders than dist/'s), and the
// library from dist/'s modules, and both must find the same files.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let packageRequire: NodeJS.Require | undefined;

/** The nearest folder above this module that holds a package.json: topo's own (dist/ has none). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}: topo's package is incomplete; install it again`);
    dir = up;
  }
  return dir;
}

/** Load a file of the package by its path from the package's root ("schemas/topology.schema.json"). */
export function packageFile<T>(path: string): T {
  packageRequire ??= createRequire(join(packageRoot(), "package.json"));
  return packageRequire(`./${path}`) as T;
}
