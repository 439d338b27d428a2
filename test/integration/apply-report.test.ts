// What apply reports is what it did: its --json plan and its summary are the changes it made,
// not the plan it read before waiting for the lock, when the broker changed in between.

import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import amqplib from "amqplib";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { managementProxy } from "../helpers/proxy.js";
import { adminManagementUrl, amqpUrl, api, CLI, getQueue, runCli, testVhosts, vh, writeTopology } from "../helpers/broker.js";
import { apply, InterruptedError } from "../../src/index.js";
// @ts-expect-error: a plain ESM module of the benchmark, without type declarations
import { serviceNames } from "../../bench/services.mjs";

const { fresh } = testVhosts();

/** Run topo apply while another holder keeps the async cluster's lock; `meanwhile` runs while it waits. */
async function applyWhileLocked(args: string[], async: string, meanwhile: () => Promise<void>): Promise<{ code: number; stdout: string; stderr: string }> {
  const holder = await amqplib.connect(amqpUrl(async));
  try {
    const ch = await holder.createChannel();
    await ch.assertQueue("topo.mp.lock", { exclusive: true, arguments: { "x-topo-holder": "the apply-report test" } });
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number>((r) => child.on("exit", (code) => r(code ?? -1)));
    for (let i = 0; i < 200 && !/waiting for the apply lock/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    expect(stderr).toMatch(/cluster async: waiting for the apply lock held by the apply-report test/);
    await meanwhile();
    await holder.close();
    return { code: await exited, stdout, stderr };
  } finally {
    await holder.close().catch(() => undefined);
  }
}

/** topo apply --json of `file` with the async cluster's management API behind `management`: its JSON, and each cluster's actions as "op kind". */
async function applyJsonThrough(file: string, management: string): Promise<{ j: any; actions: (cluster: string) => string[] }> {
  const doc = JSON.parse(readFileSync(file, "utf8"));
  doc.clusters.async.management = management;
  writeFileSync(file, JSON.stringify(doc, null, 2));
  const r = await runCli(["apply", "-f", file, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  const j = JSON.parse(r.stdout);
  return { j, actions: (name) => j.clusters.find((c: { name: string }) => c.name === name).actions.map((a: { op: string; kind: string }) => `${a.op} ${a.kind}`) };
}

/**
 * Make vhost `v` and wait until it runs. A busy broker takes its time to start a vhost, and its
 * management API cuts the PUT's answer at 60 s (the vhost is made all the same, but its maker is
 * not given rights on it: grant them).
 */
async function startedVhost(v: string, body: Record<string, string>): Promise<void> {
  const put = await api("PUT", `/api/vhosts/${vh(v)}`, body).catch(() => undefined);
  if (put) expect(put.status).toBe(201);
  for (let i = 0; i < 120; i++) {
    const states = Object.values((await api("GET", `/api/vhosts/${vh(v)}`)).body?.cluster_state ?? {});
    if (states.length > 0 && states.every((s) => s === "running")) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`vhost ${v} did not start within 2 minutes`);
}

describe("apply --json reports the changes apply made", () => {
  it("leaves out what another hand made while apply waited for the lock", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    writeFileSync(t.file, readFileSync(writeTopology({ sync: t.sync, async: t.async, services: ["mplogin", "mpcart"] }), "utf8"));

    const r = await applyWhileLocked(["apply", "-f", t.file, "--json"], t.async, async () => {
      // While apply waits, someone (a worker, another tool) makes async's share of the plan.
      expect((await api("PUT", `/api/exchanges/${vh(t.async)}/mpcart`, { type: "topic", durable: true })).status).toBe(201);
      expect((await api("PUT", `/api/queues/${vh(t.async)}/mpcart.async`, { durable: true })).status).toBe(201);
      expect((await api("POST", `/api/bindings/${vh(t.async)}/e/mpcart/q/mpcart.async`, { routing_key: "mpcart.async.#" })).status).toBe(201);
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/cluster async: nothing left to do \(another apply made the changes\)/);
    const j = JSON.parse(r.stdout);
    const actions = (name: string) => j.clusters.find((c: { name: string }) => c.name === name).actions.map((a: { op: string; kind: string; name: string }) => `${a.op} ${a.kind} ${a.name}`);
    expect(actions("async")).toEqual([]);
    expect(actions("sync")).toEqual(["create exchange mpcart", "create queue mpcart.sync", "create binding mpcart -> mpcart.sync [mpcart.sync.#]"]);
    expect(j.summary).toEqual({ create: 3, update: 0, replace: 0, delete: 0, degraded: 0 });
    expect(j.applied).toEqual([
      { name: "sync", status: "applied", changes: 3, degraded: [], notCompared: [] },
      { name: "async", status: "unchanged", changes: 0, degraded: [], notCompared: [] },
    ]);
  }, 60_000);

  it("a replace refused on what another apply's work looks like is judged again under the lock, not refused at once with advice to allow data loss", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    // What another apply's move looks like from outside: messages fetched and not acknowledged.
    const fetcher = await amqplib.connect(amqpUrl(t.async));
    try {
      const ch = await fetcher.createChannel();
      for (let i = 0; i < 3; i++) ch.sendToQueue("mplogin.async", Buffer.from(`m${i}`));
      await ch.checkQueue("mplogin.async");
      for (let i = 0; i < 3; i++) expect(await ch.get("mplogin.async", { noAck: false })).not.toBe(false);
      writeFileSync(t.file, readFileSync(writeTopology({ sync: t.sync, async: t.async, services: [{ name: "mplogin", sync: false, async: { arguments: { "x-max-priority": 5 } } }] }), "utf8"));

      const r = await applyWhileLocked(["apply", "-f", t.file, "--allow-destructive"], t.async, async () => {
        // That apply finishes: what it held is acknowledged, and it lets go of the lock.
        ch.ackAll();
        await ch.checkQueue("mplogin.async");
      });
      expect(r.stderr).toMatch(/cluster async: another apply holds the lock, so this plan may show its work under way; apply waits for the lock, then reads, counts and checks again under it before writing/);
      expect(r.code, r.stderr).toBe(0);
      expect((await getQueue(t.async, "mplogin.async"))?.arguments).toEqual({ "x-max-priority": 5 });
    } finally {
      await fetcher.close().catch(() => undefined);
    }
  }, 60_000);

  it("while another apply holds the lock, plan says its picture may be that apply's work under way", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    const holder = await amqplib.connect(amqpUrl(t.async));
    try {
      await (await holder.createChannel()).assertQueue("topo.mp.lock", { exclusive: true });
      const plan = await runCli(["plan", "-f", t.file]);
      expect(plan.stdout).toContain(`! warning: another apply of prefix "mp" holds this cluster's lock (queue topo.mp.lock) and may be writing`);
    } finally {
      await holder.close();
    }
    expect((await runCli(["plan", "-f", t.file])).stdout).not.toContain("holds this cluster's lock");
  });

  it("a vhost another apply made after this one's read is no change of this apply's: not counted, not in its --json plan", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    // The async vhost appears between apply's read (none) and its PUT, which RabbitMQ answers 204.
    let made = false;
    const proxy = await managementProxy({
      delayMs: (path) => {
        if (made || path !== `/api/vhosts/${vh(t.async)}`) return 0;
        made = true;
        void api("PUT", `/api/vhosts/${vh(t.async)}`, {});
        return 1000;
      },
    });
    try {
      const { j, actions } = await applyJsonThrough(t.file, proxy.url);
      expect(made).toBe(true);
      expect(actions("async")).toEqual(["create exchange", "create queue", "create binding"]);
      expect(j.applied).toContainEqual({ name: "async", status: "applied", changes: 3, degraded: [], notCompared: [] });
      expect(j.applied).toContainEqual({ name: "sync", status: "applied", changes: 1, degraded: [], notCompared: [] });
    } finally {
      proxy.close();
    }
  }, 60_000);

  it("a vhost another hand made after this one's read is left as it was made: its description, tags and its users' rights", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    const narrow = { configure: "^(mp|topo\\.).*", write: ".*", read: ".*" };
    // A team's vhost, with a description and tags, where the user topo connects as has narrower
    // rights than topo would give. Hidden from apply's read (no vhost), it stands for one made
    // between that read and apply's PUT, without waiting on how long the broker takes to start it.
    await startedVhost(t.async, { description: "owned by team x", tags: "prod,teamx" });
    // The sync cluster's vhost too, which this file leaves empty: nothing to write there.
    await startedVhost(t.sync, {});
    expect([201, 204]).toContain((await api("PUT", `/api/permissions/${vh(t.sync)}/guest`, { configure: ".*", write: ".*", read: ".*" })).status);
    expect([201, 204]).toContain((await api("PUT", `/api/permissions/${vh(t.async)}/guest`, narrow)).status);
    let hidden = true;
    const ofVhost = ["exchanges", "queues", "bindings", "policies", "operator-policies"].map((k) => `/api/${k}/${vh(t.async)}`);
    const proxy = await managementProxy({
      answer: (req, res) => {
        if (req.method === "PUT" && req.url === `/api/vhosts/${vh(t.async)}`) hidden = false;
        if (!hidden || req.method !== "GET" || !ofVhost.some((p) => req.url?.startsWith(p))) return false;
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "Object Not Found", reason: "Not Found" }));
        return true;
      },
      change: (path, body) => (hidden && path.startsWith("/api/vhosts?") ? (body as { name: string }[]).filter((v) => v.name !== t.async) : undefined),
    });
    try {
      const { actions } = await applyJsonThrough(t.file, proxy.url);
      expect(hidden).toBe(false);
      expect(actions("async")).toEqual(["create exchange", "create queue", "create binding"]);
      const made = (await api("GET", `/api/vhosts/${vh(t.async)}`)).body;
      expect({ description: made.description, tags: made.tags }).toEqual({ description: "owned by team x", tags: ["prod", "teamx"] });
      const rights = (await api("GET", `/api/permissions/${vh(t.async)}/guest`)).body;
      expect({ configure: rights.configure, write: rights.write, read: rights.read }).toEqual(narrow);
    } finally {
      proxy.close();
    }
  }, 480_000);

  it("a vhost PUT sent again after its answer was lost counts the vhost its first try made as this apply's", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    // The broker makes the async vhost on the first PUT, and its answer never reaches topo (the
    // connection drops): the retry is answered 204.
    let tries = 0;
    const proxy = await managementProxy({
      answer: (req, res) => {
        if (req.method !== "PUT" || req.url !== `/api/vhosts/${vh(t.async)}` || tries++ > 0) return false;
        void api("PUT", `/api/vhosts/${vh(t.async)}`, {}).then((made) => {
          expect(made.status).toBe(201);
          res.destroy();
        });
        return true;
      },
    });
    try {
      const { j, actions } = await applyJsonThrough(t.file, proxy.url);
      expect(tries).toBe(2);
      expect(actions("async")).toEqual(["create vhost", "create exchange", "create queue", "create binding"]);
      expect(j.applied).toContainEqual({ name: "async", status: "applied", changes: 4, degraded: [], notCompared: [] });
    } finally {
      proxy.close();
    }
  }, 60_000);

  it("the text report ends with what was made, also when another hand made all of it", async () => {
    const t = fresh([{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    writeFileSync(t.file, readFileSync(writeTopology({ sync: t.sync, async: t.async, services: [{ name: "mplogin", sync: false }, { name: "mpcart", sync: false }] }), "utf8"));
    const r = await applyWhileLocked(["apply", "-f", t.file], t.async, async () => {
      expect((await api("PUT", `/api/exchanges/${vh(t.async)}/mpcart`, { type: "topic", durable: true })).status).toBe(201);
      expect((await api("PUT", `/api/queues/${vh(t.async)}/mpcart.async`, { durable: true })).status).toBe(201);
      expect((await api("POST", `/api/bindings/${vh(t.async)}/e/mpcart/q/mpcart.async`, { routing_key: "mpcart.async.#" })).status).toBe(201);
    });
    expect(r.code, r.stderr).toBe(0);
    // The plan printed before the lock had 3 creates; none of them was this apply's.
    expect(r.stdout).toMatch(/Plan: 3 to create/);
    expect(r.stdout).toMatch(/Apply complete: 0 changes made; every cluster matches the file\.\n$/);
  }, 60_000);
});

describe("apply --cluster", () => {
  // It said "every cluster matches the file" while the cluster it left out had drift it never read.
  it("says which clusters match the file and which were not read, never that every cluster matches", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    for (const [v, kind] of [
      [t.sync, "sync"],
      [t.async, "async"],
    ] as const) {
      expect((await api("DELETE", `/api/bindings/${vh(v)}/e/mplogin/q/mplogin.${kind}/mplogin.${kind}.%23`)).status).toBe(204);
    }
    const r = await runCli(["apply", "-f", t.file, "--cluster", "sync"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Apply complete: 1 change made; cluster sync matches the file; cluster async was not read\.\n$/);
    expect(`${r.stdout}${r.stderr}`).not.toMatch(/every cluster/);
    // The cluster left out still differs.
    expect((await runCli(["plan", "-f", t.file, "--cluster", "async", "--detailed-exitcode"])).code).toBe(2);
  });
});

describe("apply --json stopped by a signal", () => {
  it("a second SIGTERM, which stops at once, still prints one JSON error (interrupted) and exits 130", async () => {
    const services = Array.from({ length: 300 }, (_, i) => `mp${String.fromCharCode(97 + Math.floor(i / 26))}${String.fromCharCode(97 + (i % 26))}`);
    const { file } = fresh(services);
    const child = spawn(process.execPath, [CLI, "apply", "-f", file, "--cluster", "async", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let signals = 0;
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      // The first signal once writes are under way; the second as soon as apply says it is stopping.
      if (signals === 0 && /cluster async: applying \d+ changes/.test(stderr)) {
        signals++;
        child.kill("SIGTERM");
      } else if (signals === 1 && /SIGTERM: stopping/.test(stderr)) {
        signals++;
        child.kill("SIGTERM");
      }
    });
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(signals).toBe(2);
    expect(code).toBe(130);
    const e = JSON.parse(stdout).error;
    expect(e.code).toBe("interrupted");
    expect(e.message).toMatch(/topo plan shows what is left/);
    // Unless the first signal's stop was over before the second came (then it says how far each cluster got).
    expect(stderr).toMatch(/SIGTERM again: stopped at once|interrupted: cluster async: \d+ of \d+ changes were confirmed made/);
  }, 60_000);
});

describe("one of two clusters fails", () => {
  const USER = `topo-test-limited-${process.pid}`;
  afterEach(async () => {
    await api("DELETE", `/api/users/${USER}`);
    await api("DELETE", `/api/users/${USER}-pm`);
  });

  it("the error names the changes the other cluster made, and is apply_incomplete; a saved plan's says to plan again", async () => {
    const t = fresh(["mplogin"]);
    expect((await runCli(["apply", "-f", t.file])).code).toBe(0);
    // async's AMQP user may configure mplogin's objects and topo's own, not mpzed's.
    expect([201, 204]).toContain((await api("PUT", `/api/users/${USER}`, { password: "limited-pw", tags: "" })).status);
    expect([201, 204]).toContain((await api("PUT", `/api/permissions/${vh(t.async)}/${USER}`, { configure: "^(mplogin|topo)[.a-z]*$", write: ".*", read: ".*" })).status);
    const doc = JSON.parse(readFileSync(writeTopology({ sync: t.sync, async: t.async, services: ["mplogin", "mpzed"] }), "utf8"));
    doc.clusters.async.url = amqpUrl(t.async, { user: USER, password: "limited-pw" });
    // A management user who may not read permissions: an administrator's read would refuse the
    // plan before anything is written, and this test needs the broker to refuse part-way.
    expect([201, 204]).toContain((await api("PUT", `/api/users/${USER}-pm`, { password: "pm-pw", tags: "policymaker,monitoring" })).status);
    expect([201, 204]).toContain((await api("PUT", `/api/permissions/${vh(t.async)}/${USER}-pm`, { configure: ".*", write: ".*", read: ".*" })).status);
    doc.clusters.async.management = adminManagementUrl().replace(/\/\/[^@]*@/, `//${USER}-pm:pm-pw@`);
    writeFileSync(t.file, JSON.stringify(doc, null, 2));
    const out = join(dirname(t.file), "plan.json");
    expect((await runCli(["plan", "-f", t.file, "-o", out])).code).toBe(0);

    const r = await runCli(["apply", out, "--json"]);
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("apply_incomplete");
    expect(e.cluster).toBe("async");
    expect(e.message).toMatch(/^cluster async: declare \w+ mpzed.* ACCESS_REFUSED/);
    // sync made all of its share before async failed: the answer says so.
    expect(e.message).toMatch(/\n  cluster sync: 3 of 3 changes were made before apply stopped$/m);
    expect(e.hints).toContain("the saved plan no longer matches what the brokers hold: run topo plan -o FILE again, review it, and apply that");
    // Not plain topo apply, which would apply the file as it is now, unreviewed.
    expect(e.hints.join("\n")).not.toMatch(/topo apply(?! \S*plan)/);
    expect(await getQueue(t.sync, "mpzed.sync")).toBeDefined();
  }, 60_000);
});

describe("a stdout that cannot be written", () => {
  /** Run topo with stdout on /dev/full, where every write fails with ENOSPC (a full disk). */
  function toFullDisk(args: string[]): Promise<{ code: number | null; stderr: string }> {
    const full = openSync("/dev/full", "w");
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", full, "pipe"] });
    closeSync(full);
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    return new Promise((r) => child.on("exit", (code) => r({ code, stderr })));
  }

  it("fails the command (exit 1, said on stderr), not plan's exit 2 over a plan that was never written", async () => {
    const t = fresh(["mplogin"]);
    const out = join(dirname(t.file), "plan.json");
    for (const args of [["plan", "-f", t.file, "--detailed-exitcode", "--json"], ["plan", "-f", t.file, "-o", out], ["show", out, "--json"], ["validate", "-f", t.file]]) {
      const r = await toFullDisk(args);
      expect(r.code, `${args.join(" ")}\n${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/Error: could not write to stdout: ENOSPC: no space left on device, write; what was printed is incomplete/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});

describe("a signal once the writes are done", () => {
  // Ctrl-C or SIGTERM between the last write and the read back: apply read back, said "Apply
  // complete" and exited 0 (advl). It stops there now, saying every change was made and none
  // was read back to confirm it.
  it("stops before the read back, says every change was made, and is interrupted", async () => {
    const { file } = fresh(["mplogin"]);
    const stop = new AbortController();
    const logged: string[] = [];
    const err = await apply({
      file,
      cluster: "async",
      allowDestructive: false,
      allowDataLoss: false,
      lockTimeoutMs: 30_000,
      signal: stop.signal,
      log: (m) => logged.push(m),
      progress: (_cluster, done, total) => {
        if (done === total) stop.abort();
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InterruptedError);
    expect((err as Error).message).toMatch(/^interrupted: cluster async: all \d+ changes were made; they were not read back to confirm them: topo plan shows whether the broker matches the file$/);
    expect(logged.join("\n")).not.toMatch(/the broker matches the file/);
    expect((await runCli(["plan", "-f", file, "--cluster", "async", "--detailed-exitcode"])).code).toBe(0);
  });

  it("says of a cluster the read back confirmed that it was confirmed, beside one still writing", async () => {
    // One service with sync and async queues, and 300 with async queues alone: the sync cluster
    // is done and confirmed long before the async one (rv2: it was said to be "not read back").
    const letters = (i: number) => String.fromCharCode(97 + Math.floor(i / 26)) + String.fromCharCode(97 + (i % 26));
    const { file } = fresh(["mplogin", ...Array.from({ length: 300 }, (_, i) => ({ name: `mpmany${letters(i)}`, sync: false }))]);
    const stop = new AbortController();
    const err = await apply({
      file,
      allowDestructive: false,
      allowDataLoss: false,
      lockTimeoutMs: 30_000,
      signal: stop.signal,
      log: (m) => {
        if (/^cluster sync: \d+ changes applied; the broker matches the file/.test(m)) stop.abort();
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InterruptedError);
    expect((err as Error).message).toMatch(/^interrupted: cluster sync: all \d+ changes were made, and the read back confirmed them$/m);
    expect((err as Error).message).toMatch(/^interrupted: cluster async: /m);
  });
});

describe("a slow reader of apply's output", () => {
  /** Reads its stdin 256 bytes every 20 ms, as a lagging log shipper does, and passes it on. */
  const LAGGING = `process.stdin.pause(); process.stdin.on("readable", () => {}); const t = setInterval(() => { const c = process.stdin.read(256) ?? process.stdin.read(); if (c) process.stdout.write(c); }, 20); process.stdin.on("end", () => clearInterval(t));`;

  it("gets the whole plan before any progress line, and no line broken, when stdout and stderr share one pipe (2>&1 into a lagging log shipper)", async () => {
    const t = fresh((serviceNames as (n: number) => string[])(600));
    // One pipe (a real one: Node's own child pipes are socket pairs, with far larger buffers) for
    // both, as a deploy job's log has it; the plan, about 200 KB, takes seconds to drain, longer
    // than apply takes to begin its writes.
    const child = spawn("sh", ["-c", '"$0" "$1" apply -f "$2" 2>&1 | "$0" -e "$3"', process.execPath, CLI, t.file, LAGGING], { stdio: ["ignore", "pipe", "inherit"] });
    let text = "";
    child.stdout.on("data", (d: Buffer) => (text += d.toString()));
    expect(await new Promise<number>((r) => child.on("exit", (code) => r(code ?? -1))), text.slice(-2000)).toBe(0);
    const lines = text.split("\n");
    const plan = lines.findIndex((l) => /^Plan: /.test(l));
    expect(plan).toBeGreaterThan(3_600);
    // Everything before "Plan:" is the plan: its clusters' headers and their actions, whole.
    const whole = /^ {2}\+ create (vhost \S+|exchange \S+ \(topic, durable\)|queue \S+ \(classic, (transient|durable)[^)]*\)|binding \S+ -> \S+ \[\S+\]|policy (?!.*cluster ).*)$|^cluster (sync|async): amqp:\/\/\S+ \(RabbitMQ [\d.]+\)$|^$/;
    const misfit = lines.slice(0, plan).filter((l) => !whole.test(l));
    expect(misfit.slice(0, 5)).toEqual([]);
    expect(lines[plan]).toBe("Plan: 3603 to create, 0 to update, 0 to replace, 0 to delete.");
    expect(lines.slice(plan + 1).join("\n")).toMatch(/^cluster (sync|async): applying 18\d\d changes[^\n]*\n(.*\n)*Apply complete: 3603 changes made; every cluster matches the file\.\n$/);
  }, 120_000);
});
