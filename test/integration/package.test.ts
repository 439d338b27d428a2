// The published package: what `npm pack` makes installs with a plain `npm install` and runs.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { deleteVhost, ROOT, uniqueName, writeTopology } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe("npm package", () => {
  it("packs a tarball that installs with a plain npm install and runs topo --help and validate", async () => {
    const dir = mkdtempSync(join(tmpdir(), "topo-pack-"));
    // npm test built dist/ already; the prepare script would rebuild it under the other tests' feet.
    const pack = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], ROOT);
    expect(pack.code, pack.stderr).toBe(0);
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    const files = info!.files.map((f) => f.path);
    expect(files).toContain("dist/cli.js");
    expect(files).toContain("schemas/topology.schema.json");
    expect(files).toContain("schemas/topology.validate.cjs");
    expect(files.filter((f) => /^(src|test|bench|scripts)\//.test(f))).toEqual([]);

    const app = join(dir, "app");
    await run("mkdir", ["-p", app], dir);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
    const install = await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(dir, info!.filename)], app);
    expect(install.code, install.stderr).toBe(0);

    const bin = join(app, "node_modules/.bin/topo");
    const help = await run(bin, ["--help"], app);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: topo /);
    expect(help.stdout).toMatch(/plan \[options\]/);
    const version = await run(bin, ["--version"], app);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const validate = await run(bin, ["validate", "-f", join(ROOT, "topology.yaml")], app);
    expect(validate.stderr).toBe("");
    expect(validate.stdout).toMatch(/is valid: 3 services/);

    // The README's example, as a TypeScript user would write it: compiled against the installed
    // package's own declarations (strict), then run against the real broker.
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const example = /## From your own code[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example, "the README's example").toBeTruthy();
    writeFileSync(join(app, "example.ts"), example!);
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, typeRoots: [join(ROOT, "node_modules/@types")], types: ["node"], outDir: "out" },
        files: ["example.ts"],
      }),
    );
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, type: "module", dependencies: { topo: `file:${join(dir, info!.filename)}` } }));
    const tsc = await run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "."], app);
    expect(tsc.stdout + tsc.stderr).toBe("");
    expect(tsc.code).toBe(0);
    const sync = uniqueName("pksync");
    const async = uniqueName("pkasync");
    vhosts.push(sync, async);
    writeFileSync(join(app, "topology.yaml"), readFileSync(writeTopology({ sync, async, services: ["mplogin"] }), "utf8"));
    const ran = await run(process.execPath, ["out/example.js"], app);
    expect(ran.stderr).toBe("");
    expect(ran.stdout).toMatch(/\+ create queue mplogin\.sync/);
    expect(ran.stdout).toMatch(/Plan: \d+ to create/);
    expect(ran.code).toBe(2);
  }, 180_000);
});
