// The README is the file reference: every key of the schema must be described there.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { renderGraph } from "../../src/plan/graph.js";

const ROOT = join(import.meta.dirname, "../..");

function keysOf(node: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(node)) for (const n of node) keysOf(n, out);
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "properties" && v && typeof v === "object") for (const name of Object.keys(v)) out.add(name);
      keysOf(v, out);
    }
  }
  return out;
}

describe("docs", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const schema = JSON.parse(readFileSync(join(ROOT, "schemas/topology.schema.json"), "utf8"));

  it("describes every key of the schema", () => {
    const keys = [...keysOf(schema)];
    expect(keys.length).toBeGreaterThan(30);
    const missing = keys.filter((k) => !new RegExp("`[^`]*(?<![\\w$-])" + k.replace(/[$.]/g, "\\$&") + "(?![\\w-])[^`]*`").test(readme));
    expect(missing).toEqual([]);
  });

  it("gives every schema property a description", () => {
    const undocumented: string[] = [];
    const walk = (node: any, path: string) => {
      if (!node || typeof node !== "object") return;
      for (const [name, sub] of Object.entries<any>(node.properties ?? {})) {
        if (!sub.description && !sub.$ref) undocumented.push(`${path}.${name}`);
        walk(sub, `${path}.${name}`);
      }
      for (const [name, sub] of Object.entries<any>(node.definitions ?? {})) walk(sub, `#${name}`);
    };
    walk(schema, "");
    expect(undocumented).toEqual([]);
  });

  it("shows the graph of the example file exactly as topo graph draws it", () => {
    const { desired } = loadConfig(join(ROOT, "topology.yaml"), {});
    expect(readme).toContain("```mermaid\n" + renderGraph(desired, "mermaid") + "```");
  });

  it("keeps the README's set-up commands", () => {
    expect(readme).toContain("npm install && npx topo apply");
    expect(readme).toContain("npm test");
  });
});

describe("error codes", () => {
  it("are listed, each with its meaning, in docs/errors.md", async () => {
    const { ERROR_CODES } = await import("../../src/errors.js");
    const doc = readFileSync(join(ROOT, "docs/errors.md"), "utf8");
    for (const [code, meaning] of Object.entries(ERROR_CODES)) expect(doc).toContain(`| \`${code}\` | ${meaning} |`);
  });
});
