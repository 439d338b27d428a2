// Bad input gets a precise answer: every file of the invalid corpus is refused by the loader with
// exactly the problems test/fixtures/invalid/expected.json lists, each placed as LINE:COL. Pure:
// the same files through the CLI (exit codes, no connection opened) are test/cli/invalid-corpus.test.ts.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";

const ROOT = join(import.meta.dirname, "../..");
const DIR = join(ROOT, "test/fixtures/invalid");
const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as Record<string, string[]>;
const files = readdirSync(DIR).filter((f) => f !== "expected.json").sort();

describe("the invalid corpus, loaded", () => {
  it("has at least 30 files, each with its expected problems", () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
    expect(Object.keys(expected).sort()).toEqual(files);
  });

  it.each(files)("%s is refused with exactly its problems", (f) => {
    let problems: string[] | undefined;
    try {
      loadConfig(join(DIR, f), { ...process.env, TOPO_TEST_PORT: "1" });
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems = e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
    }
    expect(problems, `${f} loaded without a problem`).toBeDefined();
    expect(problems).toEqual(expected[f]);
  });
});
