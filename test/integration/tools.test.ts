// export definitions, route --live, and the conventions of a command-line tool (colour only on a
// terminal, progress on stderr), against the real broker.

import { execFile } from "node:child_process";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error: a plain ESM module of the benchmark, without type declarations
import { serviceNames } from "../../bench/services.mjs";
import { api, broker, CLI, createVhost, runCli, vh, withChannel, writeFile, testVhosts } from "../helpers/broker.js";

const { fresh } = testVhosts();

const SERVICES = ["mplogin", { name: "mppayment", sync: false, async: { type: "quorum", arguments: { "x-delivery-limit": 5, "x-max-length": 100000 } } }];

/** Run a command on a pseudo-terminal (util-linux script), as a person at a terminal would. */
function onTerminal(args: string[], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  const cmd = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  return new Promise((resolve) => {
    // A person at a terminal: no NO_COLOR, and not a CI job (the tests themselves may run in one).
    execFile("script", ["-qec", cmd, "/dev/null"], { env: { ...process.env, NO_COLOR: "", CI: "", ...env }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, output: stdout });
    });
  });
}

describe("export definitions", () => {
  it("imports into an empty vhost (POST /api/definitions/{vhost}) and plan then says No changes", async () => {
    const { async, file } = fresh(SERVICES);
    const out = await runCli(["export", "definitions", "-f", file, "--cluster", "async"]);
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    await createVhost(async);
    const imported = await api("POST", `/api/definitions/${vh(async)}`, JSON.parse(out.stdout));
    expect(imported.status).toBe(204);
    const plan = await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"]);
    expect(plan.stdout).toMatch(/No changes\./);
    expect(plan.code).toBe(0);
  });

  it("says the file's own warnings, as plan does (a tls: that no connection uses)", async () => {
    const { async, file } = fresh(SERVICES);
    const doc = JSON.parse(readFileSync(file, "utf8"));
    doc.clusters.async.tls = { insecure: true };
    writeFileSync(file, JSON.stringify(doc, null, 2));
    const out = await runCli(["export", "definitions", "-f", file, "--cluster", "async"]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toMatch(/^warning: \S+:\d+:\d+: clusters\.async\.tls: no connection of this cluster uses it/);
    expect(JSON.parse(out.stdout).vhosts).toEqual([{ name: async }]);
  });

  it("imports as a whole-broker file (rabbitmqctl import_definitions, vhost and mirror policy included)", async () => {
    const { sync, file } = fresh(SERVICES);
    const out = writeFile("sync.json", "");
    const r = await runCli(["export", "definitions", "-f", file, "--cluster", "sync", "-o", out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/wrote .*sync\.json/);
    const defs = JSON.parse(readFileSync(out, "utf8"));
    expect(defs.vhosts).toEqual([{ name: sync }]);
    expect(defs.policies.map((p: { name: string }) => p.name)).toEqual(["topo.mp.mirror.sync"]);
    if (process.env.RABBITMQ_URL) {
      // A broker elsewhere: its own rabbitmqctl is out of reach; the HTTP whole-broker import is the same code path.
      expect((await api("POST", "/api/definitions", defs)).status).toBe(204);
    } else {
      // rabbitmqctl runs as the rabbitmq user, who may not read the test's private temp dir.
      chmodSync(dirname(out), 0o755);
      chmodSync(out, 0o644);
      await new Promise<void>((resolve, reject) =>
        execFile("rabbitmqctl", ["-q", "import_definitions", out], (e, _o, stderr) => (e ? reject(new Error(`rabbitmqctl import_definitions: ${stderr}`)) : resolve())),
      );
    }
    // The vhost the import made grants the cluster's AMQP user what apply would have: without it
    // that user could not connect, and plan (which logs in) said so.
    const granted = (await api("GET", `/api/vhosts/${vh(sync)}/permissions`)).body as { user: string; configure: string }[];
    expect(granted.map((p) => [p.user, p.configure])).toEqual([[broker().user, ".*"]]);
    const plan = await runCli(["plan", "-f", file, "--cluster", "sync", "--detailed-exitcode"]);
    expect(plan.stdout).toMatch(/No changes\./);
    expect(plan.code).toBe(0);
  });

  it("refuses -o naming the topology file, as plan -o does, and writes users' password hashes owner-only", async () => {
    const { file } = fresh(SERVICES);
    const before = readFileSync(file, "utf8");
    for (const args of [["export", "definitions", "-f", file, "--cluster", "sync", "-o", file], ["export", "celery", "-f", file, "--cluster", "sync", "-o", file]]) {
      const r = await runCli(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^Error: -o .* is the topology file .*: the (definitions|module) would replace it\n {2}hint: write it to a file of its own, e\.g\. -o (sync\.json|celeryconfig_sync\.py)\n$/);
    }
    expect(readFileSync(file, "utf8")).toBe(before);
    // A users section: the definitions hold each user's password hash, as secret as a saved plan.
    const withUsers = writeFile("users.yaml", JSON.stringify({ ...JSON.parse(before), users: { edge: { password: "edge-secret-pw", publishes: "all" } } }));
    const out = `${dirname(withUsers)}/defs.json`;
    const r = await runCli(["export", "definitions", "-f", withUsers, "--cluster", "sync", "-o", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out, "utf8")).toContain("password_hash");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(r.stderr).not.toContain("password hash");
    // Printed on stdout (a deploy job's log) they were said nothing of.
    const printed = await runCli(["export", "definitions", "-f", withUsers, "--cluster", "sync"]);
    expect(printed.code).toBe(0);
    expect(printed.stdout).toContain("password_hash");
    expect(printed.stderr).toContain("warning: the definitions hold the password hash of each user of the file's users: section, printed on stdout: a hash is guessed from offline, so keep what stdout goes to as you keep the passwords, or write them with -o FILE (readable by its owner alone)");
    // Without users there is nothing to say.
    expect((await runCli(["export", "definitions", "-f", file, "--cluster", "sync"])).stderr).not.toContain("password hash");
  });

  it("asks which cluster when the file has several", async () => {
    const { file } = fresh(SERVICES);
    const r = await runCli(["export", "definitions", "-f", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/has queues on 2 clusters \(sync, async\), and a definitions file is imported into one broker; choose one with --cluster/);
    expect(r.stderr).toMatch(/hint: topo export definitions -f .* --cluster sync -o sync.json\n {2}hint: topo export definitions -f .* --cluster async -o async.json/);
  });
});

describe("route", () => {
  it("--live with the URL's password variable unset: config_invalid, as plan and apply say of it", async () => {
    const { file } = fresh(SERVICES);
    const unset = writeFile("unset.json", readFileSync(file, "utf8").replace(/guest:guest@/g, "guest:${TOPO_TEST_ROUTE_UNSET_PW}@"));
    const r = await runCli(["route", "mplogin.sync.register", "-f", unset, "--live", "--json"]);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).error.code).toBe("config_invalid");
    expect(JSON.parse((await runCli(["plan", "-f", unset, "--json"])).stdout).error.code).toBe("config_invalid");
  });

  it("says where a task lands, and --live checks it against the broker's bindings", async () => {
    const { async, file } = fresh(SERVICES);
    const before = await runCli(["route", "mppayment.async.charge", "-f", file, "--live"]);
    expect(before.code).toBe(1);
    expect(before.stderr).toMatch(/cluster async: mppayment.async.charge is unroutable on the broker: exchange mppayment does not exist/);
    // Nor does the vhost: a publisher does not even get a channel.
    expect(before.stderr).toContain(`nor does vhost ${async} (the broker refuses a publisher's connection to it with 530 NOT_ALLOWED)`);

    expect((await runCli(["apply", "-f", file])).code).toBe(0);
    const r = await runCli(["route", "mppayment.async.charge", "-f", file, "--live", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      task: "mppayment.async.charge",
      cluster: "async",
      vhost: async,
      exchange: "mppayment",
      routingKey: "mppayment.async.charge",
      queues: ["mppayment.async"],
      live: { exchangeExists: true, queues: ["mppayment.async"], differs: false },
    });

    // A binding added by hand also takes the task: --live says the broker disagrees with the file.
    await withChannel(async, async (ch) => {
      await ch.assertQueue("audit", { durable: true });
      await ch.bindQueue("audit", "mppayment", "*.async.charge");
    });
    const drift = await runCli(["route", "mppayment.async.charge", "-f", file, "--live"]);
    expect(drift.code).toBe(0);
    expect(drift.stdout).toMatch(/queues: {6}mppayment.async\n/);
    expect(drift.stdout).toMatch(/live: {8}the broker routes it to audit, mppayment.async, not as the file says/);

    // Its binding removed by hand: the task would be dropped.
    await withChannel(async, (ch) => ch.unbindQueue("mppayment.async", "mppayment", "mppayment.async.#"));
    await withChannel(async, (ch) => ch.unbindQueue("audit", "mppayment", "*.async.charge"));
    const gone = await runCli(["route", "mppayment.async.charge", "-f", file, "--live"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/unroutable on the broker: no binding of exchange mppayment matches mppayment.async.charge/);
  });

  it("refuses a name that breaks the router rule, with no connection needed", async () => {
    const { file } = fresh(SERVICES);
    const r = await runCli(["route", "MpLogin.sync.register", "-f", file, "--live"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/service "MpLogin" breaks the router rule/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe("a terminal and a pipe", () => {
  it("colours plan on a terminal only, and never with NO_COLOR, --no-color or in CI", async () => {
    const { file } = fresh(["mplogin"]);
    const tty = await onTerminal(["plan", "-f", file]);
    expect(tty.output).toContain("\x1b[32m  + create exchange mplogin");
    const noColor = await onTerminal(["plan", "-f", file], { NO_COLOR: "1" });
    expect(noColor.output).toMatch(/\+ create exchange mplogin/);
    expect(noColor.output).not.toContain("\x1b[");
    // A CI runner may give the job a terminal; its output still ends in a log.
    const ci = await onTerminal(["plan", "-f", file], { CI: "true" });
    expect(ci.output).toMatch(/\+ create exchange mplogin/);
    expect(ci.output).not.toContain("\x1b[");
    const flag = await onTerminal(["--no-color", "plan", "-f", file]);
    expect(flag.output).toMatch(/\+ create exchange mplogin/);
    expect(flag.output).not.toContain("\x1b[");
    const pipe = await runCli(["plan", "-f", file]);
    expect(pipe.stdout).toMatch(/\+ create exchange mplogin/);
    expect(pipe.stdout + pipe.stderr).not.toContain("\x1b[");
  });

  it("shows progress of a large apply on stderr: plain lines in a log, a counter on a terminal", async () => {
    const names = (serviceNames as (n: number) => string[])(500);
    const { file } = fresh(names.map((name) => ({ name, sync: false })));
    const log = await runCli(["apply", "-f", file]);
    expect(log.code).toBe(0);
    // 500 services on the async cluster: the vhost, then 500 exchanges, queues and bindings; one
    // count, as plan shows it (the vhost is made first, before the lock, and counted).
    expect(log.stderr).toMatch(/cluster async: 376 of 1501 changes made \(25%\)\ncluster async: 751 of 1501 changes made \(50%\)\ncluster async: 1126 of 1501 changes made \(75%\)/);
    expect(log.stdout).toMatch(/Apply complete/);

    const again = fresh(names.map((name) => ({ name, sync: false })));
    const tty = await onTerminal(["apply", "-f", again.file]);
    expect(tty.code).toBe(0);
    expect(tty.output).toMatch(/\r\x1b\[Kapplying: (?:\w+ \d+\/\d+, )?async \d+\/1501/);
    // Done clusters leave the counter: the last thing on the terminal is the result, not a counter.
    const tail = tty.output.slice(tty.output.lastIndexOf("the broker matches the file"));
    expect(tail).toMatch(/Apply complete: 1502 changes made/);
    expect(tail).not.toMatch(/applying:/);
    expect(tty.output).not.toMatch(/changes made \(25%\)/);
  });
});
