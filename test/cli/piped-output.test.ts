// Output read through a pipe (a CI job's log, `| tee`, `| less`) arrives whole. Node writes to a
// pipe asynchronously, and process.exit() dropped what was still queued: piped, a validate with
// a problem in each of 10,000 services lost up to two thirds of its problems, and --json printed
// half a document, under the exit code of a complete answer. The reader here starts late, as a
// busy log collector does, so that everything is still queued when the command is done.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Readable } from "node:stream";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain ESM module of the benchmark, without type declarations
import { serviceNames } from "../../bench/services.mjs";

const CLI = join(import.meta.dirname, "../../dist/cli.js");
const N = 3000;
let dir: string;
let file: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "topo-piped-"));
  file = join(dir, "topology.yaml");
  // One problem per service (durable: yes is text in YAML 1.2): far more than a pipe holds (64 KiB).
  const services = (serviceNames(N) as string[]).map((s) => `  - name: ${s}\n    async: { durable: yes }\n`);
  writeFileSync(file, `version: 1\nclusters:\n  sync: { url: "amqp://127.0.0.1:1/s" }\n  async: { url: "amqp://127.0.0.1:1/a" }\nservices:\n${services.join("")}`);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI with both outputs piped, and starts reading them only after `lateMs`. */
async function runReadLate(args: string[], lateMs: number, signalAtMs?: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pause();
  child.stderr.pause();
  const exited = new Promise<number | null>((resolve, reject) => child.on("error", reject).on("exit", (code) => resolve(code)));
  if (signalAtMs !== undefined) setTimeout(() => child.kill("SIGTERM"), signalAtMs);
  await new Promise((r) => setTimeout(r, lateMs));
  const read = (stream: Readable) =>
    new Promise<string>((resolve) => {
      let text = "";
      // Closed already: the command exited without waiting for its output to be read.
      if (stream.destroyed) return resolve(text);
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => (text += d)).on("close", () => resolve(text));
      stream.resume();
    });
  const [stdout, stderr, code] = await Promise.all([read(child.stdout), read(child.stderr), exited]);
  return { code, stdout, stderr };
}

describe("output through a pipe read late", () => {
  it("a failing validate prints every problem, and the count, before it exits 1", async () => {
    const r = await runReadLate(["validate", "-f", file], 2000);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines.filter((l) => / must be a boolean, not string "yes"/.test(l))).toHaveLength(N);
    expect(lines.at(-1)).toBe(`${N} problems found; nothing was sent to any broker.`);
  }, 60_000);

  it("--json prints a whole JSON document", async () => {
    const r = await runReadLate(["validate", "-f", file, "--json"], 2000);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { error: { problems: unknown[] } };
    expect(doc.error.problems).toHaveLength(N);
  }, 60_000);

  it("a SIGTERM while the whole answer waits for its reader does not cut it (half a JSON document)", async () => {
    // The answer is made within the first seconds; the signal comes while it waits to be read.
    const r = await runReadLate(["validate", "-f", file, "--json"], 4000, 3000);
    const doc = JSON.parse(r.stdout) as { error: { problems: unknown[] } };
    expect(doc.error.problems).toHaveLength(N);
    expect(r.code).toBe(1);
  }, 60_000);
});

describe("-o /dev/stdout with stdout appending to a file (>> ci.log)", () => {
  it("appends to the file through that descriptor, keeping what it held", async () => {
    const { closeSync, openSync, readFileSync } = await import("node:fs");
    const { execFileSync } = await import("node:child_process");
    const log = join(dir, "ci.log");
    writeFileSync(log, "earlier line\n");
    const example = join(import.meta.dirname, "../../topology.yaml");
    // The log opened for appending, as a shell's >> opens it: the file was renamed over, and lost what it held.
    const fd = openSync(log, "a");
    try {
      execFileSync(process.execPath, [CLI, "export", "definitions", "-f", example, "--cluster", "sync", "-o", "/dev/stdout"], { stdio: ["ignore", fd, "ignore"] });
    } finally {
      closeSync(fd);
    }
    const text = readFileSync(log, "utf8");
    expect(text.startsWith("earlier line\n{\n")).toBe(true);
    expect(JSON.parse(text.slice("earlier line\n".length)).vhosts).toEqual([{ name: "sync" }]);
  });
});
