// topo import against the real broker: what topo made imports to a file that plans no changes; a
// broker made by hand imports to a file whose comments list exactly what plan then shows; and no
// password reaches any output.

import type { Channel } from "amqplib";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { api, broker, deleteVhost, runCli, suiteUsers, uniqueName, vh, withChannel, writeFile, type CliResult } from "../helpers/broker.js";

const vhosts: string[] = [];
afterEach(async () => {
  await Promise.all(vhosts.splice(0).map(deleteVhost));
});

function pair(): { sync: string; async: string } {
  const sync = uniqueName("isync");
  const async = uniqueName("iasync");
  vhosts.push(sync, async);
  return { sync, async };
}

/** A topology file whose urls read the password from $TOPO_IMPORT_PW, as a real one would. */
function topology(v: { sync: string; async: string }, services: unknown[], user = broker().user): string {
  const b = broker();
  const url = (name: string) => `amqp://${user}:\${TOPO_IMPORT_PW}@${b.host}:${b.amqpPort}/${encodeURIComponent(name)}`;
  const text = [
    "# yaml-language-server: $schema=./schemas/topology.schema.json",
    "version: 1",
    "clusters:",
    "  sync:",
    `    url: ${url(v.sync)}   # the sync cluster`,
    `    management: ${b.mgmtBase}`,
    `  async: { url: "${url(v.async)}", management: "${b.mgmtBase}" }`,
    `services: ${JSON.stringify(services)}`,
    "",
  ].join("\n");
  return writeFile("topology.yaml", text);
}
const ENV = () => ({ TOPO_IMPORT_PW: encodeURIComponent(broker().password) });
const out = (file: string) => join(dirname(file), "imported.yaml");

/** The first line of every action plan prints, per cluster, in order. */
function planLines(stdout: string): string[] {
  return stdout.split("\n").filter((l) => /^ {2}(\+ create|- delete|~ update|-\/\+ replace) /.test(l)).map((l) => l.trim());
}
/** An imported file's comments as one line of prose, so that matches do not depend on wrapping. */
function prose(text: string): string {
  return text.split("\n").filter((l) => l.startsWith("#")).map((l) => l.replace(/^#\s*/, "")).join(" ");
}
/** The same lines as an imported file's comments list them. */
function commentLines(text: string): string[] {
  return text.split("\n").filter((l) => /^# {3}(\+ create|- delete|~ update|-\/\+ replace) /.test(l)).map((l) => l.slice(4));
}

describe("import of what topo made", () => {
  it("writes a file that keeps the clusters as written and plans no changes", async () => {
    const v = pair();
    const file = topology(v, [
      "mplogin",
      "mpwallet",
      { name: "mppayment", sync: false, async: { arguments: { "x-max-length": 100000, "x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "123" } } },
      { name: "mpquorum", sync: { type: "quorum", arguments: { "x-delivery-limit": 5 } } },
    ]);
    const applied = await runCli(["apply", "-f", file], ENV());
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);

    const imported = await runCli(["import", "-f", file, "-o", out(file)], ENV());
    expect(imported.stderr).toMatch(/^Imported 4 services \(7 queues\) from clusters sync, async into .*imported\.yaml\. topo plan on it shows no changes\.$/m);
    expect(imported.code).toBe(0);
    expect(imported.stdout).toBe("");
    const text = readFileSync(out(file), "utf8");
    expect(text.split("\n")[0]).toBe("# yaml-language-server: $schema=./schemas/topology.schema.json");
    expect(text).toContain("# Everything in topo's namespace is described as the broker holds it");
    // apply's mark is topo's own, not something the file leaves out.
    expect((await api("GET", `/api/exchanges/${vh(v.async)}/topo.mp.generation`)).status).toBe(200);
    expect(text).not.toContain("generation");
    // Minimal: plain names where a service matches the defaults, only the differences elsewhere.
    expect(text).toContain("  sync: { cluster: sync, durable: false, mirrored: true }\n");
    expect(text).toContain("  - mplogin\n");
    expect(text).toContain("  - mpwallet\n");
    expect(text).toMatch(/ {2}- name: mppayment\n {4}sync: false\n/);
    expect(text).toContain("x-max-length: 100000");
    expect(text).toContain('x-dead-letter-routing-key: "123"');
    expect(text).toMatch(/ {2}- name: mpquorum\n {4}sync: \{ type: quorum, arguments: \{ x-delivery-limit: 5 \} \}\n/);
    // The clusters exactly as the user wrote them: the ${VAR} reference, not the password.
    const back = parseDocument(text).toJS();
    const original = parseDocument(readFileSync(file, "utf8")).toJS();
    expect(back.clusters).toEqual(original.clusters);
    expect(text).toContain("# the sync cluster");

    expect((await runCli(["validate", "-f", out(file)], ENV())).code).toBe(0);
    const plan = await runCli(["plan", "-f", out(file), "--detailed-exitcode"], ENV());
    expect(plan.stdout.trim().endsWith("No changes.")).toBe(true);
    expect(plan.code).toBe(0);

    // -o does not overwrite unless told to.
    const again = await runCli(["import", "-f", file, "-o", out(file)], ENV());
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/imported\.yaml exists; .*\n {2}hint: pass --force/);
    expect((await runCli(["import", "-f", file, "-o", out(file), "--force"], ENV())).code).toBe(0);
  });

  it("keeps the service of a replace cut after its queue's delete, so that apply of the file moves the messages back rather than delete them", async () => {
    const v = pair();
    const file = topology(v, ["mpkeep", { name: "mpgone", sync: false }]);
    expect((await runCli(["apply", "-f", file], ENV())).code).toBe(0);
    // What a replace cut after its delete leaves: the holding queue, with the queue's binding and its messages.
    await withChannel(v.async, async (ch) => {
      await ch.assertQueue("topo.hold.mpgone.async", { durable: true, arguments: { "x-queue-type": "classic" } });
      await ch.bindQueue("topo.hold.mpgone.async", "mpgone", "mpgone.async.#");
      for (const id of ["t1", "t2", "t3"]) ch.sendToQueue("topo.hold.mpgone.async", Buffer.from(id), { persistent: true, messageId: id });
      await ch.deleteQueue("mpgone.async");
    });
    const imported = await runCli(["import", "-f", file, "-o", out(file)], ENV());
    expect(imported.code, imported.stderr).toBe(0);
    const text = readFileSync(out(file), "utf8");
    expect(parseDocument(text).toJS().services).toContainEqual({ name: "mpgone", sync: false });
    expect(prose(text)).toContain(
      "a replace by topo apply was interrupted after it deleted queue mpgone.async, and its messages wait in topo.hold.mpgone.async: the broker no longer says what the replace was to make of the queue, so the file lists it as its kind's plain queue; topo apply re-creates it so and moves the messages back",
    );
    expect(prose(text)).not.toMatch(/delete queue topo\.hold/);
    // The file's apply finishes the replace (its queue gone, that needs no --allow-destructive).
    const applied = await runCli(["apply", "-f", out(file)], ENV());
    expect(applied.code, applied.stderr).toBe(0);
    const ids = await withChannel(v.async, async (ch) => {
      const got: string[] = [];
      for (let m = await ch.get("mpgone.async", { noAck: true }); m; m = await ch.get("mpgone.async", { noAck: true })) got.push(String(m.properties.messageId));
      return got.sort();
    });
    expect(ids).toEqual(["t1", "t2", "t3"]);
    expect((await api("GET", `/api/queues/${vh(v.async)}/topo.hold.mpgone.async`)).status).toBe(404);
  });

  it("says what plan of the file will report degraded (an operator policy capping its queues), rather than that it plans no changes and nothing else", async () => {
    const v = pair();
    const file = topology(v, [{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file], ENV())).code).toBe(0);
    expect((await api("PUT", `/api/operator-policies/${vh(v.async)}/op-cap`, { pattern: "^mp", definition: { "max-length": 1000 }, "apply-to": "queues" })).status).toBeLessThan(300);
    const imported = await runCli(["import", "-f", file, "-o", out(file)], ENV());
    expect(imported.code, imported.stderr).toBe(0);
    // The operator policy is left alone too (a file holds none), and listed as such.
    expect(imported.stderr).toMatch(/topo plan on it shows no changes, and 1 degraded \(plan --detailed-exitcode exits 2 while it lasts\); 1 object it cannot describe is left alone \(listed at its top\)\./);
    const text = prose(readFileSync(out(file), "utf8"));
    expect(text).toContain("topo plan on this file plans no changes, and reports the degraded state listed below.");
    expect(text).toMatch(/so topo plan --detailed-exitcode exits 2 until they are resolved on the broker: cluster async: ! degraded: operator policy "op-cap" sets max-length 1000/);
    expect(text).toContain("operator policy op-cap (pattern ^mp, apply-to queues, priority 0, max-length=1000): an operator policy; it applies to 1 queue of this file (mplogin.async).");
    const plan = await runCli(["plan", "-f", out(file), "--detailed-exitcode"], ENV());
    expect(plan.stdout).toMatch(/! degraded: operator policy "op-cap" sets max-length 1000/);
    expect(plan.code).toBe(2);
  });

  // Import reads the management API alone; plan logs in over AMQP. Of a vhost closed to every
  // connection it said "topo plan on it shows no changes", and plan then failed with 530.
  it("says of a vhost that accepts no connections that plan on the file fails at its login, and what to do", async () => {
    const v = pair();
    const file = topology(v, [{ name: "mplogin", sync: false }]);
    expect((await runCli(["apply", "-f", file], ENV())).code).toBe(0);
    expect((await api("PUT", `/api/vhost-limits/${vh(v.async)}/max-connections`, { value: 0 })).status).toBeLessThan(300);
    const imported = await runCli(["import", "-f", file, "-o", out(file)], ENV());
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toContain("topo plan on it fails at its login to cluster async, whose vhost accepts no connections (see the note), and then shows no changes.");
    const note = `cluster async: vhost "${v.async}" accepts no connections (max-connections 0), so topo plan and apply on this file fail at their login to it (530 NOT_ALLOWED), and so does every worker and publisher; once it takes connections (rabbitmqctl set_vhost_limits -p ${v.async} '{"max-connections": -1}', where -1 is no limit), topo plan on it plans as said here.`;
    expect(imported.stderr).toContain(`note: ${note}`);
    expect(prose(readFileSync(out(file), "utf8"))).toContain(note);
    // As said: plan fails at its login, and once the vhost takes connections plans no changes.
    const refused = await runCli(["plan", "-f", out(file)], ENV());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("530 NOT_ALLOWED");
    expect((await api("PUT", `/api/vhost-limits/${vh(v.async)}/max-connections`, { value: -1 })).status).toBeLessThan(300);
    const plan = await runCli(["plan", "-f", out(file), "--detailed-exitcode"], ENV());
    expect(plan.code, plan.stdout).toBe(0);
  });

  it("reads one cluster of the file with --cluster, into a file of that cluster only", async () => {
    const v = pair();
    const file = topology(v, ["mplogin", { name: "mpwallet", sync: false }]);
    expect((await runCli(["apply", "-f", file], ENV())).code).toBe(0);
    const r = await runCli(["import", "-f", file, "--cluster", "sync"], ENV());
    expect(r.code).toBe(0);
    const doc = parseDocument(r.stdout).toJS();
    expect(Object.keys(doc.clusters)).toEqual(["sync"]);
    expect(doc.services).toEqual([{ name: "mplogin", async: false }]);
    const cut = writeFile("sync-only.yaml", r.stdout);
    const plan = await runCli(["plan", "-f", cut, "--detailed-exitcode"], ENV());
    expect(plan.code).toBe(0);
    const unknown = await runCli(["import", "-f", file, "--cluster", "nope"], ENV());
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no cluster named "nope" in .*\n {2}hint: clusters in the file: sync, async/);
  });

  it("adopts brokers with no file: --url, the password from the environment, clusters named by their queues", async () => {
    const v = pair();
    const file = topology(v, ["mplogin", { name: "mppayment", sync: false, async: { arguments: { "x-max-length": 7 } } }]);
    expect((await runCli(["apply", "-f", file], ENV())).code).toBe(0);
    const b = broker();
    const url = (name: string) => `amqp://${b.user}@${b.host}:${b.amqpPort}/${encodeURIComponent(name)}`;
    const env = { RABBITMQ_PASSWORD: encodeURIComponent(b.password) };
    const r = await runCli(["import", "--url", url(v.async), "--url", url(v.sync), "--management", b.mgmtBase], env);
    expect(r.stderr).toMatch(/^Imported 2 services \(3 queues\) from clusters async, sync\./m);
    expect(r.code).toBe(0);
    const doc = parseDocument(r.stdout).toJS();
    expect(doc.clusters).toEqual({
      async: { url: `amqp://${b.user}:\${RABBITMQ_PASSWORD}@${b.host}:${b.amqpPort}/${encodeURIComponent(v.async)}`, management: b.mgmtBase },
      sync: { url: `amqp://${b.user}:\${RABBITMQ_PASSWORD}@${b.host}:${b.amqpPort}/${encodeURIComponent(v.sync)}`, management: b.mgmtBase },
    });
    const adopted = writeFile("topology.yaml", r.stdout);
    const plan = await runCli(["plan", "-f", adopted, "--detailed-exitcode"], env);
    expect(plan.stdout.trim().endsWith("No changes.")).toBe(true);
    expect(plan.code).toBe(0);

    const noPassword = await runCli(["import", "--url", url(v.sync)], { RABBITMQ_PASSWORD: "" });
    expect(noPassword.code).toBe(1);
    expect(noPassword.stderr).toMatch(/is read from \$RABBITMQ_PASSWORD, which is not set\n {2}hint: export RABBITMQ_PASSWORD=/);
    // A password in the variable that a URL would need encoded: the URL shown has no "#", so the
    // hint says where it is, without the value.
    const unencoded = await runCli(["import", "--url", url(v.sync), "--password-env", "TOPO_TEST_IMPORT_PW"], { TOPO_TEST_IMPORT_PW: "pa#ss" });
    expect(unencoded.code).toBe(1);
    expect(unencoded.stderr).toContain(`hint: the password in $TOPO_TEST_IMPORT_PW goes into the URL as it is: percent-encode it there ("#" as %23`);
    expect(unencoded.stderr).not.toContain("pa#ss");
    // Not beside a problem of the URL's own (rv2: a query, a scheme, a vhost got it too).
    const query = await runCli(["import", "--url", `${url(v.sync)}?x=1`, "--password-env", "TOPO_TEST_IMPORT_PW"], { TOPO_TEST_IMPORT_PW: "plain" });
    expect(query.code).toBe(1);
    expect(query.stderr).toMatch(/query and fragment are not supported/);
    expect(query.stderr).not.toContain("goes into the URL as it is");
    const missing = await runCli(["import", "--url", url(uniqueName("missing")), "--management", b.mgmtBase], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/vhost "topo-test-missing-[0-9a-f]+" does not exist at .*; there is nothing to import\n {2}hint: /);
  });
});

describe("import of a broker made by hand", () => {
  it("lists what the file cannot describe, and plan shows exactly those changes", async () => {
    const v = pair();
    for (const name of [v.sync, v.async]) expect([201, 204]).toContain((await api("PUT", `/api/vhosts/${vh(name)}`, {})).status);
    // What kombu workers declare: Queue('<s>.sync', Exchange('<s>', 'topic'), routing_key='<s>.sync.#', durable=False).
    const worker = async (ch: Channel, svc: string, kind: "sync" | "async", q: Record<string, unknown> = {}) => {
      await ch.assertExchange(svc, "topic", { durable: true, autoDelete: false });
      await ch.assertQueue(`${svc}.${kind}`, { durable: kind === "async", ...q });
      await ch.bindQueue(`${svc}.${kind}`, svc, `${svc}.${kind}.#`);
    };
    await withChannel(v.sync, async (ch) => {
      await worker(ch, "mplogin", "sync");
      await worker(ch, "mpwallet", "sync");
      await worker(ch, "mpauto", "sync", { autoDelete: true });
      await ch.assertExchange("mpold", "topic", { durable: true });
      await ch.assertQueue("mpnoex.sync", { durable: false });
      // Outside the namespace, and a user's binding into a service queue.
      await ch.assertExchange("billing", "direct", { durable: true });
      await ch.assertQueue("billing.jobs", { durable: true });
      await ch.bindQueue("billing.jobs", "billing", "job");
      await ch.bindQueue("mplogin.sync", "billing", "login");
    });
    await withChannel(v.async, async (ch) => {
      await worker(ch, "mplogin", "async");
      await worker(ch, "mpwallet", "async");
      await worker(ch, "mppayment", "async", { arguments: { "x-max-length": 100000, "x-custom": "k" } });
      await worker(ch, "mpquorum", "async", { arguments: { "x-queue-type": "quorum" } });
    });
    const policy = (name: string, body: unknown) => api("PUT", `/api/policies/${vh(v.sync)}/${name}`, body);
    expect([201, 204]).toContain((await policy("ha-sync", { pattern: "^mp.*\\.sync$", definition: { "ha-mode": "all", "ha-sync-mode": "automatic" }, "apply-to": "queues", priority: 0 })).status);
    expect([201, 204]).toContain((await policy("user-limits", { pattern: "^billing", definition: { "max-length": 10 }, "apply-to": "queues", priority: 1 })).status);

    const file = topology(v, []);
    const imported = await runCli(["import", "-f", file, "-o", out(file)], ENV());
    expect(imported.stderr).toMatch(/Imported 6 services \(8 queues\) .* topo plan on it shows 8 changes the file cannot avoid; 3 objects it cannot describe are left alone \(listed at its top\)\./);
    expect(imported.code).toBe(0);
    const text = readFileSync(out(file), "utf8");

    const expected = [
      "+ create policy topo.mp.mirror.sync (pattern ^(?:topo\\.hold\\.)?mp[a-z_]+\\.sync$, ha-mode=all, ha-sync-mode=automatic, priority 0)",
      "+ create exchange mpnoex (topic, durable)",
      "- delete exchange mpold",
      // Each vhost holds the file's objects, made by hand, without the prefix's apply mark.
      "+ create exchange topo.mp.generation (fanout, durable, internal)",
      "-/+ replace queue mpauto.sync",
      "+ create binding mpnoex -> mpnoex.sync [mpnoex.sync.#]",
      "+ create exchange topo.mp.generation (fanout, durable, internal)",
      "-/+ replace queue mppayment.async",
    ];
    expect(commentLines(text)).toEqual(expected);
    const plan = await runCli(["plan", "-f", out(file), "--detailed-exitcode"], ENV());
    expect(plan.code).toBe(2);
    expect(planLines(plan.stdout)).toEqual(expected);
    expect(plan.stdout).toContain("because autoDelete: true -> false");
    expect(plan.stdout).toContain('because arguments.x-custom: "k" -> (none)');

    // Each with its reason, and what topo leaves alone.
    const said = prose(text);
    expect(said).toMatch(/why: the user's policy ha-sync \(mpauto\.sync, mplogin\.sync, mpnoex\.sync, mpwallet\.sync\) mirrors sync queues/);
    expect(said).toMatch(/why: the file cannot describe auto-delete queues/);
    expect(said).toMatch(/why: argument x-custom="k" cannot be written in the file \(topo does not know argument x-custom\)/);
    expect(said).toMatch(/why: no queue of service mpold is on this cluster in the file/);
    expect(said).toMatch(/policy user-limits \(pattern \^billing, apply-to queues, priority 1, max-length=10\): a user's policy\./);
    expect(said).toMatch(/binding billing -> mplogin\.sync \[login\]: its source is not a service's exchange/);
    expect(said).toMatch(/Outside topo's namespace \(prefix "mp"\), so not in this file; topo never touches them: cluster sync: exchanges billing; queues billing\.jobs/);
    // What it can describe, it describes: types and the number kept, quorum as a type.
    const doc = parseDocument(text).toJS();
    expect(doc.defaults).toEqual({ sync: { cluster: "sync", durable: false, mirrored: true }, async: { cluster: "async", durable: true, mirrored: false } });
    expect(doc.services).toEqual([
      { name: "mpauto", async: false },
      "mplogin",
      { name: "mpnoex", async: false },
      { name: "mppayment", sync: false, async: { arguments: { "x-max-length": 100000 } } },
      { name: "mpquorum", sync: false, async: { type: "quorum" } },
      "mpwallet",
    ]);

    // Adopting: apply makes the broker what the file says, and the namespace is then all topo's.
    const applied = await runCli(["apply", "-f", out(file), "--allow-destructive"], ENV());
    expect(applied.stderr).not.toMatch(/Error/);
    expect(applied.code).toBe(0);
    const after = await runCli(["plan", "-f", out(file)], ENV());
    expect(planLines(after.stdout)).toEqual([]);
    expect(after.stdout).toContain("No changes.");
    // The user's objects are untouched.
    expect((await api("GET", `/api/queues/${vh(v.sync)}/billing.jobs`)).status).toBe(200);
    expect((await api("GET", `/api/policies/${vh(v.sync)}/user-limits`)).status).toBe(200);
  });
});

describe("secrets", () => {
  // A password with characters that URLs encode, so both forms must stay out of every output.
  const SECRET = "Imp0rt-S3cret/Pass:42";
  const USER = `topo_import_${process.pid}`;
  suiteUsers([{ name: USER, password: SECRET, tags: "administrator" }]);

  it("no import prints or writes the password, whatever the source of the connection", async () => {
    const v = pair();
    const b = broker();
    const encoded = encodeURIComponent(SECRET);
    const file = topology(v, ["mplogin", { name: "mppayment", sync: false }], USER);
    const env = { TOPO_IMPORT_PW: encoded, RABBITMQ_PASSWORD: encoded };
    expect((await runCli(["apply", "-f", file], env)).code).toBe(0);
    for (const name of [v.sync, v.async]) {
      expect([201, 204]).toContain((await api("PUT", `/api/permissions/${vh(name)}/${USER}`, { configure: ".*", write: ".*", read: ".*" })).status);
    }
    const url = (name: string, pw?: string) => `amqp://${USER}${pw ? `:${pw}` : ""}@${b.host}:${b.amqpPort}/${encodeURIComponent(name)}`;
    // The password written into a file, as the README's example does with guest.
    const literal = writeFile("literal.yaml", `version: 1\nclusters:\n  sync: { url: "${url(v.sync, encoded)}", management: "${b.mgmtBase}" }\nservices: []\n`);
    const lowerEscapes = encoded.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase());
    // Comments beside the URL, as people write them: the password, and an old URL with its user-info.
    const commented = writeFile(
      "commented.yaml",
      [
        "version: 1",
        "clusters:",
        "  sync:",
        `    # ${USER} / ${encoded}, lower-case escapes: ${lowerEscapes}`,
        `    url: "${url(v.sync, encoded)}"   # was amqp://${USER}:${encoded}@old-host, before that amqp:/${USER}:${SECRET}@older`,
        `    management: "${b.mgmtBase}"   # the management API`,
        "services: []",
        "",
      ].join("\n"),
    );
    const wrong = writeFile("wrong.yaml", `version: 1\nclusters:\n  sync: { url: "${url(v.sync, `${encoded}x`)}", management: "${b.mgmtBase}" }\nservices: []\n`);

    const runs: { args: string[]; env: Record<string, string>; code: number }[] = [
      { args: ["import", "-f", file], env, code: 0 },
      { args: ["import", "-f", file, "-o", join(dirname(file), "a.yaml")], env, code: 0 },
      { args: ["import", "--url", url(v.sync), "--management", b.mgmtBase], env, code: 0 },
      { args: ["import", "--url", url(v.sync, encoded), "--management", b.mgmtBase, "-o", join(dirname(file), "b.yaml")], env: { RABBITMQ_PASSWORD: "" }, code: 0 },
      { args: ["import", "-f", literal, "-o", join(dirname(literal), "c.yaml")], env, code: 0 },
      { args: ["import", "-f", wrong], env, code: 1 },
      { args: ["import", "-f", commented, "-o", join(dirname(commented), "d.yaml")], env, code: 0 },
      { args: ["import", "-f", commented], env, code: 0 },
      { args: ["import", "--url", url(uniqueName("missing"), encoded), "--management", b.mgmtBase], env, code: 1 },
      { args: ["import", "--url", url(v.sync, encoded), "--management", `http://${USER}:${encoded}@${b.host}:15672`], env, code: 1 },
    ];
    const results: CliResult[] = [];
    for (const run of runs) {
      const r = await runCli(run.args, run.env);
      results.push(r);
      expect(r.code, `${run.args.join(" ")}\n${r.stderr}`).toBe(run.code);
    }
    const files = ["a.yaml", "b.yaml"]
      .map((f) => readFileSync(join(dirname(file), f), "utf8"))
      .concat(readFileSync(join(dirname(literal), "c.yaml"), "utf8"), readFileSync(join(dirname(commented), "d.yaml"), "utf8"));
    for (const text of [...results.flatMap((r) => [r.stdout, r.stderr]), ...files]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(encoded);
      expect(text).not.toContain(lowerEscapes);
      expect(text).not.toContain("Imp0rt-S3cret");
    }
    // Comments are kept, a password in them masked, and the notes say so.
    const fromCommented = files[3] as string;
    expect(fromCommented).toContain(`    # ${USER} / ***, lower-case escapes: ***\n`);
    expect(fromCommented).toContain(`# was amqp://${USER}:***@old-host, before that amqp:/${USER}:***@older\n`);
    expect(fromCommented).toContain("# the management API");
    expect(prose(fromCommented)).toMatch(/Comments in clusters\.sync of .*commented\.yaml hold a password or a URL's user-info, which import does not copy: this file has \*\*\* in their place/);
    expect(results[7]!.stderr).toMatch(/^note: Comments in clusters\.sync of /m);
    expect(results[7]!.stdout).toContain(`    # ${USER} / ***, lower-case escapes: ***\n`);
    // Where the password came from the command line or the file, the file says where to put it.
    const [fromCli, fromLiteral] = [files[1] as string, files[2] as string];
    expect(fromCli).toContain(`url: amqp://${USER}:\${RABBITMQ_PASSWORD}@`);
    expect(results[3]!.stderr).toMatch(/note: The password given in --url is not written: this file reads it from \$\{RABBITMQ_PASSWORD\}/);
    expect(fromLiteral).toContain(`url: "amqp://${USER}:\${RABBITMQ_PASSWORD}@`);
    expect(prose(fromLiteral)).toMatch(/clusters\.sync\.url in .*literal\.yaml holds a password, which import does not copy: this file reads it from \$\{RABBITMQ_PASSWORD\}/);
    expect(results[5]!.stderr).toMatch(/401/);
    expect(results[9]!.stderr).toMatch(/--management .* holds credentials/);
    // And the files work once the variable is exported.
    const plan = await runCli(["plan", "-f", join(dirname(literal), "c.yaml"), "--detailed-exitcode"], { RABBITMQ_PASSWORD: encoded });
    expect(plan.code).toBe(0);
  });
});

describe("--url clusters", () => {
  // Two users with different passwords, as two brokers would have.
  const users = [
    { name: `topo_import_a_${process.pid}`, password: "Url-A/pass:1" },
    { name: `topo_import_b_${process.pid}`, password: "Url-B+pass=2" },
  ];
  suiteUsers(users.map((u) => ({ ...u, tags: "administrator" })));

  it("get a variable each when their passwords differ, one note each, and plan on the file shows no changes", async () => {
    const v = pair();
    const b = broker();
    const file = topology(v, ["mplogin"]);
    expect((await runCli(["apply", "-f", file], ENV())).code).toBe(0);
    const [ua, ub] = users as [(typeof users)[number], (typeof users)[number]];
    for (const [u, name] of [[ua, v.sync], [ub, v.async]] as const) {
      expect([201, 204]).toContain((await api("PUT", `/api/permissions/${vh(name)}/${u.name}`, { configure: ".*", write: ".*", read: ".*" })).status);
    }
    const url = (u: { name: string; password: string }, name: string) => `amqp://${u.name}:${encodeURIComponent(u.password)}@${b.host}:${b.amqpPort}/${encodeURIComponent(name)}`;
    // Named, and bare (named after what they hold): the variables follow the names either way.
    for (const args of [
      ["--url", `sync=${url(ua, v.sync)}`, "--url", `async=${url(ub, v.async)}`],
      ["--url", url(ua, v.sync), "--url", url(ub, v.async)],
    ]) {
      const output = join(dirname(file), "from-urls.yaml");
      const r = await runCli(["import", ...args, "--management", b.mgmtBase, "-o", output, "--force"], {});
      expect(r.code, r.stderr).toBe(0);
      const text = readFileSync(output, "utf8");
      const doc = parseDocument(text).toJS();
      expect(doc.clusters.sync.url).toBe(`amqp://${ua.name}:\${RABBITMQ_PASSWORD}@${b.host}:${b.amqpPort}/${encodeURIComponent(v.sync)}`);
      expect(doc.clusters.async.url).toBe(`amqp://${ub.name}:\${RABBITMQ_PASSWORD_ASYNC}@${b.host}:${b.amqpPort}/${encodeURIComponent(v.async)}`);
      const notes = r.stderr.split("\n").filter((l) => l.startsWith("note: The password"));
      expect(notes).toEqual([
        expect.stringMatching(/^note: The password given in --url for cluster sync is not written: this file reads it from \$\{RABBITMQ_PASSWORD\}; export RABBITMQ_PASSWORD /),
        expect.stringMatching(/^note: The password given in --url for cluster async is not written: this file reads it from \$\{RABBITMQ_PASSWORD_ASYNC\}; export RABBITMQ_PASSWORD_ASYNC /),
      ]);
      expect(r.stderr).toMatch(/topo plan on it shows no changes\.$/m);
      for (const t of [text, r.stdout, r.stderr]) for (const u of users) expect(t).not.toContain(encodeURIComponent(u.password));
      const plan = await runCli(["plan", "-f", output, "--detailed-exitcode"], {
        RABBITMQ_PASSWORD: encodeURIComponent(ua.password),
        RABBITMQ_PASSWORD_ASYNC: encodeURIComponent(ub.password),
      });
      expect(plan.stdout.trim().endsWith("No changes."), plan.stdout + plan.stderr).toBe(true);
      expect(plan.code).toBe(0);
    }
  });

  it("are called by their name, or --url, and hints point at the option, not at a file key", async () => {
    const b = broker();
    const v = pair();
    expect([201, 204]).toContain((await api("PUT", `/api/vhosts/${vh(v.sync)}`, {})).status);
    const unresolved = await runCli(["import", "--url", "amqp://u:x@nonexistent.invalid:5672/hs-sync"], {});
    expect(unresolved.code).toBe(1);
    // The AMQP probe and the management API fail alike; whichever answers first is reported.
    expect(unresolved.stderr).toMatch(/^Error: cluster --url: .*ENOTFOUND/m);
    expect(unresolved.stderr).toMatch(/hint: the host name does not resolve; check --url$/m);
    const named = await runCli(["import", "--url", "sync=amqp://u:x@nonexistent.invalid:5672/hs-sync"], {});
    expect(named.stderr).toMatch(/^Error: cluster sync: /m);
    expect(named.stderr).toMatch(/check --url sync=…$/m);
    const refused = await runCli(["import", "--url", `sync=amqp://${users[0]!.name}:wrong@${b.host}:${b.amqpPort}/${encodeURIComponent(v.sync)}`, "--management", b.mgmtBase], {});
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^Error: cluster sync: .*401/m);
    expect(refused.stderr).toMatch(/check them in --url sync=…$/m);
    for (const r of [unresolved, named, refused]) expect(r.stderr).not.toMatch(/clusters\.|wrong/);
  });
});
