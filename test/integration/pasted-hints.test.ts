// The commands topo prints in its hints are pasted into shells as printed: they must name the
// file and the clusters the user ran, and a file's name must reach the shell as one word that is
// no option. A hint that dropped -f and --cluster applied topology.yaml to every cluster,
// destructively; one with a file named "p;touch X.json" ran touch.

import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { runCli, testVhosts, writeTopology } from "../helpers/broker.js";

const { fresh } = testVhosts();

/** Runs `command` in bash from `dir`, as a user who pastes it does. */
function pasted(command: string, dir: string): void {
  try {
    execFileSync("bash", ["-c", command], { cwd: dir, stdio: "ignore", timeout: 60_000 });
  } catch {
    // Whether it worked is read from the broker and the files, not its exit code.
  }
}

describe("commands in hints, as they are pasted", () => {
  it("a refused apply's hint names the file and the clusters it was run with, and the pasted command applies those", async () => {
    const t = fresh([{ name: "mplogin", sync: false }, { name: "mpold", sync: false }]);
    expect((await runCli(["apply", "-f", t.file, "--cluster", "async"])).code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "topo-hint-"));
    const file = join(dir, "my topology.yaml");
    writeFileSync(file, readFileSync(writeTopology({ sync: t.sync, async: t.async, services: [{ name: "mplogin", sync: false }] }), "utf8"));
    const r = await runCli(["apply", "-f", file, "--cluster", "async"]);
    expect(r.code).toBe(1);
    const hint = /run (topo apply .*--allow-destructive)/.exec(r.stderr)?.[1];
    expect(hint).toBe(`topo apply -f '${file}' --cluster async --allow-destructive`);
    const json = JSON.parse((await runCli(["apply", "-f", file, "--cluster", "async", "--json"])).stdout);
    expect(json.error.hints.join("\n")).toContain(`topo apply -f '${file}' --cluster async --allow-destructive`);
    // Pasted (topo as the node script it is), it applies that file to that cluster.
    pasted(`${hint!.replace(/^topo /, `node ${JSON.stringify(join(process.cwd(), "dist/cli.js"))} `)}`, dir);
    const plan = await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"]);
    expect(plan.code, plan.stdout).toBe(0);
  });

  it("a saved plan's file name is printed as one shell word, and a topology file whose name holds a line break is refused before any broker is read", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    const dir = mkdtempSync(join(tmpdir(), "topo-hint-"));
    const out = "p;touch PWNED.json";
    const r = await runCli(["plan", "-f", t.file, "--cluster", "async", "-o", join(dir, out)]);
    expect(r.code, r.stderr).toBe(0);
    const command = /apply exactly this plan with (topo apply .*)$/m.exec(r.stderr)?.[1];
    expect(command).toBe(`topo apply '${join(dir, out)}'`);
    pasted(command!.replace(/^topo apply /, "ls "), dir);
    expect(existsSync(join(dir, "PWNED.json"))).toBe(false);

    const odd = join(dir, "x\ny.yaml");
    copyFileSync(t.file, odd);
    const refused = await runCli(["plan", "-f", odd, "-o", join(dir, "plan.json")]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`cannot save a plan of "${dir}/x\\ny.yaml": its name holds a control character (a line break, a tab), which a saved plan does not carry; nothing was read or written`);
    expect(existsSync(join(dir, "plan.json"))).toBe(false);
  });
});
