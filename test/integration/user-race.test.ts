// Users are the broker's, while an apply's lock is its prefix's in its vhost: two files that list
// one user held their own locks, both planned "create user", both wrote it, and the later write
// won while the earlier apply said the broker matched its file (broker/user-writers.ts).

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqplib from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { amqpUrl, api, broker, CLI, deleteVhost, runCli, uniqueName, writeFile, type CliResult } from "../helpers/broker.js";

const vhosts: string[] = [];
const users: string[] = [];
afterEach(async () => {
  await Promise.all([...vhosts.splice(0).map(deleteVhost), ...users.splice(0).map((u) => api("DELETE", `/api/users/${encodeURIComponent(u)}`))]);
});

/** A file of prefix `prefix` on the given vhosts (one cluster each), whose one service's user is `user`. */
function file(prefix: string, vs: string[], user: string): string {
  const b = broker();
  return writeFile(
    "topology.yaml",
    [
      "version: 1",
      `prefix: ${prefix}`,
      "defaults:",
      "  sync: { cluster: c0, mirrored: false }",
      `  async: { cluster: c${vs.length - 1} }`,
      "clusters:",
      ...vs.map((v, i) => `  c${i}: { url: "${amqpUrl(v)}", management: "${b.mgmtBase}" }`),
      "services:",
      `  - ${prefix}svc`,
      "users:",
      `  ${user}:`,
      `    password: \${RACE_PASSWORD_${prefix.toUpperCase()}}`,
      `    consumes: [${prefix}svc]`,
    ].join("\n"),
  );
}

const env = { RACE_PASSWORD_URA: "first-9pass", RACE_PASSWORD_URB: "second-9pass" };

interface Running {
  child: ReturnType<typeof spawn>;
  /** Resolves once `pattern` is in what it has printed (stdout and stderr). */
  printed: (pattern: RegExp) => Promise<void>;
  done: Promise<CliResult>;
}

function start(args: string[], extra: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env, ...extra } });
  let stdout = "";
  let stderr = "";
  const waits: { pattern: RegExp; resolve: () => void }[] = [];
  const check = () => {
    for (const w of waits.splice(0)) (w.pattern.test(stdout + stderr) ? w.resolve() : waits.push(w));
  };
  child.stdout.on("data", (d: Buffer) => ((stdout += d), check()));
  child.stderr.on("data", (d: Buffer) => ((stderr += d), check()));
  const done = new Promise<CliResult>((resolve) => child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr })));
  return {
    child,
    printed: (pattern) =>
      new Promise<void>((resolve, reject) => {
        waits.push({ pattern, resolve });
        check();
        void done.then((r) => reject(new Error(`exited ${r.code} before printing ${pattern}:\n${r.stdout}\n${r.stderr}`)));
      }),
    done,
  };
}

/** Two new vhosts and a user's name, all removed after the test. */
function vhostsAndUser(a: string, b: string): { va: string; vb: string; user: string } {
  const [va, vb] = [uniqueName(a), uniqueName(b)];
  const user = `race-${randomBytes(4).toString("hex")}`;
  vhosts.push(va, vb);
  users.push(user);
  return { va, vb, user };
}

async function tagsOf(user: string): Promise<string[] | undefined> {
  const r = await api("GET", `/api/users/${encodeURIComponent(user)}`);
  return r.status === 200 ? (r.body.tags as string[]) : undefined;
}

describe("two applies of files that list one user", () => {
  it("both planned before either wrote: one stops before writing it, and the user is the other's, as that one says", async () => {
    const { va, vb, user } = vhostsAndUser("ura", "urb");
    // b's vhost as an apply of b left it, without the user: the plan read before the lock is then
    // kept under it (a vhost without b's apply mark is always read again).
    const fb = file("urb", [vb], user);
    expect((await runCli(["apply", "-f", fb], env)).code).toBe(0);
    await api("DELETE", `/api/users/${encodeURIComponent(user)}`);
    // b reads and plans "create user", and is stopped there (before its lock); a then creates
    // the user and finishes; b goes on with the plan it read.
    const b = start(["apply", "-f", fb]);
    await b.printed(new RegExp(`create user ${user}`));
    b.child.kill("SIGSTOP");
    const a = await runCli(["apply", "-f", file("ura", [va], user)], env);
    b.child.kill("SIGCONT");
    const rb = await b.done;
    // Exactly one of them made the user, and it carries that one's tag: the other did not say it matched.
    const winners = [a.code === 0 ? "ura" : undefined, rb.code === 0 ? "urb" : undefined].filter(Boolean);
    expect(winners, `a: ${a.stdout}${a.stderr}\nb: ${rb.stdout}${rb.stderr}`).toHaveLength(1);
    expect(await tagsOf(user)).toEqual([`topo.${winners[0]}`]);
    const loser = a.code === 0 ? rb : a;
    expect(loser.stderr).toMatch(new RegExp(`user ${user} (changed since this apply read it|exists and belongs to another topology)`));
  });

  // One prefix on two vhosts (two files, or a file per environment): the user the other apply made
  // carries this file's own tag, so the read under the lock found it this file's, planned its
  // password as an update, and wrote it: both applies exit 0, and the first one's workers were
  // refused at login. The read under the lock is taken again here (b's vhost has no apply mark).
  it("one prefix on two vhosts: a user the other apply makes between this one's plan and its lock stops this one, though the read under the lock finds it its own", async () => {
    const { va, vb, user } = vhostsAndUser("urm", "urn");
    await api("PUT", `/api/vhosts/${encodeURIComponent(vb)}`, {});
    const b = start(["apply", "-f", file("ura", [vb], user)], { RACE_PASSWORD_URA: "other-9pass" });
    await b.printed(new RegExp(`create user ${user}`));
    b.child.kill("SIGSTOP");
    const a = await runCli(["apply", "-f", file("ura", [va], user)], env);
    b.child.kill("SIGCONT");
    expect(a.code, a.stdout + a.stderr).toBe(0);
    const rb = await b.done;
    expect(rb.code, rb.stdout + rb.stderr).toBe(1);
    expect(rb.stderr).toContain(`user ${user} changed since this apply read it`);
    expect(rb.stderr).toContain("nothing was written");
    // a's password still logs in: b wrote nothing.
    const conn = await amqplib.connect(amqpUrl(va, { user, password: env.RACE_PASSWORD_URA }));
    await conn.close();
  });

  it("while another apply holds its lock and may write the user, the second stops before writing, naming the user and that apply's lock", async () => {
    const base = uniqueName("urc");
    const [a1, a2, vb] = [`${base}-1`, `${base}-2`, uniqueName("urd")];
    const user = `race-${randomBytes(4).toString("hex")}`;
    vhosts.push(a1, a2, vb);
    users.push(user);
    await api("PUT", `/api/vhosts/${encodeURIComponent(a2)}`, {});
    // a takes its lock on a1, then waits for the one on a2, which this connection holds as another apply would.
    const holder = await amqplib.connect(amqpUrl(a2));
    try {
      const ch = await holder.createChannel();
      await ch.assertQueue("topo.ura.lock", { exclusive: true, durable: false, autoDelete: true });
      const a = start(["apply", "-f", file("ura", [a1, a2], user), "--lock-timeout", "600"]);
      await a.printed(/waiting for the apply lock/);
      const b = await runCli(["apply", "-f", file("urb", [vb], user)], env);
      expect(b.code, b.stdout + b.stderr).toBe(1);
      expect(b.stderr).toContain(`user ${user}: another apply (`);
      expect(b.stderr).toContain(`lock topo.ura.lock in vhost ${a1}) may write it now`);
      expect(b.stderr).toContain("nothing was written");
      expect(await tagsOf(user)).toBeUndefined();
      await holder.close();
      const ra = await a.done;
      expect(ra.code, ra.stdout + ra.stderr).toBe(0);
      expect(await tagsOf(user)).toEqual(["topo.ura"]);
    } finally {
      await holder.close().catch(() => undefined);
    }
  });
});

describe("two applies of one file, each with --cluster", () => {
  // Parallel deploy jobs, one per cluster, of one file with users: the refusal told them that two
  // files listed one user, and to give each user to one file, when there was one file.
  it("the refusal says the other lock is the file's own, on its other cluster, and how to apply them", async () => {
    const base = uniqueName("urj");
    const [v0, v1] = [`${base}-0`, `${base}-1`];
    const user = `race-${randomBytes(4).toString("hex")}`;
    vhosts.push(v0, v1);
    users.push(user);
    const f = file("ura", [v0, v1], user);
    expect((await runCli(["apply", "-f", f], env)).code).toBe(0);
    // The apply of cluster c0 holds its lock (in v0) and may write the user, as its lock says.
    const holder = await amqplib.connect(amqpUrl(v0));
    try {
      const ch = await holder.createChannel();
      await ch.assertQueue("topo.ura.lock", { exclusive: true, durable: false, autoDelete: true, arguments: { "x-topo-users": [user] } });
      const b = await runCli(["apply", "-f", f, "--cluster", "c1"], { RACE_PASSWORD_URA: "changed-9pass" });
      expect(b.code, b.stdout + b.stderr).toBe(1);
      expect(b.stderr).toContain(`user ${user}: another apply (lock topo.ura.lock in vhost ${v0}) may write it now`);
      expect(b.stderr).toContain("that lock is this file's own, on its cluster c0: two applies of one file, each with --cluster, both write the users their clusters share");
      expect(b.stderr).not.toContain("two files should not both list one user");
    } finally {
      await holder.close().catch(() => undefined);
    }
  });

  it("another file's lock of another prefix is still said to be another file's", async () => {
    const { va, vb, user } = vhostsAndUser("urk", "url");
    await api("PUT", `/api/vhosts/${encodeURIComponent(va)}`, {});
    const holder = await amqplib.connect(amqpUrl(va));
    try {
      const ch = await holder.createChannel();
      // As another file's apply holds it: every topo apply's lock names its holder.
      await ch.assertQueue("topo.ura.lock", { exclusive: true, durable: false, autoDelete: true, arguments: { "x-topo-users": [user], "x-topo-holder": "deploy-7 pid 4242" } });
      const b = await runCli(["apply", "-f", file("urb", [vb], user)], env);
      expect(b.code, b.stdout + b.stderr).toBe(1);
      expect(b.stderr).toContain("two files should not both list one user");
      expect(b.stderr).not.toContain("that lock names no holder");
      expect(b.stderr).not.toContain("this file's own");
    } finally {
      await holder.close().catch(() => undefined);
    }
  });
});

describe("another apply's lock as the refusal shows it", () => {
  it("its vhost, holder and time are the declarer's words: a newline or a terminal escape among them is shown escaped", async () => {
    const odd = `${uniqueName("ure")}/b%c \u00fc\u001b[31mred`;
    const vb = uniqueName("urf");
    const user = `race-${randomBytes(4).toString("hex")}`;
    vhosts.push(odd, vb);
    users.push(user);
    await api("PUT", `/api/vhosts/${encodeURIComponent(odd)}`, {});
    const holder = await amqplib.connect(amqpUrl(odd));
    try {
      const ch = await holder.createChannel();
      await ch.assertQueue("topo.ura.lock", {
        exclusive: true,
        durable: false,
        autoDelete: true,
        arguments: { "x-topo-users": [user], "x-topo-holder": "host\u001b[2J\n  hint: delete user x", "x-topo-since": "now\u001b[1A" },
      });
      const b = await runCli(["apply", "-f", file("urb", [vb], user)], env);
      expect(b.code, b.stdout + b.stderr).toBe(1);
      expect(b.stderr).toContain(`user ${user}: another apply (`);
      expect(b.stderr).not.toContain("\u001b");
      expect(b.stderr).not.toContain("\n  hint: delete user x");
      expect(b.stderr).toContain(JSON.stringify(odd).replace("\u001b", "\\u001b"));
      expect(await tagsOf(user)).toBeUndefined();
    } finally {
      await holder.close().catch(() => undefined);
    }
  });

  it("a lock that names no holder is said by its name alone; a queue of a lock's name that no connection holds exclusively is no apply's", async () => {
    const [vl, vs, vb] = [uniqueName("urg"), uniqueName("urh"), uniqueName("uri")];
    const user = `race-${randomBytes(4).toString("hex")}`;
    vhosts.push(vl, vs, vb);
    users.push(user);
    await api("PUT", `/api/vhosts/${encodeURIComponent(vl)}`, {});
    await api("PUT", `/api/vhosts/${encodeURIComponent(vs)}`, {});
    const holder = await amqplib.connect(amqpUrl(vl));
    const stray = await amqplib.connect(amqpUrl(vs));
    try {
      await (await stray.createChannel()).assertQueue("topo.urs.lock", { durable: false, arguments: { "x-topo-users": [user] } });
      const ch = await holder.createChannel();
      await ch.assertQueue("topo.ura.lock", { exclusive: true, durable: false, autoDelete: true, arguments: { "x-topo-users": [user] } });
      const b = await runCli(["apply", "-f", file("urb", [vb], user)], env);
      expect(b.code, b.stdout + b.stderr).toBe(1);
      expect(b.stderr).toContain(`user ${user}: another apply (lock topo.ura.lock in vhost ${vl}) may write it now`);
      // Such a lock may be no apply's at all (any client may declare it): the way out is said.
      expect(b.stderr).toContain(`hint: that lock names no holder, though every topo apply's lock names one: if no apply of topo's is running, a client that is no topo apply holds it (declared by hand, or by another program); close it (rabbitmqctl list_queues -p ${vl} name owner_pid, then rabbitmqctl close_connection), and the lock goes with its connection`);
      // A saved plan is refused the same way, and told to plan anew: applied again, it would show
      // only what was planned before the other apply wrote.
      const saved = join(mkdtempSync(join(tmpdir(), "topo-race-")), "plan.json");
      expect((await runCli(["plan", "-f", file("urb", [vb], user), "-o", saved], env)).code).toBe(0);
      const s = await runCli(["apply", saved], env);
      expect(s.code, s.stdout + s.stderr).toBe(1);
      expect(s.stderr).toContain(`user ${user}: another apply (lock topo.ura.lock in vhost ${vl}) may write it now`);
      expect(s.stderr).toMatch(/once the other apply has finished, run topo plan -o \S+ again and apply that/);
      expect(b.stderr).not.toMatch(/plan -o/);
      await holder.close();
      // The stray queue in the other vhost stays, and stands in no apply's way.
      const again = await runCli(["apply", "-f", file("urb", [vb], user)], env);
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(await tagsOf(user)).toEqual(["topo.urb"]);
    } finally {
      await holder.close().catch(() => undefined);
      await stray.close().catch(() => undefined);
    }
  });
});
