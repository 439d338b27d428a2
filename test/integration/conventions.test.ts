// Small promises of the command line, each run as a user would: a reader that stops early, a
// repeated --cluster, and counts said in words that agree with the number.

import { execFile } from "node:child_process";
import { describe, expect, it } from "vitest";
import { CLI, runCli, testVhosts } from "../helpers/broker.js";

const { fresh } = testVhosts();

/** `topo ARGS | head -1` through a real shell pipe: the exit status of topo, and what it said on stderr. */
function piped(args: string[]): Promise<{ status: number; stderr: string; first: string }> {
  const cmd = `'${process.execPath}' '${CLI}' ${args.map((a) => `'${a}'`).join(" ")} 2>"$ERR" | head -1; echo "status=\${PIPESTATUS[0]}"; cat "$ERR" >&2`;
  return new Promise((resolve) => {
    execFile("bash", ["-c", cmd], { env: { ...process.env, ERR: `/tmp/topo-pipe-${process.pid}-${Math.random().toString(36).slice(2)}` }, maxBuffer: 64 * 1024 * 1024 }, (_err, stdout, stderr) => {
      const lines = stdout.trimEnd().split("\n");
      const status = Number(/status=(\d+)/.exec(lines.at(-1) ?? "")?.[1] ?? -1);
      resolve({ status, stderr, first: lines[0] ?? "" });
    });
  });
}

describe("the command line", () => {
  it("ends quietly when its reader stops early (| head), for every command that prints a lot", async () => {
    // Enough services that the output outgrows the pipe's buffer before head closes it.
    const { file } = fresh(Array.from({ length: 3000 }, (_, i) => `mpsvc${String.fromCharCode(97 + (i % 26), 97 + (Math.floor(i / 26) % 26), 97 + Math.floor(i / 676))}`));
    for (const args of [["export", "celery", "-f", file, "--cluster", "sync"], ["graph", "-f", file], ["export", "definitions", "-f", file, "--cluster", "async"]]) {
      const r = await piped(args);
      expect(r.first.length, args.join(" ")).toBeGreaterThan(0);
      expect(r.stderr, args.join(" ")).not.toMatch(/EPIPE|Error|\n\s+at /);
      expect(r.status, args.join(" ")).toBe(0);
    }
  }, 120_000);

  it("a reader that stops early neither stops apply half-way nor changes an exit code", async () => {
    // Plan's output outgrows the pipe's buffer, so topo writes to a pipe head has closed.
    const { file } = fresh(Array.from({ length: 1000 }, (_, i) => `mpsvc${String.fromCharCode(97 + (i % 26), 97 + (Math.floor(i / 26) % 26), 97 + Math.floor(i / 676))}`));
    const planned = await piped(["plan", "-f", file, "--detailed-exitcode"]);
    expect(planned.first).toMatch(/^cluster sync: /);
    expect(planned.stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
    // 2: there are changes. Not 0, which a drift check would take for "no changes".
    expect(planned.status).toBe(2);
    const applied = await piped(["apply", "-f", file]);
    expect(applied.stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
    expect(applied.stderr).toMatch(/cluster async: 3001 changes applied/);
    expect(applied.status).toBe(0);
    expect((await runCli(["plan", "-f", file, "--detailed-exitcode"])).code).toBe(0);
  }, 120_000);

  it("plans every cluster named by a repeated --cluster, and refuses one it does not know", async () => {
    const { file } = fresh(["mplogin"]);
    const both = await runCli(["plan", "-f", file, "--cluster", "sync", "--cluster", "async"]);
    expect(both.code).toBe(0);
    expect(both.stdout).toMatch(/^cluster sync: /m);
    expect(both.stdout).toMatch(/^cluster async: /m);
    const one = await runCli(["plan", "-f", file, "--cluster", "async"]);
    expect(one.stdout).not.toMatch(/^cluster sync: /m);
    const bad = await runCli(["plan", "-f", file, "--cluster", "async", "--cluster", "nope"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no cluster named "nope"/);
  });

  it("says 1 queue and 1 change, not 1 queues and 1 changes", async () => {
    const { file } = fresh([{ name: "mplogin", sync: false }]);
    const v = await runCli(["validate", "-f", file]);
    expect(v.stdout).toMatch(/is valid: 1 service on sync \(0 queues\), async \(1 queue\)\./);
    const a = await runCli(["apply", "-f", file, "--cluster", "async"]);
    expect(a.code).toBe(0);
    expect(a.stderr + a.stdout).not.toMatch(/\b1 (queues|changes|services)\b/);
  });
});
