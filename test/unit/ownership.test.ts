// What topo owns: one prefix's namespace and nothing else, and the broker it names is the broker
// it reads. Pure functions on plain objects; the broker-side proof is test/integration/trust.test.ts.

import { describe, expect, it } from "vitest";
import { normalize } from "../../src/config/normalize.js";
import { kindQueuesPattern, mirrorPolicyName, Ownership, prefixProblem } from "../../src/core/naming.js";
import { identityMismatch, parseConnectionStart } from "../../src/broker/identity.js";
import { amqplibModule } from "../../src/broker/raw-amqp.js";
import { checkDistinctVhosts } from "../../src/commands/clusters.js";
import { diffCluster } from "../../src/plan/diff.js";
import { leftBehind, leftBehindWarnings } from "../../src/plan/left-behind.js";
import { foreignBindings } from "../../src/plan/route.js";
import { describe as describeResource } from "../../src/core/keys.js";
import { actual, binding, desiredOf, exchange, policy, queue, raw, service } from "../helpers/builders.js";

const ops = (d: ReturnType<typeof diffCluster>) => d.actions.map((a) => `${a.op} ${a.key}`);

describe("the prefix is a namespace", () => {
  it("refuses an empty prefix, and words topo uses for itself", () => {
    expect(prefixProblem("")).toMatch(/empty prefix is no namespace/);
    expect(prefixProblem("hold")).toMatch(/reserved/);
    expect(prefixProblem("_x")).toMatch(/must match/);
    expect(prefixProblem("mp")).toBeUndefined();
    const { problems } = normalize(raw({ prefix: "", services: [] }));
    expect(problems).toEqual([expect.objectContaining({ path: ["prefix"], message: expect.stringMatching(/empty prefix/) })]);
  });

  it("names every object topo makes for itself after the prefix", () => {
    expect(mirrorPolicyName("mp", "sync")).toBe("topo.mp.mirror.sync");
    const d = desiredOf(raw({ prefix: "sh", services: ["shlogin"] }), "sync");
    expect(d.resources.filter((r) => r.kind === "policy").map((r) => (r.kind === "policy" ? r.name : ""))).toEqual(["topo.sh.mirror.sync"]);
  });
});

describe("a renamed prefix leaves the old objects alone and says so", () => {
  // What a file with prefix mp made with an older topo: two services, mirrored by topo.mirror.sync.
  const old = [
    ...service("mplogin", "sync", { durable: false }),
    ...service("mpwallet", "sync", { durable: false }),
    policy({ name: "topo.mirror.sync", pattern: "^mp[a-z_]+\\.sync$" }),
  ];

  it("plans only the new prefix's objects: no delete, no re-pointed policy", () => {
    const d = desiredOf(raw({ prefix: "sh", services: ["shlogin"] }), "sync");
    const a = actual([{ kind: "vhost", name: "s" }, ...old], { queueFacts: { "mplogin.sync": { messages: 7 }, "mpwallet.sync": { messages: 8 } } });
    const plan = diffCluster(d, a, "sh");
    expect(plan.actions.every((x) => x.op === "create")).toBe(true);
    expect(ops(plan)).toContain("create policy|topo.sh.mirror.sync");
    const lb = leftBehind(a, Ownership.of("sh", a.resources));
    expect(lb.services.map((s) => s.name)).toEqual(["mplogin", "mpwallet"]);
    const [w] = leftBehindWarnings(lb, a, "sh");
    expect(w).toMatch(/left alone: 2 services outside prefix "sh" look like topo's \(mplogin, mpwallet; their queues hold 15 messages\)/);
  });

  it("an older topo's topo.mirror.sync of the same prefix becomes topo.mp.mirror.sync, created before the old one goes", () => {
    const d = desiredOf(raw({ services: ["mplogin", "mpwallet"] }), "sync");
    const plan = diffCluster(d, actual([{ kind: "vhost", name: "s" }, ...old]), "mp");
    // Apply writes policies before anything else and deletes them last (broker/execute.ts), so the
    // queues are mirrored by one policy or the other throughout.
    expect(ops(plan).sort()).toEqual(["create policy|topo.mp.mirror.sync", "delete policy|topo.mirror.sync"]);
  });

  it("an older topo.mirror.sync that lists another prefix's queues is not this prefix's", () => {
    const own = new Ownership("mp");
    expect(own.ownsPolicy(policy({ name: "topo.mirror.sync", pattern: "^(?:mpa\\.sync|mpb\\.sync)$" }))).toBe(true);
    expect(own.ownsPolicy(policy({ name: "topo.mirror.sync", pattern: "^(?:sha\\.sync|mpb\\.sync)$" }))).toBe(false);
    expect(own.ownsPolicy(policy({ name: "topo.mirror.sync", pattern: "^sh[a-z_]+\\.sync$" }))).toBe(false);
    expect(own.ownsPolicy(policy({ name: "topo.custom" }))).toBe(false);
  });

  it("an older topo.mirror.sync with a priority or apply-to older versions never wrote is someone's", () => {
    const own = new Ownership("mp");
    const legacy = { name: "topo.mirror.sync", pattern: "^mp[a-z_]+\\.sync$" };
    expect(own.ownsPolicy(policy(legacy))).toBe(true);
    expect(own.ownsPolicy(policy({ ...legacy, priority: 7 }))).toBe(false);
    expect(own.ownsPolicy(policy({ ...legacy, applyTo: "all" }))).toBe(false);
  });
});

describe("two prefixes on one vhost", () => {
  it("never touch each other's policies or services", () => {
    const theirs = [...service("shcart", "sync", { durable: false }), policy({ name: "topo.sh.mirror.sync", pattern: "^sh[a-z_]+\\.sync$" })];
    const d = desiredOf(raw({ services: ["mplogin"] }), "sync");
    const mine = d.resources;
    const plan = diffCluster(d, actual([...mine, ...theirs]), "mp");
    expect(plan.actions).toEqual([]);
  });

  it("a longer prefix that starts with this one is another namespace once the broker shows it in use", () => {
    const theirs = [...service("mpxcart", "sync", { durable: false }), policy({ name: "topo.mpx.mirror.sync", pattern: "^mpx[a-z_]+\\.sync$" })];
    const d = desiredOf(raw({ services: ["mplogin"] }), "sync");
    const a = actual([...d.resources, ...theirs]);
    // Nothing of mpx's is touched; mp's mirror policy only stops matching mpx's queues.
    expect(ops(diffCluster(d, a, "mp"))).toEqual(["update policy|topo.mp.mirror.sync"]);
    const lb = leftBehind(a, Ownership.of("mp", a.resources));
    expect(leftBehindWarnings(lb, a, "mp")).toEqual([expect.stringMatching(/^left alone: 1 service of prefix "mpx" \(mpxcart\); topo changes only prefix "mp"'s objects and never these/)]);
    // Without that evidence, mpxcart is an mp service the file no longer lists: plan deletes it.
    const bare = actual([...d.resources, ...service("mpxcart", "sync", { durable: false })]);
    expect(ops(diffCluster(d, bare, "mp"))).toContain("delete exchange|mpxcart");
  });

  it("an exchange inside the namespace that topo would not have made is spared, with its bindings, and plan says so", () => {
    const d = desiredOf(raw({ services: ["mplogin"] }), "sync");
    const audit = exchange({ name: "mpaudit", type: "fanout" });
    const toLogin = binding({ source: "mpaudit", destination: "mplogin.sync", routingKey: "" });
    const plan = diffCluster(d, actual([...d.resources, audit, toLogin, ...service("mpold", "sync")]), "mp");
    expect(ops(plan).sort()).toEqual(["delete binding|mpold|queue|mpold.sync|mpold.sync.#|{}", "delete exchange|mpold", "delete queue|mpold.sync"]);
    expect(plan.warnings).toEqual([expect.stringMatching(/^left alone: exchange mpaudit \(fanout\) is named like a service of prefix "mp" but is not one topo makes/)]);
  });

  it("a service the file names inside a longer prefix in use is the file's: neither left alone nor its bindings foreign", () => {
    // prefix mpl in use (its mirror policy), and the mp file names mplogin, inside mpl's namespace.
    const d = desiredOf(raw({ services: ["mplogin", "mpwallet"] }), "sync");
    const stray = binding({ source: "mplogin", destination: "mplogin.sync", routingKey: "extra.#" });
    const a = actual([...d.resources, ...service("mplfoo", "sync", { durable: false }), policy({ name: "topo.mpl.mirror.sync", pattern: "^mpl[a-z_]+\\.sync$" }), stray]);
    const owner = Ownership.of("mp", a.resources);
    const own = new Set(["mplogin", "mpwallet"]);
    expect(leftBehind(a, owner, own).services.map((s) => s.name)).toEqual(["mplfoo"]);
    // The file's own binding of mplogin is not foreign; a stray one is named alone.
    expect(foreignBindings(d, a, owner).map(describeResource)).toEqual([describeResource(stray)]);
  });

  it("names no prefix could hold are not reported as another prefix's services", () => {
    // Upper case, a sign, a letter no prefix takes: no file of any prefix removes them.
    const a = actual(["mpLogin", "mp#", "mp\u00e9", "mplogin"].flatMap((n) => service(n, "sync")));
    expect(leftBehind(a, Ownership.of("sh", a.resources)).services.map((s) => s.name)).toEqual(["mplogin"]);
  });

  it("a user's exchange that is not topo-shaped is never reported", () => {
    const a = actual([exchange({ name: "billing" }), ...service("mplogin", "async")]);
    expect(leftBehind(a, Ownership.of("sh", a.resources)).services.map((s) => s.name)).toEqual(["mplogin"]);
  });
});

describe("which broker answers", () => {
  const defs = amqplibModule<{ encodeMethod(id: number, ch: number, f: object): Buffer; ConnectionStart: number; ConnectionClose: number }>("defs.js");
  const start = defs.encodeMethod(defs.ConnectionStart, 0, {
    versionMajor: 0,
    versionMinor: 9,
    serverProperties: { cluster_name: "rabbit@vm", version: "3.10.8", platform: "Erlang/OTP 25.2.3", capabilities: { publisher_confirms: true } },
    mechanisms: Buffer.from("PLAIN AMQPLAIN"),
    locales: Buffer.from("en_US"),
  });

  it("reads connection.start with amqplib's codec, also when it arrives in pieces", () => {
    expect(parseConnectionStart(start)).toEqual({ identity: { clusterName: "rabbit@vm", version: "3.10.8", erlang: "25.2.3" } });
    expect(parseConnectionStart(start.subarray(0, 5))).toEqual({ need: true });
    expect(parseConnectionStart(start.subarray(0, start.length - 1))).toEqual({ need: true });
  });

  it("refuses a first frame that is another method, or whose property table overruns it", () => {
    const close = defs.encodeMethod(defs.ConnectionClose, 0, { replyCode: 320, replyText: "CONNECTION_FORCED", classId: 0, methodId: 0 });
    expect(parseConnectionStart(close)).toEqual({ notAmqp: "its first frame is not connection.start" });
    // The table's size is the 4 bytes after the method id and the two version octets.
    const overrun = Buffer.from(start);
    overrun.writeUInt32BE(overrun.length, 7 + 6);
    expect(parseConnectionStart(overrun)).toEqual({ notAmqp: "its first frame is malformed" });
    // A property table amqplib cannot decode (a type tag it does not know) is refused, not thrown.
    const badTag = Buffer.from(start);
    const firstTag = 7 + 10 + 1 + badTag.readUInt8(7 + 10);
    badTag.writeUInt8("Z".charCodeAt(0), firstTag);
    expect(parseConnectionStart(badTag)).toEqual({ notAmqp: "its connection.start is malformed" });
  });

  it("knows what is not an AMQP broker", () => {
    expect(parseConnectionStart(Buffer.from("HTTP/1.1 400 Bad Request\r\n"))).toEqual({ notAmqp: "it answered in HTTP, not AMQP" });
    expect(parseConnectionStart(Buffer.from([0x41, 0x4d, 0x51, 0x50, 1, 1, 0, 10]))).toMatchObject({ notAmqp: expect.stringMatching(/another version/) });
  });

  it("compares only what both sides report", () => {
    expect(identityMismatch({ clusterName: "a", version: "3.10.8" }, { clusterName: "a", version: "3.10.8", erlang: "25" })).toEqual([]);
    expect(identityMismatch({ clusterName: "rabbit4@vm", version: "4.0.5" }, { clusterName: "rabbit@vm", version: "3.10.8" })).toEqual(["cluster name"]);
    // One cluster mid-way through a rolling upgrade: its nodes differ in version, not in name.
    expect(identityMismatch({ clusterName: "prod", version: "3.13.7", erlang: "26.2" }, { clusterName: "prod", version: "4.0.5", erlang: "27.3" })).toEqual([]);
    expect(identityMismatch({ version: "4.0.5" }, { version: "3.10.8" })).toEqual(["version"]);
    // ...whose nodes, listed, include the AMQP side's version.
    expect(identityMismatch({ clusterName: "prod", version: "3.13.7" }, { clusterName: "prod" }, ["3.13.7", "4.0.5"])).toEqual([]);
    // Two brokers of one cluster name (rabbit@<host name>, on hosts of one name): the AMQP side's
    // version is none of the management API's nodes'. Plan said "No changes." of a broker it never read.
    expect(identityMismatch({ clusterName: "rabbit@vm", version: "3.10.8" }, { clusterName: "rabbit@vm" }, ["4.0.5"])).toEqual(["RabbitMQ version"]);
    // Nodes not listed (no monitoring tag): the name decides.
    expect(identityMismatch({ clusterName: "rabbit@vm", version: "3.10.8" }, { clusterName: "rabbit@vm" }, undefined)).toEqual([]);
  });

  it("refuses two clusters that are one vhost of one broker, whatever their host names", () => {
    const { desired } = normalize(raw({ clusters: { sync: { url: "amqp://u:p@127.0.0.1:5672/v" }, async: { url: "amqp://u:p@localhost/v" } } }));
    const [s, a] = desired.clusters;
    const id = { clusterName: "rabbit@vm", version: "3.10.8" };
    expect(() => checkDistinctVhosts([{ cluster: s!, identity: id }, { cluster: a!, identity: id }])).toThrow(/clusters sync and async are the same vhost "v" of one broker/);
    expect(() => checkDistinctVhosts([{ cluster: s!, identity: id }, { cluster: a!, identity: { ...id, clusterName: "other@vm" } }])).not.toThrow();
  });
});

describe("a longer prefix in use is another namespace, whatever marks it", () => {
  // A vhost the mpx file applied to: its apply mark, perhaps its lock, no policy (async cluster).
  const theirs = [...service("mpxfoo", "async")];
  const d = desiredOf(raw({ services: ["mplogin"] }), "async");

  it.each([
    ["its apply mark", exchange({ name: "topo.mpx.generation", type: "fanout", arguments: { "x-topo-generation": "g1" } })],
    ["its lock", queue({ name: "topo.mpx.lock", exclusive: true, durable: false, autoDelete: true })],
    ["one of its policies", policy({ name: "topo.mpx.limits", pattern: "^mpx" })],
  ])("by %s: plan leaves its services alone and names the prefix once", (_what, marker) => {
    const a = actual([...d.resources, ...theirs, marker]);
    expect(diffCluster(d, a, "mp").actions).toEqual([]);
    const owner = Ownership.of("mp", a.resources);
    expect(owner.nested).toEqual(["mpx"]);
    const warnings = leftBehindWarnings(leftBehind(a, owner), a, "mp");
    expect(warnings).toEqual([expect.stringMatching(/^left alone: 1 service of prefix "mpx" \(mpxfoo\)/)]);
  });

  it("the shorter prefix's marks and those of unrelated prefixes do not count", () => {
    const a = actual([exchange({ name: "topo.mp.generation", type: "fanout" }), exchange({ name: "topo.sh.generation", type: "fanout" }), queue({ name: "topo.hold.mpa.sync" })]);
    expect(Ownership.of("mp", a.resources).nested).toEqual([]);
  });

  it("the mirror policy's pattern leaves out a longer prefix in use, and plan after apply is empty", () => {
    const sync = desiredOf(raw({ services: ["mplogin"] }), "sync");
    const mark = exchange({ name: "topo.mpx.generation", type: "fanout" });
    const plan = diffCluster(sync, actual([{ kind: "vhost", name: "s" }, mark, ...service("mpxfoo", "sync", { durable: false })]), "mp");
    const created = plan.actions.find((x) => x.key === "policy|topo.mp.mirror.sync");
    expect(created).toMatchObject({ op: "create", after: { pattern: "^(?:topo\\.hold\\.)?mp(?!x)[a-z_]+\\.sync$" } });
    const after = created?.op === "create" ? created.after : undefined;
    expect(new RegExp((after as { pattern: string }).pattern).test("mpxfoo.sync")).toBe(false);
    expect(new RegExp((after as { pattern: string }).pattern).test("mplogin.sync")).toBe(true);
    // Applied: the broker holds that pattern, and the next plan changes nothing.
    const applied = sync.resources.map((r) => (r.kind === "policy" ? { ...r, pattern: "^(?:topo\\.hold\\.)?mp(?!x)[a-z_]+\\.sync$" } : r));
    expect(diffCluster(sync, actual([...applied, mark, ...service("mpxfoo", "sync", { durable: false })]), "mp").actions).toEqual([]);
    // Without a longer prefix the pattern stays the plain one.
    expect(diffCluster(sync, actual(sync.resources), "mp").actions).toEqual([]);
  });
});

describe("a service of the file named inside a longer prefix in use", () => {
  it("stays mirrored by the file's policy, by name, the other prefix's queues still left out; plan names the clash", () => {
    const sync = desiredOf(raw({ services: ["mplogin", "mpxbar"] }), "sync");
    const theirs = [exchange({ name: "topo.mpx.generation", type: "fanout" }), ...service("mpxfoo", "sync", { durable: false })];
    const plan = diffCluster(sync, actual([{ kind: "vhost", name: "s" }, ...theirs]), "mp");
    const pattern = "^(?:topo\\.hold\\.)?(?:mp(?!x)[a-z_]+|mpxbar)\\.sync$";
    expect(plan.actions.find((x) => x.key === "policy|topo.mp.mirror.sync")).toMatchObject({ after: { pattern } });
    const re = new RegExp(pattern);
    expect(["mplogin.sync", "mpxbar.sync", "mpxfoo.sync", "mpxbar.async", "mpxbarx.sync"].map((q) => re.test(q))).toEqual([true, true, false, false, false]);
    expect(plan.warnings).toEqual([expect.stringMatching(/^service mpxbar of this file is named inside prefix "mpx", which another topology uses on this vhost/)]);
    // Applied: the next plan changes nothing.
    const applied = sync.resources.map((r) => (r.kind === "policy" ? { ...r, pattern } : r));
    expect(diffCluster(sync, actual([...applied, ...theirs]), "mp").actions).toEqual([]);
  });
});

describe("a shorter prefix in use names every service of the longer one", () => {
  // The mp file applied mplogin; the mpl file, whose prefix starts with mp, arrives later.
  const theirs = [exchange({ name: "topo.mp.generation", type: "fanout", arguments: { "x-topo-generation": "g1" } }), ...service("mplogin", "async")];
  const d = desiredOf(raw({ prefix: "mpl", services: ["mplx"] }), "async");

  it("plan says the services it deletes may be that file's, naming them and the prefix", () => {
    const plan = diffCluster(d, actual([...d.resources, ...theirs]), "mpl");
    expect(ops(plan)).toEqual(["delete exchange|mplogin", "delete queue|mplogin.async", "delete binding|mplogin|queue|mplogin.async|mplogin.async.#|{}"]);
    expect(plan.warnings).toEqual([
      'this plan deletes service mplogin (its exchange or queues), named inside prefix "mp" too, which another topology uses on this vhost (its apply mark, lock or policy is here): if that file lists it, it is that file\'s; check before applying with --allow-destructive, or choose prefixes that do not start with each other',
    ]);
    expect(Ownership.of("mpl", actual(theirs).resources).outer).toEqual(["mp"]);
  });

  it("without the shorter prefix's mark, or with nothing to delete, no word of it", () => {
    expect(diffCluster(d, actual([...d.resources, ...service("mplogin", "async")]), "mpl").warnings).toEqual([]);
    expect(diffCluster(d, actual([...d.resources, theirs[0]!]), "mpl").warnings).toEqual([]);
    // An unrelated prefix's mark is no shorter prefix.
    expect(Ownership.of("mpl", [exchange({ name: "topo.sh.generation", type: "fanout" })]).outer).toEqual([]);
  });
});

describe("an exchange plan deletes that something left still sends to", () => {
  const d = desiredOf(raw({ services: [{ name: "mpa", sync: false, async: { arguments: { "x-dead-letter-exchange": "mpb" } } }] }), "async");
  const mpb = service("mpb", "async");

  it("is named with what sends to it: a queue's dead-letter exchange, a policy's, an exchange's alternate exchange", () => {
    const userPolicy = policy({ name: "dlx", pattern: "^jobs$", definition: { "dead-letter-exchange": "mpb" } });
    const userExchange = exchange({ name: "edge", type: "fanout", arguments: { "alternate-exchange": "mpb" } });
    const plan = diffCluster(d, actual([...d.resources, ...mpb, userPolicy, userExchange]), "mp");
    expect(ops(plan)).toEqual(["delete exchange|mpb", "delete queue|mpb.async", "delete binding|mpb|queue|mpb.async|mpb.async.#|{}"]);
    expect(plan.warnings).toEqual([
      "this plan deletes exchange mpb, but queue mpa.async dead-letters to it (x-dead-letter-exchange); policy dlx dead-letters to it the messages of the queues it matches (^jobs$); exchange edge sends what it cannot route to it (alternate-exchange): once it is gone, RabbitMQ drops those messages without a word; point them elsewhere first, or keep the service",
    ]);
  });

  it("a quorum queue that dead-letters to it at least once keeps those messages: named apart, not as dropping them", () => {
    const keeps = { "x-dead-letter-exchange": "mpb", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" };
    const keeper = queue({ name: "jobs", type: "quorum", arguments: keeps });
    const plan = diffCluster(d, actual([...d.resources, ...mpb, keeper]), "mp");
    expect(plan.warnings).toEqual([
      "this plan deletes exchange mpb, but queue mpa.async dead-letters to it (x-dead-letter-exchange): once it is gone, RabbitMQ drops those messages without a word; queue jobs dead-letters to it (x-dead-letter-exchange, at least once): it keeps what it dead-letters once it is gone (quorum, x-dead-letter-strategy at-least-once), where it waits until an exchange of that name routes it: none is dropped; point them elsewhere first, or keep the service",
    ]);
    // Alone, nothing is said to be dropped.
    const plain = desiredOf(raw({ services: [{ name: "mpa", sync: false }] }), "async");
    expect(diffCluster(plain, actual([...plain.resources, ...mpb, keeper]), "mp").warnings).toEqual([
      "this plan deletes exchange mpb, but queue jobs dead-letters to it (x-dead-letter-exchange, at least once): it keeps what it dead-letters once it is gone (quorum, x-dead-letter-strategy at-least-once), where it waits until an exchange of that name routes it: none is dropped; point it elsewhere first, or keep the service",
    ]);
  });

  it("a queue dead-lettered to through the default exchange, by its name as the routing key, is named too", () => {
    const plain = desiredOf(raw({ services: [{ name: "mpa", sync: false }] }), "async");
    const jobs = queue({ name: "jobs", arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mpb.async" } });
    const plan = diffCluster(plain, actual([...plain.resources, ...mpb, jobs]), "mp");
    expect(plan.warnings).toEqual([
      'this plan deletes queue mpb.async, but queue jobs dead-letters to it (x-dead-letter-exchange "" and x-dead-letter-routing-key "mpb.async"): once it is gone, RabbitMQ drops those messages without a word; point it elsewhere first, or keep the service',
    ]);
  });

  it("a quorum queue that dead-letters to it by name at least once keeps those messages: said so", () => {
    const plain = desiredOf(raw({ services: [{ name: "mpa", sync: false }] }), "async");
    const jobs = queue({ name: "jobs", type: "quorum", arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "mpb.async", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" } });
    expect(diffCluster(plain, actual([...plain.resources, ...mpb, jobs]), "mp").warnings).toEqual([
      'this plan deletes queue mpb.async, but queue jobs dead-letters to it (x-dead-letter-exchange "" and x-dead-letter-routing-key "mpb.async"): it keeps what it dead-letters once it is gone (quorum, x-dead-letter-strategy at-least-once), where it waits until a queue of that name is there: none is dropped; point it elsewhere first, or keep the service',
    ]);
  });

  it("a queue whose dead-letter settings come half from its arguments and half from a policy is named too", () => {
    // x-dead-letter-exchange "" of its own, and a policy's routing key: the broker takes each key
    // where it finds it (the argument first), so the deleted queue's name is where they go.
    const plain = desiredOf(raw({ services: [{ name: "mpa", sync: false }] }), "async");
    const jobs = queue({ name: "jobs", arguments: { "x-dead-letter-exchange": "" } });
    const parked = policy({ name: "park", pattern: "^jobs$", definition: { "dead-letter-routing-key": "mpb.async" } });
    expect(diffCluster(plain, actual([...plain.resources, ...mpb, jobs, parked]), "mp").warnings).toEqual([
      'this plan deletes queue mpb.async, but queue jobs dead-letters to it (x-dead-letter-exchange "" and policy "park"\'s dead-letter-routing-key "mpb.async"): once it is gone, RabbitMQ drops those messages without a word; point it elsewhere first, or keep the service',
    ]);
    // The queue's own routing key wins over the policy's: nothing goes to mpb.async.
    const keyed = queue({ name: "jobs", arguments: { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "jobs.failed" } });
    expect(diffCluster(plain, actual([...plain.resources, ...mpb, keyed, parked]), "mp").warnings).toEqual([]);
  });

  it("is quiet when nothing sends to it, or when what sends to it goes too", () => {
    const plain = desiredOf(raw({ services: [{ name: "mpa", sync: false }] }), "async");
    expect(diffCluster(plain, actual([...plain.resources, ...mpb]), "mp").warnings).toEqual([]);
    // mpb's own queue dead-letters to mpb: both go.
    const selfish = service("mpb", "async", { arguments: { "x-dead-letter-exchange": "mpb" } });
    expect(diffCluster(plain, actual([...plain.resources, ...selfish]), "mp").warnings).toEqual([]);
  });
});

describe("names no prefix owns, and a service named exactly like a longer prefix", () => {
  it("never takes Celery's own exchanges for services, whatever the prefix; the file may not name a service so", () => {
    for (const prefix of ["c", "cel", "celery", "celery_"]) {
      const owner = new Ownership(prefix);
      expect(["celery", "celeryev", "celery_delayed_delivery"].map((n) => owner.isService(n))).toEqual([false, false, false]);
      // Nor queues named as their services' would be: no file has such a service.
      expect(["celery.sync", "celery.async", "celeryev.sync", "celeryev.async"].map((n) => owner.isServiceQueue(n))).toEqual([false, false, false, false]);
    }
    expect(new Ownership("c").isService("cart")).toBe(true);
    expect(new Ownership("c").isServiceQueue("celeryx.async")).toBe(true);
    const d0 = desiredOf(raw({ prefix: "c", services: [{ name: "cart", sync: false }] }), "async");
    expect(diffCluster(d0, actual([...d0.resources, queue({ name: "celery.sync", durable: false }), queue({ name: "celeryev.async" })]), "c").actions).toEqual([]);
    // A worker ran with events on: prefix c's plan of an unrelated file leaves celeryev alone.
    const d = desiredOf(raw({ prefix: "c", services: [{ name: "cart", sync: false }] }), "async");
    const ev = exchange({ name: "celeryev" });
    const plan = diffCluster(d, actual([...d.resources, ev, queue({ name: "celeryev.abc", durable: false, autoDelete: true }), binding({ source: "celeryev", destination: "celeryev.abc", routingKey: "worker.#" })]), "c");
    expect(plan.actions).toEqual([]);
    // Celery 5.5 with quorum queues: kombu's native delayed delivery. Its exchange is a durable
    // topic one, its levels' queues dead-letter into it, and prefix c's plan deleted it as a
    // service that left the file (every countdown task lost from then on).
    const levels = [0, 1].map((l) => `celery_delayed_${l}`);
    const delayed = [
      exchange({ name: "celery_delayed_delivery" }),
      ...levels.map((name) => exchange({ name })),
      ...levels.map((name) => queue({ name, type: "quorum", arguments: { "x-dead-letter-exchange": "celery_delayed_delivery" } })),
      binding({ source: "celery_delayed_1", destination: "celery_delayed_0", destinationType: "exchange", routingKey: "*.0.#" }),
      binding({ source: "celery_delayed_0", destination: "celery_delayed_delivery", destinationType: "exchange", routingKey: "#" }),
      binding({ source: "celery_delayed_delivery", destination: "cart", destinationType: "exchange", routingKey: "#.cart.async.#" }),
    ];
    const withDelayed = diffCluster(d, actual([...d.resources, ...delayed]), "c");
    expect(withDelayed.actions).toEqual([]);
    expect(withDelayed.warnings).toEqual([]);
    const { problems } = normalize(raw({ prefix: "c", services: ["celeryev", { name: "celery", sync: false }, "celery_delayed_delivery"] }));
    expect(problems.map((p) => `${p.path.join(".")}: ${p.message}`)).toEqual([
      'services.0: service name "celeryev" is the exchange of Celery\'s task events (celery worker -E, celery events), which Celery declares itself, and not as topo would: choose another name',
      'services.1.name: service name "celery" is Celery\'s default exchange, which Celery declares itself, and not as topo would: choose another name',
      'services.2: service name "celery_delayed_delivery" is the exchange of Celery\'s native delayed delivery (ETA and countdown tasks on quorum queues, Celery 5.5 and later), which Celery declares itself, and not as topo would: choose another name',
    ]);
  });

  it("leaves Celery's queues out of the mirror policies, as ownership does, and keeps the rest of the prefix's", () => {
    // Prefix c's policy mirrored a worker's celery.sync over its owner's policy, while plan and
    // import said topo never touches it.
    const celeryQueues = ["celery.sync", "celery.async", "celeryev.sync", "celeryev.async", "celery_delayed_delivery.sync", "celery_delayed_delivery.async"];
    for (const prefix of ["c", "ce", "celer", "celery", "celerye", "celery_", "celery_delayed"]) {
      for (const kind of ["sync", "async"] as const) {
        const pattern = new RegExp(kindQueuesPattern(prefix, kind));
        expect(celeryQueues.filter((q) => pattern.test(q))).toEqual([]);
        // A service of the prefix that only starts like Celery's names is the prefix's.
        for (const s of [`${prefix}x`, "celeryx", "celery_ev", "celeryevx"].filter((n) => n.startsWith(prefix) && n.length > prefix.length)) {
          expect(pattern.test(`${s}.${kind}`)).toBe(true);
          expect(pattern.test(`${s}.${kind === "sync" ? "async" : "sync"}`)).toBe(false);
        }
      }
    }
    expect(kindQueuesPattern("mp", "sync")).toBe("^mp[a-z_]+\\.sync$");
    // The policy plan writes, with a longer prefix in use too: still neither of Celery's.
    const d = desiredOf(raw({ prefix: "c", services: ["cart"] }), "sync");
    const create = diffCluster(d, actual([exchange({ name: "topo.cx.generation", type: "fanout" })]), "c").actions.find((a) => a.op === "create" && a.after.kind === "policy");
    const written = create?.op === "create" && create.after.kind === "policy" ? new RegExp(create.after.pattern) : undefined;
    expect(celeryQueues.filter((q) => written?.test(q))).toEqual([]);
    expect(["cart.sync", "topo.hold.cart.sync", "cxfoo.sync"].map((q) => written?.test(q))).toEqual([true, true, false]);
    // A policy an older version wrote for this prefix, without the exclusion, is still topo's own.
    const legacy = policy({ name: "topo.mirror.sync", pattern: "^c[a-z_]+\\.sync$", definition: { "ha-mode": "all" }, applyTo: "queues", priority: 0 });
    expect(new Ownership("c").ownsPolicy(legacy as never)).toBe(true);
  });

  it("a service named like a longer prefix in use is the shorter prefix's: that prefix's names have one more letter", () => {
    const owner = new Ownership("a", ["ab"]);
    expect([owner.isService("ab"), owner.isServiceQueue("ab.async"), owner.isService("abqux"), owner.isServiceQueue("abqux.async")]).toEqual([true, true, false, false]);
    expect([owner.nestedOwner("ab"), owner.nestedOwner("abqux"), owner.nestedOwner("abqux.sync")]).toEqual([undefined, "ab", "ab"]);
    // File a dropped service ab; prefix ab's apply mark is on the vhost with its service abqux.
    const d = desiredOf(raw({ prefix: "a", services: [{ name: "afoo", sync: false }] }), "async");
    const others = [...service("ab", "async"), ...service("abqux", "async"), exchange({ name: "topo.ab.generation", type: "fanout" })];
    const plan = diffCluster(d, actual([...d.resources, ...others]), "a");
    expect(plan.actions.filter((x) => x.op === "delete").map((x) => x.key).sort()).toEqual(["binding|ab|queue|ab.async|ab.async.#|{}", "exchange|ab", "queue|ab.async"]);
    expect(plan.warnings.join("\n")).not.toMatch(/left alone: .*\bab\b/);
    // Prefix abc's plan leaves ab to prefix a, and abc to ab (it said prefix ab for all three).
    const abcFile = desiredOf(raw({ prefix: "abc", services: [{ name: "abcd", sync: false }] }), "async");
    const three = [...abcFile.resources, ...service("ab", "async"), ...service("abz", "async"), exchange({ name: "topo.ab.generation", type: "fanout" }), exchange({ name: "topo.a.generation", type: "fanout" })];
    const alone = leftBehind(actual(three), Ownership.of("abc", three));
    expect(alone.services.map((x) => `${x.name}:${x.prefix}`)).toEqual(["ab:a", "abz:ab"]);
    // While the file lists it, no warning calls it both files'.
    const listing = desiredOf(raw({ prefix: "a", services: [{ name: "afoo", sync: false }, { name: "ab", sync: false }] }), "async");
    expect(diffCluster(listing, actual([...listing.resources, ...others]), "a").warnings.join("\n")).not.toMatch(/named inside prefix/);
  });
});

describe("an older topo's mirroring policy (topo.mirror.<kind>)", () => {
  it("is topo's only when it holds what an older topo wrote: mirroring and nothing else", () => {
    const o = Ownership.of("mp", []);
    const legacy = (definition: Record<string, string | number>) => policy({ name: "topo.mirror.async", pattern: "^(?:mpa\\.async)$", definition });
    expect(o.ownsPolicy(legacy({ "ha-mode": "all", "ha-sync-mode": "automatic" }))).toBe(true);
    expect(o.ownsPolicy(legacy({ "ha-mode": "all" }))).toBe(true);
    // A user's policy of that name that limits the queue: the user's, left alone.
    expect(o.ownsPolicy(legacy({ "max-length": 10, overflow: "reject-publish" }))).toBe(false);
    expect(o.ownsPolicy(legacy({ "ha-mode": "all", "max-length": 10 }))).toBe(false);
    expect(o.ownsPolicy(legacy({ "ha-mode": "exactly", "ha-params": 2 }))).toBe(false);
    expect(o.ownsPolicy(legacy({ "ha-mode": "all", "ha-sync-mode": "manual" }))).toBe(false);
  });
});

describe("holding queues left by another prefix's replace", () => {
  it("are a service queue's holding queues only: topo.hold.audit is someone's queue, and not warned of as a replace's", () => {
    const a = actual([{ kind: "vhost", name: "s" }, queue({ name: "topo.hold.shlogin.async" }), queue({ name: "topo.hold.audit" }), queue({ name: "topo.hold.mplogin.async" })]);
    const lb = leftBehind(a, Ownership.of("mp", a.resources));
    expect(lb.holding).toEqual(["topo.hold.shlogin.async"]);
    expect(leftBehindWarnings(lb, a, "mp").join("\n")).not.toContain("topo.hold.audit");
  });
});
