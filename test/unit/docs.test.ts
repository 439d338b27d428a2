// The docs are checked against the code: every key of the schema is described in the file reference,
// the graph of the example file is the one topo graph draws, the set-up commands stay in the README,
// every error code is explained, the example files validate, and every relative link resolves.

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig, parseConfig } from "../../src/config/load.js";
import { renderGraph } from "../../src/plan/graph.js";

const ROOT = join(import.meta.dirname, "../..");
const read = (file: string) => readFileSync(join(ROOT, file), "utf8");

/** The hand-written docs: README, CONTRIBUTING and docs/. (BENCHMARKS.md is written by bench/run.mjs.) */
const DOCS = ["README.md", "CONTRIBUTING.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)].filter((f) => existsSync(join(ROOT, f)));

/** Where each checked thing is documented. */
const FILE_REFERENCE = "docs/file-format.md";
const GRAPH_SECTION = "docs/commands.md";

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

/** The markdown outside fenced code blocks, where headings and links are. */
function prose(md: string): string {
  return md.replace(/^```[\s\S]*?^```/gm, "");
}

/** GitHub's anchors for a file's headings (lowercase, punctuation dropped, spaces to dashes; repeats get -1, -2). */
function anchorsOf(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose(md).matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const base = (m[1] as string).toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n ? `${base}-${n}` : base);
  }
  return out;
}

describe("docs", () => {
  const schema = JSON.parse(read("schemas/topology.schema.json"));

  it(`describes every key of the schema (in ${FILE_REFERENCE})`, () => {
    const reference = read(FILE_REFERENCE);
    const keys = [...keysOf(schema)];
    expect(keys.length).toBeGreaterThan(30);
    const missing = keys.filter((k) => !new RegExp("`[^`]*(?<![\\w$-])" + k.replace(/[$.]/g, "\\$&") + "(?![\\w-])[^`]*`").test(reference));
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

  it(`shows the graph of the example file exactly as topo graph draws it (in ${GRAPH_SECTION})`, () => {
    const { desired } = loadConfig(join(ROOT, "topology.yaml"), {});
    expect(read(GRAPH_SECTION)).toContain("```mermaid\n" + renderGraph(desired, "mermaid") + "```");
  });

  it("keeps the README's set-up commands", () => {
    const readme = read("README.md");
    expect(readme).toContain("npm install && npx topo apply");
    expect(readme).toContain("npm test");
  });

  it("shows only topology files that validate", () => {
    const files = DOCS.flatMap((f) => [...read(f).matchAll(/^```yaml\n([\s\S]*?)^```/gm)].map((m) => ({ f, text: m[1] as string })));
    const whole = files.filter(({ text }) => /^version: 1$/m.test(text));
    expect(whole.length).toBeGreaterThanOrEqual(2);
    for (const { f, text } of whole) expect(() => parseConfig(text, f, { RABBITMQ_PASSWORD: "secret" }), `a topology file in ${f}`).not.toThrow();
  });

  it("links only to files and headings that exist", () => {
    expect(DOCS).toContain("README.md");
    const broken: string[] = [];
    for (const file of DOCS) {
      for (const m of prose(read(file)).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] as string;
        if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto:
        const [path, anchor] = target.split("#") as [string, string | undefined];
        const abs = path ? resolve(ROOT, dirname(file), path) : join(ROOT, file);
        if (!existsSync(abs)) broken.push(`${file}: ${target} (no ${relative(ROOT, abs)})`);
        else if (anchor !== undefined && !anchorsOf(readFileSync(abs, "utf8")).has(anchor)) broken.push(`${file}: ${target} (no such heading in ${relative(ROOT, abs)})`);
      }
    }
    expect(broken).toEqual([]);
  });
});

describe("error codes", () => {
  it("are listed, each with its meaning, in docs/errors.md", async () => {
    const { ERROR_CODES } = await import("../../src/errors.js");
    const doc = read("docs/errors.md");
    for (const [code, meaning] of Object.entries(ERROR_CODES)) expect(doc).toContain(`| \`${code}\` | ${meaning} |`);
  });
});
