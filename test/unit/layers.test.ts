// Dependencies point one way (STYLE.md rule 12): a small core that imports nothing of topo's but
// itself; config, plan, import and export build on it; broker and file IO at the edge; commands
// are glue; the CLI on top. This test reads every import of src/ and fails on an import that
// points up a layer, across two groups of one layer, or round in a cycle.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = resolve(import.meta.dirname, "../../src");

/** Group → layer. A file may import its own group and any group of a lower layer. */
const LAYERS: Record<string, number> = { core: 0, config: 1, plan: 2, import: 3, export: 3, broker: 4, files: 4, commands: 5, api: 6, cli: 7 };

function groupOf(file: string): string {
  if (["model.ts", "errors.ts", "redact.ts"].includes(file) || file.startsWith("core/")) return "core";
  if (file === "index.ts") return "api";
  if (["cli.ts", "command-line.ts", "early-signals.ts", "output.ts", "heap.ts", "tiering.ts", "process-setup.ts"].includes(file)) return "cli";
  const dir = file.split("/")[0] as string;
  if (!(dir in LAYERS)) throw new Error(`src/${file} is in no layer: add its folder to LAYERS in test/unit/layers.test.ts`);
  return dir;
}

function sources(dir = SRC): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith(".ts") ? [relative(SRC, p)] : [];
  });
}

/** Every relative import of a file, static (`from "..."`, `import "..."`) and dynamic (`import("...")`). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(SRC, file), "utf8");
  const out = new Set<string>();
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm)) {
    out.add(relative(SRC, resolve(dirname(join(SRC, file)), m[1] as string)).replace(/\.js$/, ".ts"));
  }
  return [...out];
}

describe("layers", () => {
  const files = sources();
  const graph = new Map(files.map((f) => [f, importsOf(f)]));

  it("finds the sources and their imports", () => {
    expect(files.length).toBeGreaterThan(30);
    expect(graph.get("command-line.ts")?.length).toBeGreaterThan(3);
  });

  it("imports point down a layer, or stay in their group", () => {
    const wrong: string[] = [];
    for (const [file, deps] of graph) {
      const from = groupOf(file);
      for (const dep of deps) {
        const to = groupOf(dep);
        if (to === from) continue;
        if ((LAYERS[to] as number) >= (LAYERS[from] as number)) wrong.push(`${file} (${from}) imports ${dep} (${to})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("no import cycle", () => {
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const walk = (f: string, path: string[]) => {
      if (state.get(f) === "done") return;
      if (state.get(f) === "open") {
        cycles.push([...path.slice(path.indexOf(f)), f].join(" -> "));
        return;
      }
      state.set(f, "open");
      for (const d of graph.get(f) ?? []) walk(d, [...path, f]);
      state.set(f, "done");
    };
    for (const f of files) walk(f, []);
    expect(cycles).toEqual([]);
  });
});
