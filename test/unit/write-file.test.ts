// Files topo writes: whole or not at all, and a refusal that says which part of the path is wrong.

import { execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeWhole } from "../../src/files/write-file.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), "topo-write-"));
  dirs.push(d);
  return d;
};
const why = (f: () => void): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("nothing was refused");
};

describe("writeWhole", () => {
  it("writes the file whole and leaves no temporary file beside it", () => {
    const d = temp();
    writeWhole(join(d, "out.json"), "{}\n");
    expect(readFileSync(join(d, "out.json"), "utf8")).toBe("{}\n");
    expect(readdirSync(d)).toEqual(["out.json"]);
  });

  it("keeps the mode of the file it replaces, and gives a new file the mode asked for", () => {
    const d = temp();
    const mode = (f: string) => statSync(join(d, f)).mode & 0o777;
    // A saved plan holds a password fingerprint: its owner made it 0600, and plan -o again kept 0644.
    writeFileSync(join(d, "plan.json"), "old\n");
    chmodSync(join(d, "plan.json"), 0o600);
    writeWhole(join(d, "plan.json"), "new\n", false, 0o644);
    expect(mode("plan.json")).toBe(0o600);
    chmodSync(join(d, "plan.json"), 0o640);
    writeWhole(join(d, "plan.json"), "newer\n");
    expect(mode("plan.json")).toBe(0o640);
    writeWhole(join(d, "new.json"), "x\n", false, 0o600);
    expect(mode("new.json")).toBe(0o600);
  });

  it("names the directory that is missing", () => {
    const d = temp();
    expect(why(() => writeWhole(join(d, "no/such/x.json"), "x"))).toBe(`cannot write ${join(d, "no/such/x.json")}: no such directory ${join(d, "no/such")}`);
  });

  it("offers stdout only to a command that prints when -o is left out (plan -o's saved plan is written by -o alone)", () => {
    const d = temp();
    const hints = (toStdout?: boolean) => {
      try {
        writeWhole(join(d, "no/x.json"), "x", toStdout);
      } catch (e) {
        return (e as { hints: string[] }).hints;
      }
      throw new Error("nothing was refused");
    };
    expect(hints()).toEqual(["pass -o a path in a directory you can write to, or leave -o out to print to stdout"]);
    expect(hints(false)).toEqual(["pass -o a path in a directory you can write to"]);
  });

  it("a directory that exists but takes no new file is not called missing", () => {
    // /proc exists, and no file can be created in it.
    expect(existsSync("/proc")).toBe(true);
    const msg = why(() => writeWhole("/proc/version", "x"));
    expect(msg).toMatch(/^cannot write \/proc\/version: /);
    expect(msg).not.toMatch(/no such directory/);
    expect(msg).toContain("/proc");
  });

  it("says when the target is a directory, and leaves it as it was", () => {
    const d = temp();
    mkdirSync(join(d, "sub"));
    expect(why(() => writeWhole(join(d, "sub"), "x"))).toBe(`cannot write ${join(d, "sub")}: it is a directory`);
    expect(readdirSync(d)).toEqual(["sub"]);
  });
});

describe("writeWhole onto what is not a plain file", () => {
  it("writes through a pipe (-o /dev/stdout into a pipe), leaving it a pipe, not a file renamed over it", async () => {
    const d = temp();
    const fifo = join(d, "pipe");
    execFileSync("mkfifo", [fifo]);
    // A reader in another process: a write to a pipe waits for one.
    const reader = spawn("cat", [fifo]);
    let read = "";
    reader.stdout.on("data", (b: Buffer) => (read += b.toString()));
    const ended = new Promise<void>((r) => reader.on("exit", () => r()));
    try {
      writeWhole(fifo, "module text\n");
      await ended;
    } finally {
      reader.kill();
    }
    expect(read).toBe("module text\n");
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readdirSync(d)).toEqual(["pipe"]);
  });

  it("never writes through a link planted where its temporary file goes: the name cannot be foreseen, and one that exists is not followed", () => {
    const d = temp();
    writeFileSync(join(d, "victim.txt"), "ORIGINAL\n");
    chmodSync(join(d, "victim.txt"), 0o644);
    // Links at the names a process-id temporary file took, for this process and those around it.
    for (let pid = process.pid - 3; pid <= process.pid + 3; pid++) symlinkSync(join(d, "victim.txt"), join(d, `plan.json.${pid}.tmp`));
    writeWhole(join(d, "plan.json"), "{\"secret\": 1}\n", false, 0o600);
    expect(readFileSync(join(d, "victim.txt"), "utf8")).toBe("ORIGINAL\n");
    expect(lstatSync(join(d, "plan.json")).isSymbolicLink()).toBe(false);
    expect(statSync(join(d, "plan.json")).mode & 0o777).toBe(0o600);
    expect(readdirSync(d).filter((f) => f.endsWith(".tmp") && !/\.\d+\.tmp$/.test(f))).toEqual([]);
  });

  it("replaces the file a symbolic link names, and keeps the link", () => {
    const d = temp();
    mkdirSync(join(d, "shared"));
    writeFileSync(join(d, "shared", "plan.json"), "old\n");
    symlinkSync(join(d, "shared", "plan.json"), join(d, "plan.json"));
    writeWhole(join(d, "plan.json"), "new\n");
    expect(lstatSync(join(d, "plan.json")).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(d, "shared", "plan.json"), "utf8")).toBe("new\n");
    expect(readdirSync(join(d, "shared"))).toEqual(["plan.json"]);
  });
});
