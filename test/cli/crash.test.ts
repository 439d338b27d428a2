// An error no command catches (a library callback that throws, a promise nobody awaits) still
// ends like every other failure: exit code 1, the password masked, JSON when JSON was asked for,
// and no stack trace. The crash is real: a module preloaded with --import throws while plan waits
// for a server that never answers.

import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const CLI = join(import.meta.dirname, "../../dist/cli.js");
const SECRET = "Sup3r-s3cret/pw";

let server: Server;
const sockets: Socket[] = [];
let file: string;

beforeAll(async () => {
  // Accepts connections (AMQP and HTTP) and never answers: plan is still waiting when the crash comes.
  server = createServer((s) => void sockets.push(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const dir = mkdtempSync(join(tmpdir(), "topo-crash-"));
  file = join(dir, "topology.yaml");
  const pw = encodeURIComponent(SECRET);
  writeFileSync(
    file,
    `version: 1\nclusters:\n  sync: { url: "amqp://svc:${pw}@127.0.0.1:${port}/s", management: "http://svc:${pw}@127.0.0.1:${port}" }\n  async: { url: "amqp://svc:${pw}@127.0.0.1:${port}/a", management: "http://svc:${pw}@127.0.0.1:${port}" }\nservices: [ mplogin ]\n`,
  );
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
});

/**
 * Runs the CLI with a module that crashes it soon after its first connection attempt: topo
 * connects only once the file is read, so the redactor knows the password by then (a crash on a
 * timer could come before, when no one can know that a bare string is a password).
 */
function run(crash: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const source = [
    `import net from "node:net";`,
    `const connect = net.Socket.prototype.connect;`,
    `let armed = false;`,
    `net.Socket.prototype.connect = function (...a) {`,
    `  if (!armed) { armed = true; setTimeout(() => { ${crash} }, 50); }`,
    `  return connect.apply(this, a);`,
    `};`,
  ].join("\n");
  const preload = `data:text/javascript,${encodeURIComponent(source)}`;
  return new Promise((resolve) =>
    execFile(process.execPath, ["--import", preload, CLI, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
}

// The message carries the password as a library would: in a URL, and alone.
const message = `socket closed: amqp://svc:${encodeURIComponent(SECRET)}@127.0.0.1:1/s (${SECRET})`;

describe("an error no command caught", () => {
  it("a throw in a callback: exit 1, the message masked, no stack trace", async () => {
    const r = await run(`throw new Error(${JSON.stringify(message)});`, ["plan", "-f", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Error: socket closed: amqp://svc:***@127.0.0.1:1/s (***)");
    expect(r.stderr).toContain("hint: this looks like a bug in topo");
    expect(r.stderr + r.stdout).not.toContain(SECRET);
    expect(r.stderr + r.stdout).not.toContain(encodeURIComponent(SECRET));
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("a rejected promise nobody awaits, with --json: the error as JSON on stdout", async () => {
    const r = await run(`Promise.reject(new Error(${JSON.stringify(message)}));`, ["plan", "-f", file, "--json"]);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.message).toBe("socket closed: amqp://svc:***@127.0.0.1:1/s (***)");
    expect(r.stderr + r.stdout).not.toContain(SECRET);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe("a signal during a command other than apply", () => {
  // plan --json waiting on a server that never answers, stopped by the pipeline: one answer, as
  // every failure has (it ended with exit 143 and nothing on stdout or stderr).
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`${signal}: exit 130, the error as JSON on stdout, and said on stderr`, async () => {
      const r = await run(`process.kill(process.pid, ${JSON.stringify(signal)});`, ["plan", "-f", file, "--json"]);
      expect(r.code).toBe(130);
      expect(JSON.parse(r.stdout)).toEqual({ error: { code: "interrupted", message: `${signal}: stopped before it finished; nothing was written` } });
      // After the file's own warning (a password written in it).
      expect(r.stderr).toMatch(new RegExp(`\n${signal}: stopped before it finished; nothing was written\n$`));
    });
  }
});

describe("a signal while a command works without a pause", () => {
  // validate, graph and route compute their answer in one go: Node hands a signal to its listener
  // only from the event loop, so a deploy step cancelled meanwhile printed its whole answer and
  // exited 0 (a validate of 100,000 services, SIGTERM 2 s in). Here the signal comes as the file
  // is read, the command's first step, and the work goes on after it.
  const preload = [
    `import fs from "node:fs";`,
    `import { syncBuiltinESMExports } from "node:module";`,
    `const read = fs.readFileSync;`,
    `let armed = false;`,
    `fs.readFileSync = function (file, ...rest) {`,
    `  const text = read.call(this, file, ...rest);`,
    `  if (!armed && String(file).endsWith("topology.yaml")) { armed = true; process.kill(process.pid, "SIGTERM"); const t = Date.now(); while (Date.now() - t < 100) {} }`,
    `  return text;`,
    `};`,
    `syncBuiltinESMExports();`,
  ].join("\n");
  for (const args of [["validate", "--json"], ["graph"], ["route", "mplogin.sync.x", "--json"], ["export", "definitions", "--cluster", "sync"]]) {
    it(`${args.join(" ")}: exit 130, no answer, not exit 0`, async () => {
      const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, ["--import", `data:text/javascript,${encodeURIComponent(preload)}`, CLI, ...args, "-f", file], (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
        ),
      );
      expect(r.code, r.stdout + r.stderr).toBe(130);
      expect(r.stderr).toMatch(/SIGTERM: stopped before it finished; nothing was written\n$/);
      if (args.includes("--json")) expect(JSON.parse(r.stdout)).toEqual({ error: { code: "interrupted", message: "SIGTERM: stopped before it finished; nothing was written" } });
      else expect(r.stdout).toBe("");
    });
  }
});

describe("a signal while the command line is still loading", () => {
  // A deploy job cancelled in the first few hundred milliseconds got exit 143 and an empty stdout:
  // no listener was there yet. The entry keeps the signal and the command line answers it once
  // loaded. Here its loading is held back 1.5 s (a loader hook), and the signal comes meanwhile.
  // The bundle's chunk of it is command-line-<hash>.js (scripts/bundle-cli.mjs).
  it("SIGTERM: exit 130 and the error as JSON, once the command line has loaded; nothing starts", async () => {
    const hooks = `export async function load(url, context, next) { if (/\\/command-line(-\\w+)?\\.js$/.test(url)) await new Promise((r) => setTimeout(r, 1500)); return next(url, context); }`;
    const source = [
      `import { register } from "node:module";`,
      `register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});`,
      `setTimeout(() => process.kill(process.pid, "SIGTERM"), 700);`,
    ].join("\n");
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, ["--import", `data:text/javascript,${encodeURIComponent(source)}`, CLI, "apply", "-f", file, "--json"], (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
      ),
    );
    expect(r.code, r.stderr).toBe(130);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: "interrupted", message: "SIGTERM: stopped before it finished; nothing was written" } });
    // No command began: nothing connected to the server (which never answers) or read the file.
    expect(r.stderr).toBe("SIGTERM: stopped before it finished; nothing was written\n");
  });
});

describe("a second signal during apply, before any write", () => {
  it("says nothing was changed, not that some changes may have been made", async () => {
    const r = await run(`process.kill(process.pid, "SIGTERM"); setTimeout(() => process.kill(process.pid, "SIGTERM"), 200);`, ["apply", "-f", file, "--json"]);
    expect(r.code).toBe(130);
    expect(JSON.parse(r.stdout).error).toEqual({ code: "interrupted", message: "SIGTERM again: stopped at once, before any write; nothing was changed." });
  });
});
