// The CLI on fuzzed files (test/helpers/fuzz.ts): it exits 0 or 1 with a message, never a stack
// trace. Spawns dist/cli.js, so it lives with the other CLI tests, not with the pure unit tests.

import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cases, SEED } from "../helpers/fuzz.js";

const ROOT = join(import.meta.dirname, "../..");

describe(`fuzz the CLI (seed ${SEED}; replay with TOPO_FUZZ_SEED=${SEED})`, () => {
  it("the CLI exits 0 or 1 with a message, never a stack trace", async () => {
    const dir = mkdtempSync(join(tmpdir(), "topo-fuzz-"));
    const sample = cases().filter((_, i) => i % 20 === 0);
    for (const [i, text] of sample.entries()) {
      const file = join(dir, `case-${i}.yaml`);
      writeFileSync(file, text);
      const r = await new Promise<{ code: number; out: string }>((resolve) =>
        execFile(process.execPath, [join(ROOT, "dist/cli.js"), "validate", "-f", file], (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, out: stdout + stderr }),
        ),
      );
      expect([0, 1], `seed ${SEED} case ${i}:\n${text}\n${r.out}`).toContain(r.code);
      expect(r.out.trim().length).toBeGreaterThan(0);
      expect(r.out).not.toMatch(/\n\s+at |node:internal/);
    }
  }, 60_000);
});
