// Random mutations of the example file: topo never crashes. Each mutation either loads or is
// refused with problems that all have a place and a message; the CLI exits 0 or 1 and says why.
// A failure prints the seed; TOPO_FUZZ_SEED=<seed> replays it.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";

const ROOT = join(import.meta.dirname, "../..");
const EXAMPLE = readFileSync(join(ROOT, "topology.yaml"), "utf8");
const SEED = Number(process.env.TOPO_FUZZ_SEED ?? Date.now() % 1_000_000);
const ROUNDS = Number(process.env.TOPO_FUZZ_ROUNDS ?? 400);

/** mulberry32: a small, well-known seeded PRNG, so a failing case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TOKENS = [":", "-", "[", "]", "{", "}", "&a", "*a", "!!binary", "!!str", "${", "${X}", "\t", "  ", "#", "'", '"', "|", ">", "?", ",", "\u00e9", "\ud83d\ude00", "\u0000", "null", "~", "1e999", "-1", "true", "0x1F", "mp_x", "MPX", "amqp://", "%2F"];
const SCALARS = ["", "0", "-1", "3.5", "true", "null", "[]", "{}", "mp", "x".repeat(300), "amqp://u:p@h/v", "${TOPO_FUZZ_UNSET}", "quorum", "stream"];

function mutate(text: string, rnd: () => number): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  let lines = text.split("\n");
  const n = 1 + Math.floor(rnd() * 4);
  for (let i = 0; i < n; i++) {
    const at = Math.floor(rnd() * lines.length);
    const line = lines[at] ?? "";
    switch (Math.floor(rnd() * 9)) {
      case 0:
        lines.splice(at, 1);
        break;
      case 1:
        lines.splice(at, 0, line);
        break;
      case 2: {
        const other = Math.floor(rnd() * lines.length);
        [lines[at], lines[other]] = [lines[other] ?? "", line];
        break;
      }
      case 3: {
        const c = Math.floor(rnd() * (line.length + 1));
        lines[at] = line.slice(0, c) + String.fromCharCode(32 + Math.floor(rnd() * 95)) + line.slice(c + 1);
        break;
      }
      case 4: {
        const c = Math.floor(rnd() * (line.length + 1));
        lines[at] = line.slice(0, c) + pick(TOKENS) + line.slice(c);
        break;
      }
      case 5:
        lines[at] = rnd() < 0.5 ? ` ${line}` : line.replace(/^ /, "");
        break;
      case 6:
        lines[at] = line.replace(/:\s*(\S.*)$/, () => `: ${pick(SCALARS)}`);
        break;
      case 7:
        lines = lines.slice(0, at);
        break;
      default:
        lines[at] = line.replace(/[a-z]+/, (w) => w.toUpperCase());
    }
  }
  return lines.join("\n");
}

function cases(): string[] {
  const rnd = prng(SEED);
  return Array.from({ length: ROUNDS }, () => mutate(EXAMPLE, rnd));
}

describe(`fuzz (seed ${SEED}; replay with TOPO_FUZZ_SEED=${SEED})`, () => {
  it("the loader returns or refuses with placed problems, never crashes", () => {
    let refused = 0;
    for (const [i, text] of cases().entries()) {
      try {
        parseConfig(text, "fuzz.yaml", { RABBITMQ_PASSWORD: "pw" });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw new Error(`round ${i} (seed ${SEED}) crashed: ${(e as Error).stack}\n--- input ---\n${text}`);
        refused++;
        expect(e.problems.length, `round ${i}`).toBeGreaterThan(0);
        for (const p of e.problems) {
          expect(p.line, `round ${i}: ${p.message}`).toBeGreaterThanOrEqual(1);
          expect(p.col, `round ${i}: ${p.message}`).toBeGreaterThanOrEqual(1);
          expect(p.message.trim().length, `round ${i}`).toBeGreaterThan(0);
        }
      }
    }
    // The mutations must actually break files, or this test proves nothing.
    expect(refused).toBeGreaterThan(ROUNDS / 4);
  });

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
