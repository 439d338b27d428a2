// Users from the file against the real broker: created with exactly the derived rights, refused
// by the broker for anything else, passwords compared with the broker's salted hashes, never
// printed by any command, users topo did not make never touched.

import { readFileSync } from "node:fs";
import amqplib from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { amqpUrl, api, broker, deleteVhost, runCli, uniqueName, vh, writeFile, type CliResult } from "../helpers/broker.js";
import { managementProxy } from "../helpers/proxy.js";
import { writeResealed } from "../helpers/saved.js";

// A prefix of this file's own: users are the broker's, and other test files run beside this one.
const PREFIX = "ut";
const vhosts: string[] = [];
const users: string[] = [];
afterEach(async () => {
  await Promise.all([...vhosts.splice(0).map(deleteVhost), ...users.splice(0).map((u) => api("DELETE", `/api/users/${encodeURIComponent(u)}`))]);
});

interface Setup {
  sync: string;
  async: string;
  edge: string;
  login: string;
  pay: string;
  file: (o?: FileOptions) => string;
  env: Record<string, string>;
}

interface FileOptions {
  /** The login user's secret line, instead of password: ${UT_LOGIN_PASSWORD}. */
  loginSecret?: string;
  drop?: boolean;
  adopt?: boolean;
  /** The async cluster's management URL, instead of the test broker's. */
  asyncManagement?: string;
  /** Both clusters' management URL, instead of the test broker's. */
  management?: string;
  /** Also a user that consumes utpay, whose only queue is on the async cluster. */
  pay?: boolean;
}

/**
 * The setup's file applied (as the test broker's administrator), and a management user with
 * `tags` (password monitor-pass-1) and every right on its two vhosts, who may not list users.
 */
async function appliedWithMonitor(s: Setup, tags: string): Promise<string> {
  const mon = `mon-${s.sync.slice(-8)}`;
  users.push(mon);
  await api("PUT", `/api/users/${mon}`, { password: "monitor-pass-1", tags });
  expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
  for (const v of [s.sync, s.async]) await api("PUT", `/api/permissions/${vh(v)}/${mon}`, { configure: ".*", write: ".*", read: ".*" });
  return mon;
}

/** Two clusters (vhosts), three services, an edge and one service's user, with unique names. */
function setup(): Setup {
  const sync = uniqueName("usync");
  const async = uniqueName("uasync");
  vhosts.push(sync, async);
  const tag = sync.slice(-8);
  const edge = `edge-${tag}`;
  const login = `login-${tag}`;
  const pay = `pay-${tag}`;
  users.push(edge, login, pay);
  const b = broker();
  const env = { UT_EDGE_PASSWORD: `edge/${tag}:p@ss%`, UT_LOGIN_PASSWORD: `login-${tag}-secret` };
  const file = (o: FileOptions = {}) =>
    writeFile(
      "topology.yaml",
      [
        "version: 1",
        `prefix: ${PREFIX}`,
        "clusters:",
        `  sync: { url: "${amqpUrl(sync)}", management: "${o.management ?? b.mgmtBase}" }`,
        `  async: { url: "${amqpUrl(async)}", management: "${o.asyncManagement ?? o.management ?? b.mgmtBase}" }`,
        "services:",
        "  - utlogin",
        "  - utwallet",
        "  - { name: utpay, sync: false }",
        "users:",
        `  ${edge}:`,
        "    password: ${UT_EDGE_PASSWORD}",
        "    publishes: all",
        ...(o.drop
          ? []
          : [
              `  ${login}:`,
              `    ${o.loginSecret ?? "password: ${UT_LOGIN_PASSWORD}"}`,
              "    consumes: [utlogin]",
              "    publishes: [utwallet]",
              ...(o.adopt ? ["    adopt: true"] : []),
            ]),
        ...(o.pay ? [`  ${pay}:`, "    password: ${UT_EDGE_PASSWORD}", "    consumes: [utpay]"] : []),
      ].join("\n"),
    );
  return { sync, async, edge, login, pay, file, env };
}

async function connect(v: string, user: string, password: string) {
  const conn = await amqplib.connect(amqpUrl(v, { user, password }));
  conn.on("error", () => undefined);
  return conn;
}

/** Run `fn` on a fresh channel and return the broker's refusal text, or "ok". */
async function attempt(conn: amqplib.ChannelModel, fn: (ch: amqplib.Channel) => Promise<unknown>): Promise<string> {
  const ch = await conn.createChannel();
  const closed = new Promise<string>((resolve) => ch.on("error", (e: Error) => resolve(e.message)));
  try {
    await fn(ch);
    // A refused publish shows only on the next call on the channel.
    await ch.checkExchange("amq.direct");
    await ch.close();
    return "ok";
  } catch (e) {
    return (await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r((e as Error).message), 200))])) || (e as Error).message;
  }
}

async function canLogIn(v: string, user: string, password: string): Promise<string> {
  try {
    const c = await connect(v, user, password);
    await c.close();
    return "ok";
  } catch (e) {
    return (e as Error).message;
  }
}

function secretsIn(r: CliResult, secrets: string[]): string[] {
  return secrets.filter((s) => r.stdout.includes(s) || r.stderr.includes(s));
}

describe("users from the file", () => {
  it("a password that is also a JSON word or a version's dot leaves plan --json valid and its values as they are", async () => {
    const s = setup();
    for (const pw of ["true", "null", "."]) {
      const r = await runCli(["plan", "-f", s.file(), "--json"], { ...s.env, UT_EDGE_PASSWORD: pw });
      expect(r.stderr).not.toMatch(/Error/);
      const p = JSON.parse(r.stdout);
      const queues = p.clusters.flatMap((c: any) => c.actions).filter((a: any) => a.after?.kind === "queue");
      expect(queues.length).toBeGreaterThan(0);
      for (const q of queues) expect(typeof q.after.durable, pw).toBe("boolean");
      // Masked only where a URL's user-info stands (the test broker's guest:guest is learnt too).
      expect(r.stdout.replace(/amqp:\/\/[^@"]*@/g, "")).not.toContain("***");
    }
  });

  it("creates each user with exactly its role's rights, and the broker refuses everything else", async () => {
    const s = setup();
    const applied = await runCli(["apply", "-f", s.file()], s.env);
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);
    expect((await runCli(["plan", "-f", s.file(), "--detailed-exitcode"], s.env)).code).toBe(0);

    // Tagged as topo's, and with permissions only where its services have queues.
    const u = (await api("GET", `/api/users/${s.login}`)).body;
    expect(u.tags).toEqual([`topo.${PREFIX}`]);
    const perms = (await api("GET", `/api/users/${s.login}/permissions`)).body as { vhost: string; read: string }[];
    expect(perms.map((p) => p.vhost).sort()).toEqual([s.async, s.sync].sort());

    const worker = await connect(s.async, s.login, s.env.UT_LOGIN_PASSWORD);
    const edge = await connect(s.async, s.edge, s.env.UT_EDGE_PASSWORD);
    try {
      // Allowed: consume its own queue, publish a task of a service it calls.
      expect(await attempt(worker, (ch) => ch.consume("utlogin.async", () => undefined))).toBe("ok");
      expect(await attempt(worker, async (ch) => ch.publish("utwallet", "utwallet.async.charge", Buffer.from("{}")))).toBe("ok");
      expect(await attempt(edge, async (ch) => ch.publish("utpay", "utpay.async.refund", Buffer.from("{}")))).toBe("ok");
      // Refused by the broker itself, each with its own words.
      expect(await attempt(worker, (ch) => ch.consume("utwallet.async", () => undefined))).toMatch(/ACCESS_REFUSED - access to queue 'utwallet\.async' in vhost '[^']+' refused for user 'login-/);
      expect(await attempt(worker, (ch) => ch.deleteQueue("utwallet.async"))).toMatch(/ACCESS_REFUSED - access to queue 'utwallet\.async' in vhost '[^']+' refused/);
      expect(await attempt(worker, (ch) => ch.assertQueue("utwallet.async", { durable: true }))).toMatch(/ACCESS_REFUSED - access to queue 'utwallet\.async'/);
      // Purging needs read, like consuming: a worker may purge its own queue, never another's.
      expect(await attempt(worker, (ch) => ch.purgeQueue("utwallet.async"))).toMatch(/ACCESS_REFUSED - access to queue 'utwallet\.async'/);
      expect(await attempt(worker, async (ch) => ch.publish("utpay", "utpay.async.refund", Buffer.from("{}")))).toMatch(/ACCESS_REFUSED - access to exchange 'utpay' in vhost '[^']+' refused/);
      expect(await attempt(worker, async (ch) => ch.publish("utwallet", "utwallet.sync.charge", Buffer.from("{}")))).toMatch(/ACCESS_REFUSED - access to topic 'utwallet\.sync\.charge' in exchange 'utwallet' in vhost '[^']+' refused for user 'login-/);
      expect(await attempt(edge, async (ch) => ch.publish("utpay", "utpay.async.x.y", Buffer.from("{}")))).toMatch(/ACCESS_REFUSED - access to topic 'utpay\.async\.x\.y' in exchange 'utpay'/);
      expect(await attempt(edge, (ch) => ch.consume("utpay.async", () => undefined))).toMatch(/ACCESS_REFUSED - access to queue 'utpay\.async'/);
    } finally {
      await worker.close().catch(() => undefined);
      await edge.close().catch(() => undefined);
    }
  });

  it("import lists the changes to users' rights that the file cannot avoid, and plan on it shows exactly those", async () => {
    // Someone gave the login user .* on the sync vhost. The file can only say what it consumes and
    // publishes, on every cluster: import wrote that and said "topo plan on it shows no changes",
    // while plan then widened the user's rights on the async cluster too.
    const s = setup();
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
    expect((await api("PUT", `/api/permissions/${vh(s.sync)}/${s.login}`, { configure: ".*", write: ".*", read: ".*" })).status).toBe(204);
    const out = s.file().replace(/topology\.yaml$/, "imported.yaml");
    const imported = await runCli(["import", "-f", s.file(), "-o", out], s.env);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).not.toContain("shows no changes");
    const text = readFileSync(out, "utf8");
    const listed = text.split("\n").filter((l) => /^# {3}(\+ create|- delete|~ update|-\/\+ replace) /.test(l)).map((l) => l.slice(4));
    expect(listed).toContain(`~ update permission of ${s.login}`);
    const v = (u: string) => `${u.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_PASSWORD`;
    const env = { RABBITMQ_PASSWORD: encodeURIComponent(broker().password), [v(s.edge)]: s.env.UT_EDGE_PASSWORD, [v(s.login)]: s.env.UT_LOGIN_PASSWORD };
    const plan = await runCli(["plan", "-f", out, "--detailed-exitcode"], env);
    expect(plan.code, plan.stderr).toBe(2);
    const planned = plan.stdout.split("\n").filter((l) => /^ {2}(\+ create|- delete|~ update|-\/\+ replace) /.test(l)).map((l) => l.trim());
    expect(planned).toEqual(listed);
  });

  // A user's max-connections 0 (rabbitmqctl set_user_limits) is degraded to plan, which the file
  // cannot describe: import said "topo plan on it shows no changes", and plan exited 2.
  it("import says what plan of the file reports degraded of its users, as plan then does", async () => {
    const s = setup();
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
    expect((await api("PUT", `/api/user-limits/${s.login}/max-connections`, { value: 0 })).status).toBeLessThan(300);
    const out = s.file().replace(/topology\.yaml$/, "imported.yaml");
    const imported = await runCli(["import", "-f", s.file(), "-o", out], s.env);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toMatch(/topo plan on it shows no changes, and 2 degraded \(plan --detailed-exitcode exits 2 while they last\)/);
    const text = readFileSync(out, "utf8").replace(/\n#\s*/g, " ");
    expect(text).toContain("topo plan on this file plans no changes, and reports the degraded state listed below.");
    expect(text).toMatch(new RegExp(`! degraded: user ${s.login} has max-connections 0`));
    const v = (u: string) => `${u.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_PASSWORD`;
    const env = { RABBITMQ_PASSWORD: encodeURIComponent(broker().password), [v(s.edge)]: s.env.UT_EDGE_PASSWORD, [v(s.login)]: s.env.UT_LOGIN_PASSWORD };
    const plan = await runCli(["plan", "-f", out, "--detailed-exitcode"], env);
    expect(plan.stdout).toMatch(new RegExp(`! degraded: user ${s.login} has max-connections 0`));
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
  });

  it("import lists the password a user without one would get, and plan on the file shows exactly that", async () => {
    // A user that logs in by certificate has no password on the broker (an empty hash). A file
    // cannot say so: import wrote it with ${VAR}, listed no change, and said "export each with the
    // user's current password"; plan then showed (password) whatever the variable held, and apply
    // gave the user a password login it never had.
    const s = setup();
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
    expect((await api("PUT", `/api/users/${s.login}`, { password_hash: "", tags: `topo.${PREFIX}` })).status).toBe(204);
    const out = s.file().replace(/topology\.yaml$/, "imported.yaml");
    const imported = await runCli(["import", "-f", s.file(), "-o", out], s.env);
    expect(imported.code, imported.stderr).toBe(0);
    const v = (u: string) => `${u.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_PASSWORD`;
    expect(imported.stderr).toContain(`note: user ${s.login} has no password on the broker (it logs in with a client certificate, or not at all), which a file cannot say: the file reads one from \${${v(s.login)}}`);
    expect(imported.stderr).not.toContain("shows no changes");
    const text = readFileSync(out, "utf8");
    const listed = text.split("\n").filter((l) => /^# {3}(\+ create|- delete|~ update|-\/\+ replace) /.test(l)).map((l) => l.slice(4));
    // Once per cluster the user has rights on, as plan shows it (users are the broker's).
    expect(new Set(listed)).toEqual(new Set([`~ update user ${s.login} (password)`]));
    const env = { RABBITMQ_PASSWORD: encodeURIComponent(broker().password), [v(s.edge)]: s.env.UT_EDGE_PASSWORD, [v(s.login)]: "anything-at-all" };
    const plan = await runCli(["plan", "-f", out, "--detailed-exitcode"], env);
    expect(plan.code, plan.stderr).toBe(2);
    const planned = plan.stdout.split("\n").filter((l) => /^ {2}(\+ create|- delete|~ update|-\/\+ replace) /.test(l)).map((l) => l.trim());
    expect(planned).toEqual(listed);
  });

  it("import leaves out a marked user whose name or tag a file cannot hold, says so, and writes a file that validates", async () => {
    // Anyone may put topo's tag on a user RabbitMQ lets them name freely: import wrote it, the
    // file did not validate, and import failed with "this is a bug in topo".
    const s = setup();
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
    const odd = `svc bot+${s.sync.slice(-8)}`;
    users.push(odd);
    await api("PUT", `/api/users/${encodeURIComponent(odd)}`, { password: "odd-pass-1", tags: `topo.${PREFIX}` });
    await api("PUT", `/api/permissions/${vh(s.sync)}/${encodeURIComponent(odd)}`, { configure: "^$", write: "^$", read: "^utlogin\\.sync$" });
    await api("PUT", `/api/users/${s.login}`, { password: s.env.UT_LOGIN_PASSWORD, tags: `topo.${PREFIX},odd tag` });
    const out = s.file().replace(/topology\.yaml$/, "imported.yaml");
    const imported = await runCli(["import", "-f", s.file(), "-o", out], s.env);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toContain(`note: user ${JSON.stringify(odd)} carries topo's tag topo.${PREFIX} but a file cannot name it`);
    const text = readFileSync(out, "utf8");
    expect(text).toMatch(new RegExp(`^ {2}${s.login}:$`, "m"));
    expect(text).not.toContain("odd tag\n");
    const valid = await runCli(["validate", "-f", out], { RABBITMQ_PASSWORD: "x" });
    expect(valid.code, valid.stdout + valid.stderr).toBe(0);
  });

  it("shows a changed password as (password) without its value, applies it, and the new one logs in", async () => {
    const s = setup();
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
    const env = { ...s.env, UT_LOGIN_PASSWORD: `${s.env.UT_LOGIN_PASSWORD}-rotated` };
    const plan = await runCli(["plan", "-f", s.file(), "--detailed-exitcode"], env);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(`~ update user ${s.login} (password)`);
    expect(plan.stdout).not.toContain(`~ update user ${s.edge}`);
    const apply = await runCli(["apply", "-f", s.file()], env);
    expect(apply.code).toBe(0);
    expect(await canLogIn(s.async, s.login, env.UT_LOGIN_PASSWORD)).toBe("ok");
    expect(await canLogIn(s.async, s.login, s.env.UT_LOGIN_PASSWORD)).toMatch(/ACCESS.REFUSED/);
    expect((await runCli(["plan", "-f", s.file(), "--detailed-exitcode"], env)).code).toBe(0);
  });

  it("a password variable with white space at an end (echo, a CRLF .env file, a .env line's trailing space) is refused, not set with what the workers' password lacks", async () => {
    const s = setup();
    const password = s.env.UT_LOGIN_PASSWORD;
    for (const end of ["\n", "\r"]) {
      const env = { ...s.env, UT_LOGIN_PASSWORD: `${password}${end}` };
      for (const args of [["apply"], ["plan"], ["validate"]]) {
        const r = await runCli([...args, "-f", s.file()], env);
        expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.stderr).toMatch(/users\.login-\S+\.password: environment variable UT_LOGIN_PASSWORD ends with a line break \(a line feed or a carriage return\), which would be sent as part of the value: set UT_LOGIN_PASSWORD without the line break/);
        expect(r.stdout + r.stderr).not.toContain(password);
      }
    }
    // A space or a tab at either end (a .env line "PW=secret ", a CI secret pasted with its
    // space): the user was made with it, apply exited 0, and the workers' login was refused.
    for (const [value, edge] of [[`${password} `, "ends with a space"], [`${password}\t`, "ends with a tab"], [` ${password}`, "starts with a space"]] as const) {
      for (const args of [["apply"], ["plan"], ["validate"]]) {
        const r = await runCli([...args, "-f", s.file()], { ...s.env, UT_LOGIN_PASSWORD: value });
        expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`).toBe(1);
        expect(r.stderr).toContain(`.password: environment variable UT_LOGIN_PASSWORD ${edge}, which would be sent as part of the value: set UT_LOGIN_PASSWORD without it`);
        expect(r.stdout + r.stderr).not.toContain(password);
      }
    }
    // Nothing was written: the user does not exist, with or without the line break.
    expect((await api("GET", `/api/users/${s.login}`)).status).toBe(404);
    // The cluster's URL alike: said at its variable, not as a control character to percent-encode.
    const b = broker();
    const url = writeFile("topology.yaml", `version: 1\nclusters:\n  sync: { url: "amqp://${b.user}:\${UT_RMQ_PASSWORD}@${b.host}:${b.amqpPort}/${vh(s.sync)}", management: "${b.mgmtBase}" }\n  async: { url: "${amqpUrl(s.async)}", management: "${b.mgmtBase}" }\nservices: [utlogin]\n`);
    const r = await runCli(["plan", "-f", url], { UT_RMQ_PASSWORD: `${b.password}\r` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/:3:\d+: clusters\.sync\.url: environment variable UT_RMQ_PASSWORD ends with a line break/);
    expect(r.stderr).not.toMatch(/control character|percent-encode/);
    // A space in the URL's password was sent (as %20): the login was refused as a wrong password.
    const spaced = await runCli(["plan", "-f", url], { UT_RMQ_PASSWORD: `${b.password} ` });
    expect(spaced.code).toBe(1);
    expect(spaced.stderr).toMatch(/:3:\d+: clusters\.sync\.url: environment variable UT_RMQ_PASSWORD ends with a space, which would be sent as part of the value/);
    expect(spaced.stderr).not.toMatch(/refused|ACCESS_REFUSED|Login failed/);
    // And import's --url, whose password is read from $RABBITMQ_PASSWORD.
    const i = await runCli(["import", "--url", `amqp://${b.user}@${b.host}:${b.amqpPort}/${vh(s.sync)}`, "--management", b.mgmtBase], { RABBITMQ_PASSWORD: `${b.password}\n` });
    expect(i.code).toBe(1);
    expect(i.stderr).toContain(`the password of user "${b.user}" is read from $RABBITMQ_PASSWORD, and $RABBITMQ_PASSWORD ends with a line break`);
    expect(i.stderr).not.toMatch(/control character|percent-encode/);
    const t = await runCli(["import", "--url", `amqp://${b.user}@${b.host}:${b.amqpPort}/${vh(s.sync)}`, "--management", b.mgmtBase], { RABBITMQ_PASSWORD: `${b.password}\t` });
    expect(t.code).toBe(1);
    expect(t.stderr).toContain(`the password of user "${b.user}" is read from $RABBITMQ_PASSWORD, and $RABBITMQ_PASSWORD ends with a tab, which would be sent as part of the value`);
    expect(t.stderr).not.toMatch(/control character/);
  });

  it("a user limit of 0 connections keeps the user's workers out, and plan says so (degraded); another limit is a warning", async () => {
    const s = setup();
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
    expect((await api("PUT", `/api/user-limits/${encodeURIComponent(s.login)}/max-connections`, { value: 0 })).status).toBeLessThan(300);
    expect((await api("PUT", `/api/user-limits/${encodeURIComponent(s.edge)}/max-channels`, { value: 3 })).status).toBeLessThan(300);
    // The broker closes the connection at its open (530 NOT_ALLOWED; amqplib keeps only the close).
    expect(await canLogIn(s.async, s.login, s.env.UT_LOGIN_PASSWORD)).toMatch(/got <ConnectionClose/);
    const plan = await runCli(["plan", "-f", s.file(), "--detailed-exitcode"], s.env);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(
      `! degraded: user ${s.login} has max-connections 0 (rabbitmqctl list_user_limits --user ${s.login}), which the file does not give: the broker refuses its login (530 NOT_ALLOWED), so no worker or publisher that logs in as it can start; clear it with rabbitmqctl clear_user_limits ${s.login} max-connections, if it is not meant`,
    );
    expect(plan.stdout).toMatch(new RegExp(`warning: user ${s.edge} has max-channels 3 .*it may have at most 3 channels open at once`));
    expect((await api("DELETE", `/api/user-limits/${encodeURIComponent(s.login)}/max-connections`)).status).toBeLessThan(300);
    expect(await canLogIn(s.async, s.login, s.env.UT_LOGIN_PASSWORD)).toBe("ok");
    const clean = await runCli(["plan", "-f", s.file(), "--detailed-exitcode"], s.env);
    expect(clean.stdout).toMatch(/No changes\.$/m);
    expect(clean.code).toBe(0);
  });

  it("a password_hash is applied as is, and the password it was made from logs in", async () => {
    const s = setup();
    const password = "from-a-hash";
    // The management API stores a password the way rabbitmqctl hash_password prints it.
    const helper = `hash-${s.sync.slice(-8)}`;
    users.push(helper);
    await api("PUT", `/api/users/${helper}`, { password, tags: "" });
    const hash = (await api("GET", `/api/users/${helper}`)).body.password_hash as string;
    const f = s.file({ loginSecret: `password_hash: "${hash}"` });
    const r = await runCli(["apply", "-f", f], s.env);
    expect(r.stderr).not.toMatch(/Error/);
    expect((await api("GET", `/api/users/${s.login}`)).body.password_hash).toBe(hash);
    expect(await canLogIn(s.async, s.login, password)).toBe("ok");
    expect((await runCli(["plan", "-f", f, "--detailed-exitcode"], s.env)).code).toBe(0);
  });

  it("never changes a user it did not create, unless adopted; deletes a dropped one only when allowed", async () => {
    const s = setup();
    // Someone made the login user by hand, with rights of their own.
    await api("PUT", `/api/users/${s.login}`, { password: "by-hand", tags: "management" });
    const f = s.file();
    const conflict = await runCli(["plan", "-f", f, "--json"], s.env);
    expect(conflict.code).toBe(1);
    const err = JSON.parse(conflict.stdout).error;
    expect(err.code).toBe("user_conflict");
    // The file's place of the user concerned: its key under users.
    const line = readFileSync(f, "utf8").split("\n").indexOf(`  ${s.login}:`) + 1;
    expect(err.message).toContain(`${f}:${line}:3: user ${s.login} exists without`);
    const text = await runCli(["apply", "-f", f], s.env);
    expect(text.stderr).toContain(`${f}:${line}:3: user ${s.login} exists without`);
    expect(err.message).toContain(`user ${s.login} exists without topo's tag topo.${PREFIX} (topo did not create it, or the tag was taken off it)`);
    expect(err.hints.join("\n")).toContain(`set users.${s.login}.adopt: true`);
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(1);
    expect((await api("GET", `/api/users/${s.login}`)).body.tags).toEqual(["management"]);

    // Adopted: marked, its password and rights set from the file.
    const adopt = await runCli(["apply", "-f", s.file({ adopt: true })], s.env);
    expect(adopt.code, adopt.stderr).toBe(0);
    expect((await api("GET", `/api/users/${s.login}`)).body.tags).toEqual([`topo.${PREFIX}`]);
    expect(await canLogIn(s.async, s.login, s.env.UT_LOGIN_PASSWORD)).toBe("ok");

    // Dropped from the file: a guarded delete. A worker connected as it is named: RabbitMQ
    // closes its connection with the user, and it cannot log in again.
    const worker = await connect(s.async, s.login, s.env.UT_LOGIN_PASSWORD);
    // The management API lists a connection at its next statistics round (every 5 s).
    for (let i = 0; i < 40 && !((await api("GET", "/api/connections?columns=user")).body as { user: string }[]).some((c) => c.user === s.login); i++) await new Promise((r) => setTimeout(r, 500));
    // A new password under it: the worker stays connected, and its next login is refused (plan
    // said only "(password)").
    const rotated = await runCli(["plan", "-f", s.file({ adopt: true }), "--json"], { ...s.env, UT_LOGIN_PASSWORD: "rotated-9pass" });
    const update = (JSON.parse(rotated.stdout) as { clusters: { actions: { op: string; kind: string; name: string; connections?: number; notes?: string[] }[] }[] }).clusters
      .flatMap((c) => c.actions)
      .find((a) => a.op === "update" && a.kind === "user" && a.name === s.login);
    expect(update?.connections, rotated.stdout).toBe(1);
    expect(update?.notes).toEqual([
      "1 connection is open as this user now (workers or clients, on any vhost): it stays open, but every login after the apply with the old password (a reconnect after a network blip or a broker restart, a new worker) is refused; give the workers the new password as the apply runs",
    ]);
    const plan = await runCli(["plan", "-f", s.file({ drop: true })], s.env);
    expect(plan.stdout).toContain(`- delete user ${s.login}\n      ! 1 connection is open as this user now (workers or clients, on any vhost): RabbitMQ closes it when it deletes the user, and it cannot log in again; move them to another user first`);
    await worker.close().catch(() => undefined);
    const refused = await runCli(["apply", "-f", s.file({ drop: true })], s.env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("without --allow-destructive");
    expect((await api("GET", `/api/users/${s.login}`)).status).toBe(200);
    // This step once failed in a CI dry run: the async cluster's DELETE of the login's permissions
    // raced with the sync cluster's DELETE of the user, and RabbitMQ answered 500 (faults.test.ts,
    // "a permission delete answered 500"). stderr stays in the message for any next failure.
    const dropped = await runCli(["apply", "-f", s.file({ drop: true }), "--allow-destructive"], s.env);
    expect(dropped.code, dropped.stderr).toBe(0);
    expect((await api("GET", `/api/users/${s.login}`)).status).toBe(404);
  });

  // Either file of two prefixes deleted a user that carried both markers, and one that listed it
  // took it over, stripping the other's marker and rewriting its rights.
  it("a user that carries another prefix's marker beside the file's is never deleted or taken over, adopt or not", async () => {
    const s = setup();
    // Applied once, then the other topology's marker added beside this one's, and its rights.
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
    await api("PUT", `/api/users/${s.login}`, { password: "other-topology", tags: `topo.${PREFIX},topo.${PREFIX}other` });
    await api("PUT", `/api/permissions/${vh(s.async)}/${s.login}`, { configure: "", write: "", read: "^utotherlogin\\.async$" });
    const listed = await runCli(["apply", "-f", s.file({ adopt: true }), "--allow-destructive", "--json"], s.env);
    expect(listed.code).toBe(1);
    expect(JSON.parse(listed.stdout.slice(listed.stdout.lastIndexOf('{"error"'))).error.message).toContain(
      `user ${s.login} exists and belongs to another topology as well (it carries topo.${PREFIX}other beside topo.${PREFIX}); topo does not take it over`,
    );
    const dropped = await runCli(["apply", "-f", s.file({ drop: true }), "--allow-destructive"], s.env);
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(dropped.stdout).not.toContain(`delete user ${s.login}`);
    const user = (await api("GET", `/api/users/${s.login}`)).body as { tags: string[] };
    expect([...user.tags].sort()).toEqual([`topo.${PREFIX}`, `topo.${PREFIX}other`]);
    expect((await api("GET", `/api/permissions/${vh(s.async)}/${s.login}`)).body).toMatchObject({ read: "^utotherlogin\\.async$" });
  });

  it("a user another client creates after apply checked it is not overwritten: apply stops, naming it", async () => {
    const s = setup();
    // Between apply's check under its lock (no such user) and its PUT, someone makes the user.
    // Both clusters (one broker) PUT the user, at about the same moment: each of their PUTs waits
    // until the user is made by hand. Only the first was held once, and the other cluster's, passed
    // on at once, could make the user first (2 ms ahead in one CI run): the PUT by hand then found
    // it, and the test waited for ever on an answer it never sent.
    let byHand: Promise<{ status: number; hash: string }> | undefined;
    const proxy = await managementProxy({
      answer: (req, res) => {
        if (req.method !== "PUT" || req.url !== `/api/users/${s.login}`) return false;
        byHand ??= (async () => {
          const { status } = await api("PUT", `/api/users/${s.login}`, { password: "by-hand", tags: "management" });
          return { status, hash: (await api("GET", `/api/users/${s.login}`)).body.password_hash as string };
        })();
        const made = byHand;
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", async () => {
          await made;
          // topo's PUT goes on as it came, its headers included.
          const ifNoneMatch = req.headers["if-none-match"];
          const r = await api("PUT", `/api/users/${s.login}`, JSON.parse(Buffer.concat(chunks).toString("utf8")), typeof ifNoneMatch === "string" ? { "if-none-match": ifNoneMatch } : {});
          res.writeHead(r.status).end();
        });
        return true;
      },
    });
    try {
      const r = await runCli(["apply", "-f", s.file({ management: proxy.url })], s.env);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toContain(`user ${s.login} was created by another client after this apply checked it (with tags management); topo did not overwrite it`);
    } finally {
      proxy.close();
    }
    expect(byHand).toBeDefined();
    const { status, hash: made } = await (byHand as NonNullable<typeof byHand>);
    expect(status).toBe(201);
    const user = (await api("GET", `/api/users/${s.login}`)).body as { tags: string[]; password_hash: string };
    expect({ tags: user.tags, hash: user.password_hash }).toEqual({ tags: ["management"], hash: made });
  });

  it("a dropped user loses its permission before its topic permissions: never free to publish any routing key", async () => {
    const s = setup();
    expect((await runCli(["apply", "-f", s.file()], s.env)).code).toBe(0);
    // The requests go through a proxy that records them.
    const seen: string[] = [];
    const proxy = await managementProxy({
      answer: (req) => {
        seen.push(`${req.method} ${decodeURIComponent((req.url ?? "").split("?")[0] ?? "")}`);
        return false;
      },
    });
    try {
      const r = await runCli(["apply", "-f", s.file({ drop: true, management: proxy.url }), "--allow-destructive"], s.env);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      proxy.close();
    }
    const permission = seen.indexOf(`DELETE /api/permissions/${s.async}/${s.login}`);
    const topic = seen.indexOf(`DELETE /api/topic-permissions/${s.async}/${s.login}`);
    expect(permission).toBeGreaterThanOrEqual(0);
    expect(topic).toBeGreaterThan(permission);
  });

  it("says that adopting a user another vhost uses changes its password there too, leaves its rights there, and never deletes it", async () => {
    const s = setup();
    const other = uniqueName("uother");
    vhosts.push(other);
    expect((await api("PUT", `/api/vhosts/${vh(other)}`)).status).toBe(201);
    await api("PUT", `/api/users/${s.login}`, { password: "by-hand", tags: "management" });
    await api("PUT", `/api/permissions/${vh(other)}/${s.login}`, { configure: ".*", write: ".*", read: ".*" });

    const plan = await runCli(["plan", "-f", s.file({ adopt: true })], s.env);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(`~ update user ${s.login} (tags, password)`);
    expect(plan.stdout).toContain(
      `warning: user ${s.login} also has permissions on vhost ${other}, which this file does not manage: its new password and tags apply there too (a user is the broker's, not the vhost's), and whatever connects there as ${s.login} must then use the file's password`,
    );
    const json = JSON.parse((await runCli(["plan", "-f", s.file({ adopt: true }), "--json"], s.env)).stdout);
    expect(json.clusters.flatMap((c: any) => c.warnings).join("\n")).toContain(`user ${s.login} also has permissions on vhost ${other}`);

    expect((await runCli(["apply", "-f", s.file({ adopt: true })], s.env)).code).toBe(0);
    expect(await canLogIn(other, s.login, "by-hand")).not.toBe("ok");
    expect(await canLogIn(other, s.login, s.env.UT_LOGIN_PASSWORD)).toBe("ok");
    expect((await api("GET", `/api/permissions/${vh(other)}/${s.login}`)).body).toMatchObject({ configure: ".*", write: ".*", read: ".*" });
    // Once applied, nothing changes: nothing to warn about.
    const again = await runCli(["plan", "-f", s.file({ adopt: true }), "--detailed-exitcode"], s.env);
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).not.toContain("warning");

    // Dropped from the file: its rights on the file's vhosts go, the user stays for the other vhost.
    const dropped = await runCli(["apply", "-f", s.file({ drop: true }), "--allow-destructive"], s.env);
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(dropped.stdout).toContain(`left alone: user ${s.login} carries topo's tag but has permissions on vhost ${other} that this file does not manage`);
    expect(dropped.stdout).not.toContain(`- delete user ${s.login}`);
    expect(await canLogIn(other, s.login, s.env.UT_LOGIN_PASSWORD)).toBe("ok");
    expect(await canLogIn(s.sync, s.login, s.env.UT_LOGIN_PASSWORD)).not.toBe("ok");
  });

  // A topic permission is a right on its vhost too: a marked user whose only rights outside the
  // file were topic permissions was deleted, and them with it (and an apply writes a user's topic
  // permissions before its permissions, so another file's user part-way through looks so).
  it("leaves alone a dropped user with topic permissions on a vhost the file does not manage, and keeps them", async () => {
    const s = setup();
    const other = uniqueName("ut-topic");
    vhosts.push(other);
    expect((await api("PUT", `/api/vhosts/${vh(other)}`)).status).toBe(201);
    expect((await runCli(["apply", "-f", s.file({ pay: true })], s.env)).code).toBe(0);
    const topic = { exchange: "amq.topic", write: "^other\\.", read: "^other\\." };
    expect((await api("PUT", `/api/topic-permissions/${vh(other)}/${s.pay}`, topic)).status).toBeLessThan(300);
    const dropped = await runCli(["apply", "-f", s.file(), "--allow-destructive"], s.env);
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(dropped.stdout).toContain(`left alone: user ${s.pay} carries topo's tag but has permissions on vhost ${other} that this file does not manage`);
    expect(dropped.stdout).not.toContain(`- delete user ${s.pay}`);
    expect((await api("GET", `/api/users/${s.pay}`)).status).toBe(200);
    expect((await api("GET", `/api/topic-permissions/${vh(other)}/${s.pay}`)).body).toEqual([expect.objectContaining(topic)]);
    await api("DELETE", `/api/users/${s.pay}`);
  });

  // A user's rights only on the async cluster (utpay has no sync queue). The sync cluster, first
  // of the broker, was the only one to delete users: `apply --cluster async` of a file that
  // dropped it revoked its rights and kept it, and from then on every plan left it alone as a
  // user with rights nowhere ("another apply may be creating it"): never deleted.
  it("deletes a dropped user whose rights were on one cluster, also when that cluster is applied alone", async () => {
    const s = setup();
    expect((await runCli(["apply", "-f", s.file({ pay: true })], s.env)).code).toBe(0);
    expect((await api("GET", `/api/users/${s.pay}`)).status).toBe(200);
    const alone = await runCli(["apply", "-f", s.file(), "--cluster", "async", "--allow-destructive"], s.env);
    expect(alone.code, alone.stderr).toBe(0);
    expect(alone.stdout).toContain(`- delete user ${s.pay}`);
    expect((await api("GET", `/api/users/${s.pay}`)).status).toBe(404);
    const after = await runCli(["plan", "-f", s.file(), "--detailed-exitcode"], s.env);
    expect(after.code, after.stdout + after.stderr).toBe(0);
    // Other runs of this file on the shared broker may hold users of prefix ut: only this one's counts.
    expect(after.stdout).not.toContain(s.pay);

    // Both clusters plan the delete when both are applied: the second DELETE finds it gone.
    expect((await runCli(["apply", "-f", s.file({ pay: true })], s.env)).code).toBe(0);
    const both = await runCli(["apply", "-f", s.file(), "--allow-destructive"], s.env);
    expect(both.code, both.stderr).toBe(0);
    expect((await api("GET", `/api/users/${s.pay}`)).status).toBe(404);
    expect((await runCli(["plan", "-f", s.file(), "--detailed-exitcode"], s.env)).code).toBe(0);
  });

  // Users are the broker's, and clusters share them by management URL: two clusters on one
  // broker reached through two host names each took the other's vhost for another topology's,
  // said so ("left alone ... a vhost this file does not manage"), and a user dropped from the
  // file was never deleted.
  it("refuses two clusters on one broker that reach its users through different management URLs", async () => {
    const s = setup();
    const base = new URL(broker().mgmtBase);
    const other = new URL(base.toString());
    other.hostname = base.hostname === "localhost" ? "127.0.0.1" : "localhost";
    const file = s.file({ asyncManagement: other.origin });
    for (const cmd of [["plan", "--detailed-exitcode"], ["apply", "--allow-destructive"]]) {
      const r = await runCli([...cmd, "-f", file], s.env);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stderr).toContain("clusters sync and async are one broker");
      expect(r.stderr).toContain(base.origin);
      expect(r.stderr).toContain(other.origin);
      expect(r.stderr).toMatch(/nothing was changed/);
    }
    const json = await runCli(["plan", "-f", file, "--json"], s.env);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: "endpoint_mismatch" } });
    expect((await api("GET", `/api/vhosts/${vh(s.sync)}`)).status).toBe(404);
    expect((await api("GET", `/api/users/${s.edge}`)).status).toBe(404);
  });

  // A CI lint job holds no production secrets: the commands that never use a user's password run
  // without its variable, and say which is missing; those that need it refuse, naming the place.
  it("validate, graph, route (also --live), export celery and import need no user's password; plan, apply and export definitions refuse without it", async () => {
    const s = setup();
    const f = s.file();
    expect((await runCli(["apply", "-f", f], s.env)).code).toBe(0);
    const missing = [
      `warning: users.${s.edge}.password: \${UT_EDGE_PASSWORD} is not set; plan, apply and export definitions need it`,
      `warning: users.${s.login}.password: \${UT_LOGIN_PASSWORD} is not set; plan, apply and export definitions need it`,
    ];
    for (const args of [["validate"], ["graph"], ["route", "utlogin.sync.register"], ["route", "utlogin.sync.register", "--live"], ["export", "celery", "--cluster", "sync"]]) {
      const r = await runCli([...args, "-f", f]);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      for (const line of missing) expect(r.stderr, args.join(" ")).toContain(line);
      expect(r.stdout).not.toMatch(/password variable not set/);
    }
    // A variable set but empty (a CI secret that is missing) is said as such, not as unset.
    const empty = await runCli(["validate", "-f", f], { UT_EDGE_PASSWORD: "" });
    expect(empty.code).toBe(0);
    expect(empty.stderr).toContain(`warning: users.${s.edge}.password: \${UT_EDGE_PASSWORD} is set but empty; plan, apply and export definitions need it`);
    expect(empty.stderr).toContain(`warning: users.${s.login}.password: \${UT_LOGIN_PASSWORD} is not set; plan, apply and export definitions need it`);
    // import reads only the file's clusters, and writes each user's password as a variable of its own.
    const imported = await runCli(["import", "-f", f]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).not.toMatch(/UT_(EDGE|LOGIN)_PASSWORD/);
    expect(imported.stdout).toContain(`  ${s.login}:\n    password: \${${s.login.toUpperCase().replace(/-/g, "_")}_PASSWORD}`);
    for (const args of [["plan"], ["apply"], ["export", "definitions", "--cluster", "sync"]]) {
      const r = await runCli([...args, "-f", f]);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(/:\d+:\d+: environment variable UT_LOGIN_PASSWORD is not set/);
    }
    // Nor a cluster URL's password (docs/ci.md's lint step), where the commands never connect.
    const b = broker();
    const viaVar = writeFile("topology.yaml", readFileSync(f, "utf8").replaceAll(`${b.user}:${encodeURIComponent(b.password)}@`, `${b.user}:\${UT_URL_PASSWORD}@`));
    expect(readFileSync(viaVar, "utf8")).toContain("${UT_URL_PASSWORD}@");
    for (const args of [["validate"], ["graph"], ["route", "utlogin.sync.register"], ["export", "celery", "--cluster", "sync"]]) {
      const r = await runCli([...args, "-f", viaVar]);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stderr).toContain("warning: clusters.sync.url: ${UT_URL_PASSWORD} is not set; plan, apply, import and route --live connect with it");
      expect(r.stdout + r.stderr).not.toMatch(/topo-variable-not-set/);
    }
    for (const args of [["import"], ["route", "utlogin.sync.register", "--live"], ["plan"]]) {
      const r = await runCli([...args, "-f", viaVar]);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(/clusters\.sync\.url: \$\{UT_URL_PASSWORD\} is not set|environment variable UT_URL_PASSWORD is not set/);
    }
  });

  it("plans as a monitoring user (users not compared, said), and apply as one refuses before writing", async () => {
    const s = setup();
    const mon = await appliedWithMonitor(s, "monitoring");
    const text = readFileSync(s.file(), "utf8").replace(/amqp:\/\/[^@]+@/g, `amqp://${mon}:monitor-pass-1@`);
    const f = writeFile("topology.yaml", text);
    const plan = await runCli(["plan", "-f", f], s.env);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain(`! warning: users and permissions not compared: the management user ${mon} may not list users (it needs the administrator tag)`);
    // The last line, what a CI log shows, says it too: "No changes." would be untrue of the users.
    expect(plan.stdout.trimEnd().split("\n").at(-1)).toBe(`No changes in what plan compared; not compared: users and permissions (see "! warning" above).`);
    const apply = await runCli(["apply", "-f", f, "--json"], s.env);
    expect(apply.code).toBe(1);
    expect(JSON.parse(apply.stdout).error.code).toBe("permission_denied");

    // A saved plan without the users would be refused by every apply as stale (an administrator
    // sees user changes the plan lacks, and "the broker's objects changed" when nothing had), and
    // planning again as the same user would make the same plan: plan -o refuses at once, and says why.
    const out = `${f}.plan.json`;
    const saved = await runCli(["plan", "-f", f, "-o", out, "--json"], s.env);
    expect(saved.code).toBe(1);
    const e = JSON.parse(saved.stdout).error;
    expect(e.code).toBe("permission_denied");
    expect(e.message).toContain(`cannot save a plan of the file's users: the management user ${mon} may not list users (it needs the administrator tag)`);
    expect(e.hints.join("\n")).toMatch(/plan -o with a user that has the administrator tag/);
    expect(() => readFileSync(out)).toThrow();
  });

  it("a users section that grants no one rights (users: {}) still manages the broker's users: a monitoring user's plan says they were not compared, and apply refuses", async () => {
    const s = setup();
    // policymaker: every other write of this file would be allowed to it.
    const mon = await appliedWithMonitor(s, "monitoring,policymaker");
    const dropped = readFileSync(s.file(), "utf8").replace(/\nusers:\n[\s\S]*$/, "\nusers: {}\n");
    // As an administrator: the file deletes both users it marked.
    const admin = await runCli(["plan", "-f", writeFile("topology.yaml", dropped)], s.env);
    expect(admin.stdout).toContain(`- delete user ${s.edge}`);
    expect(admin.stdout).toContain(`- delete user ${s.login}`);
    // As a monitoring user, who cannot list users: "No changes." was untrue, and apply said the broker matched the file.
    const f = writeFile("topology.yaml", dropped.replace(/amqp:\/\/[^@]+@/g, `amqp://${mon}:monitor-pass-1@`));
    const plan = await runCli(["plan", "-f", f], s.env);
    expect(plan.stdout).toContain(`! warning: users and permissions not compared: the management user ${mon} may not list users (it needs the administrator tag)`);
    expect(plan.stdout.trimEnd().split("\n").at(-1)).toBe(`No changes in what plan compared; not compared: users and permissions (see "! warning" above).`);
    const apply = await runCli(["apply", "-f", f, "--allow-destructive", "--json"], s.env);
    expect(apply.code).toBe(1);
    expect(JSON.parse(apply.stdout).error.code).toBe("permission_denied");
    expect((await api("GET", `/api/users/${s.login}`)).status).toBe(200);
  });

  it("a saved plan without the fingerprint of its users' passwords is refused, not applied with whatever passwords the environment gives", async () => {
    const s = setup();
    const f = s.file();
    const planFile = `${f}.plan.json`;
    expect((await runCli(["plan", "-f", f, "-o", planFile], s.env)).code).toBe(0);
    const saved = JSON.parse(readFileSync(planFile, "utf8"));
    expect(saved.credentials).toBeDefined();
    delete saved.credentials;
    writeResealed(planFile, saved);
    const r = await runCli(["apply", planFile, "--json"], { ...s.env, UT_LOGIN_PASSWORD: "another-secret" });
    expect(r.code).toBe(1);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe("stale_plan");
    expect(e.message).toContain("the passwords of the users");
    expect((await api("GET", `/api/vhosts/${vh(s.sync)}`)).status).toBe(404);
    expect((await api("GET", `/api/users/${s.login}`)).status).toBe(404);
  });

  it("no command prints a password or the broker's hash, and a saved plan refuses other passwords", async () => {
    const s = setup();
    const f = s.file();
    const outputs: CliResult[] = [];
    const run = async (args: string[], env = s.env) => {
      const r = await runCli(args, env);
      outputs.push(r);
      return r;
    };
    await run(["validate", "-f", f]);
    await run(["plan", "-f", f]);
    await run(["plan", "-f", f, "--json"]);
    await run(["plan", "-f", f, "--format", "markdown"]);
    expect((await run(["apply", "-f", f, "--verbose"])).code).toBe(0);
    await run(["apply", "-f", f, "--json"]);
    const rotated = { ...s.env, UT_LOGIN_PASSWORD: "rotated-secret-1" };
    const planFile = `${f}.plan.json`;
    await run(["plan", "-f", f, "-o", planFile], rotated);
    await run(["show", planFile]);
    await run(["show", planFile, "--json"]);
    // The environment now gives yet another password: the saved plan is stale.
    const stale = await run(["apply", planFile, "--json"], { ...s.env, UT_LOGIN_PASSWORD: "rotated-secret-2" });
    expect(JSON.parse(stale.stdout).error.code).toBe("stale_plan");
    expect(JSON.parse(stale.stdout).error.message).toContain("the passwords of the users");
    const applied = await run(["apply", planFile], rotated);
    expect(applied.code, applied.stderr).toBe(0);
    await run(["graph", "-f", f]);
    await run(["route", "-f", f, "utlogin.sync.register"]);
    await run(["export", "celery", "-f", f, "--cluster", "sync"]);
    // import writes the users section back, each password as a variable.
    const imported = await run(["import", "-f", f]);
    expect(imported.code).toBe(0);
    const v = (u: string) => `${u.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_PASSWORD`;
    expect(imported.stdout).toContain(`users:\n  ${s.edge}:\n    password: \${${v(s.edge)}}\n    publishes: [ utlogin, utpay, utwallet ]\n  ${s.login}:\n    password: \${${v(s.login)}}\n    consumes: [ utlogin ]\n    publishes: [ utwallet ]\n`);
    // A file that is wrong about a user's password still never shows it.
    await run(["validate", "-f", writeFile("t.yaml", readFileSync(f, "utf8").replace("publishes: all", "publishes: all\n    password_hash: ${UT_EDGE_PASSWORD}"))]);

    const stored = ((await api("GET", `/api/users?columns=name,password_hash`)).body as { name: string; password_hash: string }[])
      .filter((u) => u.name === s.edge || u.name === s.login)
      .map((u) => u.password_hash);
    expect(stored).toHaveLength(2);
    const secrets = [...Object.values(s.env), "rotated-secret-1", "rotated-secret-2", encodeURIComponent(s.env.UT_EDGE_PASSWORD), ...stored];
    for (const r of outputs) expect(secretsIn(r, secrets), `${r.stdout}\n${r.stderr}`).toEqual([]);
    // The saved plan holds neither a password nor a hash.
    const saved = readFileSync(planFile, "utf8");
    expect(secrets.filter((x) => saved.includes(x))).toEqual([]);
  });
});
