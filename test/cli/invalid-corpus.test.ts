// The CLI on the invalid corpus (the pure half is test/unit/invalid-corpus.test.ts): every file
// makes validate and plan exit 1 with each problem as FILE:LINE:COL: message, no stack trace,
// and no connection opened (a TCP server stands where the files point, and counts).

import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countingPort, type CountingPort } from "../helpers/counting-port.js";

const ROOT = join(import.meta.dirname, "../..");
const CLI = join(ROOT, "dist/cli.js");
const DIR = join(ROOT, "test/fixtures/invalid");
const expected = JSON.parse(readFileSync(join(DIR, "expected.json"), "utf8")) as Record<string, string[]>;

let counting: CountingPort;
let port = 0;

beforeAll(async () => {
  counting = await countingPort();
  port = counting.port;
});
afterAll(() => counting.close());

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, TOPO_TEST_PORT: String(port) }, cwd: ROOT }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

function expectPreciseFailure(file: string, r: { code: number; stdout: string; stderr: string }, problems?: string[]): void {
  expect(r.code, `${file}: exit code`).toBe(1);
  expect(r.stdout).toBe("");
  const all = r.stderr.trimEnd().split("\n");
  const summary = all.pop();
  expect(summary).toMatch(/^\d+ problems? found; nothing was sent to any broker\.$/);
  // What validate would warn of once the file is valid is said with its problems, placed alike.
  const warnings = all.filter((l) => l.startsWith("warning: "));
  for (const w of warnings) expect(w.startsWith(`warning: ${file}:`) && /^:\d+:\d+: \S/.test(w.slice(`warning: ${file}`.length)), w).toBe(true);
  const lines = all.filter((l) => !l.startsWith("warning: "));
  expect(lines.length).toBeGreaterThan(0);
  for (const l of lines) expect(l.startsWith(`${file}:`) && /^:\d+:\d+: \S/.test(l.slice(file.length)), l).toBe(true);
  if (problems) expect(lines.map((l) => l.slice(file.length + 1))).toEqual(problems);
  expect(r.stderr).not.toMatch(/\n\s+at |node:internal|TypeError|RangeError/);
}

describe("the invalid corpus", () => {
  const files = readdirSync(DIR).filter((f) => f !== "expected.json").sort();

  it("has at least 30 files, each with its expected problems", () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
    expect(Object.keys(expected).sort()).toEqual(files);
  });

  it("validate and plan answer every file precisely and never connect", async () => {
    const jobs = files.flatMap((f) => ["validate", "plan"].map((cmd) => ({ f, cmd })));
    // Four at a time: each is a Node process of its own.
    for (let i = 0; i < jobs.length; i += 4) {
      await Promise.all(
        jobs.slice(i, i + 4).map(async ({ f, cmd }) => {
          const file = `test/fixtures/invalid/${f}`;
          expectPreciseFailure(file, await run([cmd, "-f", file]), expected[f]);
        }),
      );
    }
    expect(counting.connections()).toBe(0);
  }, 120_000);

  it("refuses a file over the size limit and absurd nesting, also made at run time", async () => {
    const dir = mkdtempSync(join(tmpdir(), "topo-invalid-"));
    const big = join(dir, "huge.yaml");
    const base = readFileSync(join(ROOT, "topology.yaml"), "utf8");
    writeFileSync(big, base + `# ${"x".repeat(17 * 1024 * 1024)}\n`);
    const r1 = await run(["validate", "-f", big]);
    expectPreciseFailure(big, r1);
    expect(r1.stderr).toMatch(/:1:1: file is \d+ bytes; topo reads at most 16777216/);

    const deep = join(dir, "deep.yaml");
    writeFileSync(deep, `version: 1\nservices: ${"[".repeat(10_000)}${"]".repeat(10_000)}\n`);
    const r2 = await run(["plan", "-f", deep]);
    expectPreciseFailure(deep, r2);
    expect(r2.stderr).toMatch(/nesting/);

    const missing = join(dir, "nope.yaml");
    const r3 = await run(["plan", "-f", missing]);
    expectPreciseFailure(missing, r3, ["1:1: no such file; pass the topology file with -f FILE"]);
    // Standard input, or a directory, is not taken for a file that does not exist or is odd.
    expectPreciseFailure("-", await run(["plan", "-f", "-"]), ['1:1: "-" is not standard input here; topo reads the topology from a file: write it to one and pass -f FILE']);
    expectPreciseFailure(dir, await run(["validate", "-f", dir]), ["1:1: a directory, not a file; pass the topology file with -f FILE"]);
    // Links in a loop, and an empty name (an unset variable): said as such, with what to do.
    const loop = join(dir, "loop1");
    symlinkSync(join(dir, "loop2"), loop);
    symlinkSync(loop, join(dir, "loop2"));
    expectPreciseFailure(loop, await run(["validate", "-f", loop]), ["1:1: its symbolic links lead round in a loop (ls -l shows where each points); pass the file itself with -f FILE"]);
    const empty = await run(["plan", "-f", ""]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toBe('Error: -f was given an empty file name (an unset variable in -f "$FILE"?); pass the topology file with -f FILE\n');
    expect(counting.connections()).toBe(0);
  }, 60_000);
});
