// The pure core on plain objects: no broker, no files.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { normalize } from "../../src/config/normalize.js";
import { interpolate } from "../../src/config/interpolate.js";
import { parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import type { ActualCluster, Policy, Resource } from "../../src/model.js";
import { applyMark, diffCluster, planCluster } from "../../src/plan/diff.js";
import { Ownership } from "../../src/core/naming.js";
import { describe as shownAs, keyOf, sortResources, subjectOf } from "../../src/core/keys.js";
import { planJson, renderText } from "../../src/plan/render.js";
import { actualFrom, queueFrom, tagsOf } from "../../src/broker/state.js";
import { compatibility } from "../../src/plan/compat.js";
import { mirroredAgainstFile, mirroring, mirroringOf } from "../../src/plan/mirroring.js";
import { Redactor } from "../../src/redact.js";
import { actual, binding, desiredOf, exchange, policy, queue, raw } from "../helpers/builders.js";

const ROOT = join(import.meta.dirname, "../..");

// --- builders -------------------------------------------------------------------------------


// --- normalize ------------------------------------------------------------------------------
describe("normalize", () => {
  it("gives each service the kombu-compatible objects on the right cluster", () => {
    const sync = desiredOf(raw(), "sync");
    expect(sync.resources).toEqual([
      binding({ source: "mplogin", destination: "mplogin.sync" }),
      exchange({ name: "mplogin" }),
      { kind: "policy", name: "topo.mp.mirror.sync", pattern: "^(?:topo\\.hold\\.)?mp[a-z_]+\\.sync$", applyTo: "queues", priority: 0, definition: { "ha-mode": "all", "ha-sync-mode": "automatic" } },
      queue({ name: "mplogin.sync", durable: false }),
      { kind: "vhost", name: "s" },
    ]);
    const async = desiredOf(raw(), "async");
    expect(async.resources.filter((r) => r.kind === "queue")).toEqual([queue({ name: "mplogin.async" })]);
    expect(async.resources.some((r) => r.kind === "policy")).toBe(false);
  });

  it("layers built-in < defaults < service, and merges arguments", () => {
    const r = raw({
      defaults: { async: { arguments: { "x-message-ttl": 1000, "x-max-length": 5 } } },
      services: [{ name: "mpa", sync: false, async: { arguments: { "x-max-length": 100000 } } }],
    });
    const q = desiredOf(r, "async").queues[0]!.queue;
    expect(q.arguments).toEqual({ "x-max-length": 100000, "x-message-ttl": 1000 });
    expect(Object.keys(q.arguments)).toEqual(["x-max-length", "x-message-ttl"]);
  });

  it("mirrors the holding queue a replace parks a mirrored queue's messages in, and no other", () => {
    const all = new RegExp(desiredOf(raw(), "sync").resources.find((x): x is Policy => x.kind === "policy")!.pattern);
    expect(["mplogin.sync", "topo.hold.mplogin.sync"].map((n) => all.test(n))).toEqual([true, true]);
    expect(["topo.hold.mplogin.async", "xtopo.hold.mplogin.sync", "topo.hold.topo.hold.mplogin.sync", "topo.mp.lock"].map((n) => all.test(n))).toEqual([false, false, false, false]);
    const some = new RegExp(desiredOf(raw({ services: ["mpa", { name: "mpb", sync: { mirrored: false } }] }), "sync").resources.find((x): x is Policy => x.kind === "policy")!.pattern);
    expect(["topo.hold.mpa.sync", "topo.hold.mpb.sync"].map((n) => some.test(n))).toEqual([true, false]);
  });

  it("lists mirrored queues by name when only some of a kind are mirrored", () => {
    const r = raw({ services: ["mpa", { name: "mpb", sync: { mirrored: false } }, "mpc"] });
    const p = desiredOf(r, "sync").resources.find((x): x is Policy => x.kind === "policy")!;
    expect(p.pattern).toBe("^(?:topo\\.hold\\.)?(?:mpa\\.sync|mpc\\.sync)$");
  });

  it("quorum implies durable and no classic mirroring", () => {
    const r = raw({ defaults: { sync: { type: "quorum" } } });
    const s = desiredOf(r, "sync");
    expect(s.queues[0]!.queue).toMatchObject({ type: "quorum", durable: true });
    expect(s.queues[0]!.mirrored).toBe(false);
    expect(s.resources.some((x) => x.kind === "policy")).toBe(false);
  });

  it("reports every cross-reference problem with its path", () => {
    const { problems } = normalize(
      raw({
        defaults: { sync: { cluster: "nope" }, async: { type: "quorum", durable: false, mirrored: true } },
        services: ["MpBad", "mplogin", "mplogin", { name: "mpx", async: { type: "classic", arguments: { "x-delivery-limit": 3 } } }],
      }),
    );
    const got = problems.map((p) => `${p.path.join(".")}: ${p.message}`);
    expect(got).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^services\.0: service name "MpBad" must match/),
        expect.stringMatching(/^services\.2: duplicate service "mplogin"/),
        expect.stringMatching(/^defaults\.sync\.cluster: unknown cluster "nope"/),
        expect.stringMatching(/^defaults\.async\.durable: durable: false contradicts type: quorum/),
        expect.stringMatching(/^defaults\.async\.mirrored: mirrored: true needs a classic queue/),
        expect.stringMatching(/^services\.3\.async\.arguments\.x-delivery-limit: argument x-delivery-limit does not apply to classic queues/),
      ]),
    );
  });

  it("reports a missing built-in cluster once per kind, not once per service", () => {
    const { problems } = normalize(raw({ clusters: { main: { url: "amqp://h/m" } }, services: ["mpa", "mpb", "mpc"] }));
    expect(problems.map((p) => `${p.path.join(".")}: ${p.message}`)).toEqual([
      expect.stringMatching(/^services\.0: no cluster named "sync" for mpa\.sync and the other sync queues/),
      expect.stringMatching(/^services\.0: no cluster named "async" for mpa\.async and the other async queues/),
    ]);
  });

  it("refuses two clusters on the same vhost, and bad URLs", () => {
    const { problems } = normalize(
      raw({ clusters: { sync: { url: "amqp://h/v" }, async: { url: "amqp://H:5672/v" }, third: { url: "http://h/x" }, fourth: { url: "amqp://h/a/b" } } }),
    );
    expect(problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/cluster async names the same vhost as cluster sync/),
      expect.stringMatching(/unsupported scheme "http:\/\/"/),
      expect.stringMatching(/may not contain "\/"/),
    ]);
  });

  it("parses vhosts, ports and default management endpoints", () => {
    const { desired } = normalize(raw({ clusters: { sync: { url: "amqps://u:p%40ss@broker/%2F" }, async: { url: "amqp://broker:5673" } } }));
    const [s, a] = desired.clusters;
    expect(s!.target.amqp).toMatchObject({ protocol: "amqps", port: 5671, vhost: "/", username: "u", password: "p@ss" });
    expect(s!.target.management.baseUrl).toBe("https://broker:15671");
    expect(a!.target.amqp).toMatchObject({ port: 5673, vhost: "/", username: "guest", password: "guest" });
    expect(a!.target.management.baseUrl).toBe("http://broker:15672");
    expect(s!.target.amqp.display).not.toContain("p@ss");
  });
});

// --- load -----------------------------------------------------------------------------------
describe("load", () => {
  it("the root topology.yaml is valid", () => {
    const text = readFileSync(join(ROOT, "topology.yaml"), "utf8");
    const d = parseConfig(text, "topology.yaml", {});
    expect(d.clusters.map((c) => [c.target.name, c.queues.map((q) => q.queue.name)])).toEqual([
      ["sync", ["mplogin.sync", "mpwallet.sync"]],
      ["async", ["mplogin.async", "mpwallet.async", "mppayment.async"]],
    ]);
  });

  it("interpolates ${VAR} and ${VAR:-default}", () => {
    expect(interpolate("a${X}b${Y:-dflt}c$${Z}", { X: "1" })).toEqual({ value: "a1bdfltc${Z}" });
    expect(interpolate("${X:-d}", { X: "" })).toEqual({ value: "d" });
    expect(interpolate("${MISSING}", {})).toEqual({ error: expect.stringMatching(/MISSING is not set and has no default/) });
    expect(interpolate("${bad name}", {})).toEqual({ error: expect.stringMatching(/not a variable reference/) });
    // A default that holds another reference was the literal text "${B}" (a password sent so):
    // refused, whether A is set or not (set, the value was A's with a "}" after it).
    for (const env of [{ B: "b" }, { A: "a", B: "b" }]) {
      expect(interpolate("x${A:-${B}}y", env)).toEqual({ error: expect.stringMatching(/the default of \$\{A:-\.\.\.\} holds another "\$\{": topo does not read a variable inside a default/) });
    }
  });

  it("reports every problem at once with line and column", () => {
    const text = ["version: 1", "clusters:", "  sync: { url: amqp://h/s }", "  async: { url: amqp://h/a, extra: 1 }", "services:", "  - mplogin", "  - MpBad", "  - name: mpx", "    async: { arguments: { x-max-length: \"10\" } }", ""].join("\n");
    try {
      parseConfig(text, "t.yaml", {});
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const lines = (e as ConfigError).problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`);
      expect(lines).toEqual([
        expect.stringMatching(/^t\.yaml:4:29: clusters\.async: unknown key "extra"/),
        expect.stringMatching(/^t\.yaml:7:5: services\[1\]: service name "MpBad" must match/),
        expect.stringMatching(/^t\.yaml:9:41: services\[2\]\.async\.arguments\.x-max-length: must be an integer, not string "10"/),
      ]);
    }
  });

  it("puts cross-check problems at their node", () => {
    const text = ["version: 1", "clusters:", "  sync: { url: amqp://h/s }", "  async: { url: amqp://h/a }", "services:", "  - mplogin", "  - MpBad", ""].join("\n");
    expect(() => parseConfig(text, "t.yaml", {})).toThrow(/t\.yaml:7:5: services\[1\]: service name "MpBad" must match \^mp\[a-z_\]\+\$/);
  });
});

// --- state (what the broker returns) ---------------------------------------------------------
describe("sortResources", () => {
  it("orders by key as string comparison does, in UTF-16 code units, and keeps one object per key", () => {
    // Names from outside the service rule too (users' own objects are read and compared): upper
    // case, digits, an accented letter, a character beyond the BMP and one just below its end.
    const names = ["b", "a.sync", "a", "A", "a1", "é", "\u{1F600}", "\uFFFF", "a-b", "a_b", "a.async"];
    const rs: Resource[] = names.flatMap((n) => [queue({ name: n }), exchange({ name: n }), binding({ source: n, destination: "a" })]);
    const twice = [...rs, ...rs.slice(0, 5).map((r) => ({ ...r }))].reverse();
    const keys = sortResources(twice).map(keyOf);
    expect(keys).toEqual([...new Set(rs.map(keyOf))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(keys.length).toBe(rs.length);
  });

  it("keeps two objects whose names or routing keys run into each other through \"|\" or \"\\\\\"", () => {
    // Each pair differs, and would share one key if the parts were only joined with "|".
    const pairs: [Resource, Resource][] = [
      [binding({ source: "mplogin", destination: "audit", routingKey: "x|k" }), binding({ source: "mplogin", destination: "audit|x", routingKey: "k" })],
      [binding({ source: "a|b", destination: "c" }), binding({ source: "a", destination: "b|c" })],
      [binding({ source: "a\\", destination: "q", routingKey: "|k" }), binding({ source: "a\\|", destination: "q", routingKey: "k" })],
      [binding({ source: "e", destination: "q", routingKey: "k|{}" }), binding({ source: "e", destination: "q|k", routingKey: "" })],
      [
        { kind: "topic-permission", user: "u|x", exchange: "e", write: "", read: "" },
        { kind: "topic-permission", user: "u", exchange: "x|e", write: "", read: "" },
      ],
    ];
    for (const [a, b] of pairs) {
      expect(keyOf(a)).not.toBe(keyOf(b));
      expect(sortResources([a, b])).toHaveLength(2);
    }
    // Names without either character keep the keys they had (saved plans hold them).
    expect(keyOf(binding({ source: "mpa", destination: "mpa.sync", routingKey: "mpa.sync.#" }))).toBe("binding|mpa|queue|mpa.sync|mpa.sync.#|{}");
  });
});

describe("state", () => {
  it("folds x-queue-type into type, so 4.x's explicit classic compares equal", () => {
    expect(queueFrom({ name: "q", type: "classic", durable: true, auto_delete: false, arguments: { "x-queue-type": "classic", "x-b": 1, "x-a": 2 } })).toEqual(
      queue({ name: "q", arguments: { "x-a": 2, "x-b": 1 } }),
    );
  });

  it("reads a user's tags the same way wherever it reads them: a list or one comma-separated string, trimmed, once each, sorted", () => {
    // The plan's read, the check under the lock and the look after a create that met a user made
    // meanwhile all compare tags read through this one function: read two ways, one user's tags
    // looked changed when they were not.
    expect(tagsOf(["monitoring", "topo.mp"])).toEqual(["monitoring", "topo.mp"]);
    expect(tagsOf("topo.mp, monitoring,,monitoring ")).toEqual(["monitoring", "topo.mp"]);
    expect(tagsOf([" b", "a", "b"])).toEqual(["a", "b"]);
    expect(tagsOf("")).toEqual([]);
    expect(tagsOf(undefined)).toEqual([]);
  });

  it("drops the default exchange, amq.* and implicit bindings", () => {
    const a = actualFrom({
      version: "3.10.8",
      nodes: [],
      vhost: "v",
      exchanges: [
        { name: "", type: "direct", durable: true, auto_delete: false, internal: false },
        { name: "amq.topic", type: "topic", durable: true, auto_delete: false, internal: false },
        { name: "mpa", type: "topic", durable: true, auto_delete: false, internal: false, arguments: {} },
      ],
      queues: [{ name: "mpa.sync", durable: false, auto_delete: false, messages: 4 }],
      bindings: [
        { source: "", destination: "mpa.sync", destination_type: "queue", routing_key: "mpa.sync" },
        { source: "mpa", destination: "mpa.sync", destination_type: "queue", routing_key: "mpa.sync.#" },
      ],
      policies: [],
    });
    expect(a.resources.map(keyOf)).toEqual(["binding|mpa|queue|mpa.sync|mpa.sync.#|{}", "exchange|mpa", "queue|mpa.sync", "vhost|v"]);
    expect(a.queueFacts["mpa.sync"]?.messages).toBe(4);
  });

  it("keeps facts by a name that an object's own members have: __proto__, constructor, toString", () => {
    // On a plain object `__proto__` was never set (it set the prototype), and `constructor` or
    // `toString` were found before they were set: a user named toString with rights on any vhost
    // crashed every read of the cluster with "userVhosts[p.user].push is not a function".
    const a = actualFrom({
      version: "3.10.8",
      nodes: [],
      vhost: "v",
      exchanges: [],
      queues: [
        { name: "__proto__", durable: true, auto_delete: false, messages: 3 },
        { name: "constructor", durable: true, auto_delete: false, messages: 5 },
      ],
      bindings: [],
      policies: [],
      users: [
        { name: "toString", password_hash: "aGFzaA==", tags: [] },
        { name: "constructor", tags: [] },
      ],
      permissions: [],
      topicPermissions: [],
      allPermissions: [
        { user: "valueOf", vhost: "v" },
        { user: "valueOf", vhost: "w" },
      ],
    });
    expect(Object.keys(a.queueFacts).sort()).toEqual(["__proto__", "constructor"]);
    expect(a.queueFacts["__proto__"]?.messages).toBe(3);
    expect(a.queueFacts["constructor"]?.messages).toBe(5);
    expect(a.queueFacts["toString"]).toBeUndefined();
    expect(a.userHashes?.["toString"]?.hash).toBe("aGFzaA==");
    expect(a.userHashes?.["constructor"]).toBeUndefined();
    expect(a.userVhosts?.["valueOf"]).toEqual(["v", "w"]);
    expect(a.userVhosts?.["toString"]).toBeUndefined();
    expect(a.userVhosts?.["constructor"]).toBeUndefined();
  });
});

// --- diff -----------------------------------------------------------------------------------
describe("diff", () => {
  const d = desiredOf(raw({ services: [{ name: "mplogin", sync: false }] }), "async");

  it("creates everything on an empty vhost and nothing when equal", () => {
    expect(diffCluster(d, actual([], { vhostExists: false }), "mp").actions.map((a) => `${a.op} ${a.key}`)).toEqual([
      "create vhost|a",
      "create exchange|mplogin",
      "create queue|mplogin.async",
      "create binding|mplogin|queue|mplogin.async|mplogin.async.#|{}",
    ]);
    expect(diffCluster(d, actual(d.resources), "mp").actions).toEqual([]);
  });

  it("says that apply gives the AMQP user full rights on a vhost it creates, when that user is not the one creating it", () => {
    const grant = /apply gives svc, the user topo connects as over AMQP, configure, write and read "\.\*" on the vhost it creates/;
    const other = desiredOf(raw({ clusters: { sync: { url: "amqp://u:p@h:5672/s" }, async: { url: "amqp://svc:p@h:5672/a", management: "http://admin:q@h:15672" } }, services: [{ name: "mplogin", sync: false }] }), "async");
    expect(diffCluster(other, actual([], { vhostExists: false }), "mp").warnings.filter((w) => grant.test(w))).toHaveLength(1);
    // Once the vhost exists apply grants nothing; and the user that creates a vhost gets these
    // rights from RabbitMQ itself.
    expect(diffCluster(other, actual(other.resources.filter((r) => r.kind === "vhost")), "mp").warnings.filter((w) => grant.test(w))).toEqual([]);
    expect(diffCluster(d, actual([], { vhostExists: false }), "mp").warnings.filter((w) => /apply gives/.test(w))).toEqual([]);
  });

  it("replaces on an immutable difference, says why, and re-creates all the queue's bindings", () => {
    const before = queue({ name: "mplogin.async", durable: false, arguments: { "x-max-length": 1 } });
    const userBinding = binding({ source: "edge", destination: "mplogin.async", routingKey: "x" });
    const a = actual([...d.resources.filter((r) => r.kind !== "queue"), before, userBinding], { queueFacts: { "mplogin.async": { messages: 7 } } });
    const plan = diffCluster(d, a, "mp");
    expect(plan.actions).toHaveLength(1);
    const r = plan.actions[0]!;
    expect(r.op).toBe("replace");
    if (r.op !== "replace") return;
    expect(r.because).toEqual(["durable: false -> true", "arguments.x-max-length: 1 -> (none)"]);
    expect(r.messages).toBe(7);
    expect(r.rebind.map(keyOf).sort()).toEqual([keyOf(userBinding), "binding|mplogin|queue|mplogin.async|mplogin.async.#|{}"].sort());
    expect(renderText({ clusters: [plan] })).toContain("  -/+ replace queue mplogin.async [holds 7 messages]\n      because durable: false -> true");
  });

  it("judges a replace on the holding queue apply declares: one that dead-letters where the queue will", () => {
    const dl = desiredOf(raw({ services: [{ name: "mplogin", sync: false, async: { arguments: { "x-dead-letter-exchange": "retry" } } }] }), "async");
    const before = queue({ name: "mplogin.async" });
    const holdCap = policy({ name: "holdcap", pattern: "^topo\\.hold\\.", definition: { "max-length": 5 }, priority: 1 });
    const a = actual([...dl.resources.filter((r) => r.kind !== "queue"), before, holdCap], { queueFacts: { "mplogin.async": { messages: 10, ready: 10, unacked: 0, consumers: 0, bytes: 10 } } });
    const r = diffCluster(dl, a, "mp").actions.find((x) => x.op === "replace");
    expect(r?.op).toBe("replace");
    if (r?.op !== "replace") return;
    expect(r.limits?.hold.deadLetterExchange).toBe("retry");
    expect(r.risks?.map((x) => x.reason)).toContain('policy holdcap\'s max-length 5 applies to topo.hold.mplogin.async, which would hold the 10 messages: drop-head would dead-letter the oldest 5 to exchange "retry"');
  });

  it("says under an exchange replace what its publishers meet: RabbitMQ cannot re-create an exchange with its bindings atomically", () => {
    const transient = exchange({ name: "mplogin", durable: false });
    const plan = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "exchange"), transient]), "mp");
    expect(renderText({ clusters: [plan] })).toContain(
      "  -/+ replace exchange mplogin\n      because durable: false -> true\n      then re-creates its 1 binding\n      ! publishers: while it is deleted a publish to it fails (404 NOT_FOUND), and one in the instant between its re-creation and its bindings is routed nowhere and dropped, though the broker confirms it: stop the publishers first",
    );
    // A queue replace moves what is published meanwhile through its holding queue: no such line.
    const queueReplace = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "queue"), queue({ name: "mplogin.async", durable: false })]), "mp");
    expect(renderText({ clusters: [queueReplace] })).not.toMatch(/publishers:/);
    // --json says it too, for a pipeline that reviews the plan as JSON.
    const json = (p: typeof plan) => (planJson({ clusters: [p] }) as { clusters: { actions: { op: string; notes?: string[] }[] }[] }).clusters[0]!.actions.find((a) => a.op === "replace");
    expect(json(plan)?.notes).toEqual([expect.stringMatching(/^publishers: while it is deleted a publish to it fails/)]);
    expect(json(queueReplace)?.notes).toEqual([]);
  });

  it("names under an exchange replace the queues that dead-letter to it and the exchanges it is the alternate of, by argument or policy", () => {
    // Nobody publishes those: in the moment between the delete and the bindings' return RabbitMQ
    // drops them without a word (measured on 3.10.8: 114 of 3,366 in 10 replaces).
    const transient = exchange({ name: "mplogin", durable: false });
    const senders = [
      queue({ name: "retry.x", arguments: { "x-message-ttl": 1, "x-dead-letter-exchange": "mplogin", "x-dead-letter-routing-key": "mplogin.async.dl" } }),
      exchange({ name: "front", type: "direct", arguments: { "alternate-exchange": "mplogin" } }),
      policy({ name: "their-dlx", pattern: "^jobs\\.", definition: { "dead-letter-exchange": "mplogin" } }),
      // Not a sender: dead-letters elsewhere.
      queue({ name: "other.x", arguments: { "x-dead-letter-exchange": "elsewhere" } }),
      // Not one either: this plan deletes it (a service of the prefix the file no longer lists).
      queue({ name: "mpold.async", arguments: { "x-dead-letter-exchange": "mplogin" } }),
    ];
    const plan = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "exchange"), transient, ...senders]), "mp");
    const note =
      "dead letters and unroutable messages: queue retry.x dead-letters to it (x-dead-letter-exchange); exchange front sends what it cannot route to it (alternate-exchange); policy their-dlx dead-letters to it the messages of the queues it matches (^jobs\\.): in the moment between its delete and its re-creation with its bindings RabbitMQ drops what those send it, without a word";
    expect(renderText({ clusters: [plan] }).replace(/\s*\n\s*/g, " ")).toContain(`-/+ replace exchange mplogin because durable: false -> true then re-creates its 1 binding ! ${note}`);
    const json = (planJson({ clusters: [plan] }) as { clusters: { actions: { op: string; notes?: string[] }[] }[] }).clusters[0]!.actions.find((a) => a.op === "replace");
    expect(json?.notes).toEqual([expect.stringContaining(note), expect.stringMatching(/^publishers: /)]);
    expect(plan.actions.some((a) => a.op === "delete" && a.before.kind === "queue" && a.before.name === "mpold.async")).toBe(true);
    expect(json?.notes?.[0]).not.toMatch(/other\.x|mpold\.async/);
    expect(json?.notes?.[0]).toMatch(/stop what makes those queues dead-letter \(a message TTL, workers that reject\) and what publishes to those exchanges for the apply/);
    // Only a queue: only its dead letters to stop.
    const queueOnly = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "exchange"), transient, senders[0]!]), "mp");
    expect(renderText({ clusters: [queueOnly] }).replace(/\s*\n\s*/g, " ")).toContain("queue retry.x dead-letters to it (x-dead-letter-exchange): in the moment between its delete and its re-creation with its bindings RabbitMQ drops what that sends it, without a word (no publisher hears of it; measured: tens of milliseconds of that flow a replace); stop what makes those queues dead-letter (a message TTL, workers that reject) for the apply");
    // An exchange nothing sends to gets no such note.
    const alone = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "exchange"), transient, senders[3]!]), "mp");
    expect(renderText({ clusters: [alone] })).not.toMatch(/dead letters and unroutable messages/);
  });

  it("says of a quorum queue that dead-letters at least once to a replaced exchange that it keeps what it sends, and of an alternate exchange that a mandatory publish comes back", () => {
    // Measured on 3.10.8 and 4.3.6: such a queue held all 20 messages that expired while its
    // dead-letter exchange was missing and sent them on at the broker's next retry, 174 s after
    // the exchange came back; a publish marked mandatory to an exchange whose alternate exchange
    // is missing came back with 312 NO_ROUTE.
    const transient = exchange({ name: "mplogin", durable: false });
    const keepsArgs = { "x-message-ttl": 1, "x-dead-letter-exchange": "mplogin", "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish" };
    const keeper = queue({ name: "retry.q", type: "quorum", arguments: keepsArgs });
    const front = exchange({ name: "front", type: "direct", arguments: { "alternate-exchange": "mplogin" } });
    const oneLine = (plan: ReturnType<typeof diffCluster>) => renderText({ clusters: [plan] }).replace(/\s*\n\s*/g, " ");
    const onlyKeeper = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "exchange"), transient, keeper]), "mp");
    const kept =
      "dead letters: queue retry.q dead-letters to it (x-dead-letter-exchange, at least once): it keeps what it dead-letters while it is re-created (quorum, x-dead-letter-strategy at-least-once), and RabbitMQ sends it on once the exchange routes it again, at its next retry (measured: 174 s later): none is lost, but it waits";
    expect(oneLine(onlyKeeper)).toContain(`then re-creates its 1 binding ! ${kept} ! publishers:`);
    expect(oneLine(onlyKeeper)).not.toMatch(/dead letters and unroutable messages|stop what makes/);
    // Beside an alternate exchange's sender: that one drops, and a mandatory publisher hears of it.
    const both = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "exchange"), transient, keeper, front]), "mp");
    expect(oneLine(both)).toContain(
      "! dead letters and unroutable messages: exchange front sends what it cannot route to it (alternate-exchange): in the moment between its delete and its re-creation with its bindings RabbitMQ drops what that sends it, without a word (no publisher hears of it, unless it publishes mandatory to those exchanges: then the message comes back, 312 NO_ROUTE; measured: tens of milliseconds of that flow a replace); stop what publishes to those exchanges for the apply (docs/safety.md); queue retry.q dead-letters to it (x-dead-letter-exchange, at least once): it keeps",
    );
    // At least once only where the broker honours it: not without reject-publish, nor under a
    // policy whose overflow overrides it, nor for a classic queue.
    const { "x-overflow": _overflow, ...withoutOverflow } = keepsArgs;
    const noReject = queue({ name: "retry.q", type: "quorum", arguments: withoutOverflow });
    const dropHead = policy({ name: "their-overflow", pattern: "^retry\\.", definition: { overflow: "drop-head" } });
    const classic = queue({ name: "retry.q", arguments: keepsArgs });
    for (const extra of [[noReject], [keeper, dropHead], [classic]]) {
      const plan = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "exchange"), transient, ...extra]), "mp");
      expect(oneLine(plan)).toContain("! dead letters and unroutable messages: queue retry.q dead-letters to it (x-dead-letter-exchange): in the moment between its delete and its re-creation with its bindings RabbitMQ drops what that sends it, without a word (no publisher hears of it;");
    }
  });

  it("says under a delete what its consumers meet, in --json as in text", () => {
    const plan = diffCluster(d, actual([...d.resources, queue({ name: "mpold.async" })]), "mp");
    const del = plan.actions.find((a) => a.op === "delete" && a.before.kind === "queue" && a.before.name === "mpold.async");
    expect(del).toBeDefined();
    Object.assign(del!, { consumers: 2 });
    const text = renderText({ clusters: [plan] });
    expect(text).toContain("- delete queue mpold.async [2 consumers]\n      ! 2 consumers are attached: apply refuses to delete it while any is");
    expect(text).toContain("      ! the consumers may be Celery workers: ");
    const json = (planJson({ clusters: [plan] }) as { clusters: { actions: { op: string; name: string; notes?: string[] }[] }[] }).clusters[0]!.actions.find((a) => a.op === "delete" && a.name === "mpold.async");
    expect(json?.notes).toEqual([expect.stringMatching(/^2 consumers are attached: apply refuses/), expect.stringMatching(/^the consumers may be Celery workers: /)]);
    // Each note of the JSON is a "!" line of the text.
    for (const n of json?.notes ?? []) expect(text).toContain(`      ! ${n}\n`);
  });

  it("deletes the holding queue of a service the file dropped with its own bindings, not as bindings it does not manage", () => {
    // A replace of mplogin.async killed half-way, then mplogin removed from the file: the holding
    // queue has the service's binding and the auto-delete fanout of its own name, both topo's.
    const hold = "topo.hold.mplogin.async";
    const own = [binding({ source: "mplogin", destination: hold, routingKey: "mplogin.async.#" }), binding({ source: hold, destination: hold, routingKey: "" })];
    const users = binding({ source: "audit", destination: hold, routingKey: "#" });
    const d2 = desiredOf(raw({ services: [{ name: "mpwallet", sync: false }] }), "async");
    const a = actual([...d2.resources, exchange({ name: "mplogin" }), queue({ name: hold }), exchange({ name: hold, type: "fanout", durable: false, autoDelete: true }), exchange({ name: "audit", type: "fanout" }), ...own, users], {
      queueFacts: { [hold]: { messages: 3, ready: 3, unacked: 0, consumers: 0, bytes: 3 } },
    });
    const plan = diffCluster(d2, a, "mp");
    const deletes = plan.actions.filter((x) => x.op === "delete");
    expect(deletes.map((x) => keyOf(x.before)).sort()).toEqual(["exchange|mplogin", `queue|${hold}`]);
    const dropExchange = deletes.find((x) => x.before.kind === "exchange");
    const dropHold = deletes.find((x) => x.before.kind === "queue");
    expect(dropExchange?.op === "delete" && dropExchange.unmanaged).toBeFalsy();
    // A binding someone else made onto it is still named, and nothing is refused as lost.
    expect(dropHold?.op === "delete" && dropHold.unmanaged?.map(keyOf)).toEqual([keyOf(users)]);
    expect(deletes.some((x) => x.op === "delete" && x.lost?.length)).toBe(false);
    const text = renderText({ clusters: [plan] });
    expect(text).toContain(`  - delete queue ${hold} [holds 3 messages]\n      ! also removes 1 binding topo does not manage: audit -> ${hold} [#]\n      ! it holds the messages of an interrupted replace of queue mplogin.async, which the file no longer lists`);
    expect(text).not.toContain("--allow-unmanaged-deletes");
  });

  it("says under a replace or delete of a queue another client holds exclusive that apply stops at it, and what to do", () => {
    const mine = queue({ name: "mplogin.async", exclusive: true, durable: false, autoDelete: true });
    const note = "! queue mplogin.async is exclusive to another client's connection: nothing else may delete or declare it (405 RESOURCE_LOCKED), so apply stops at it; RabbitMQ deletes it when that connection closes: close that client, then apply makes the queue as the file says";
    const replaced = diffCluster(d, actual([...d.resources.filter((r) => r.kind !== "queue"), mine]), "mp");
    expect(renderText({ clusters: [replaced] })).toContain(`  -/+ replace queue mplogin.async\n      because durable: false -> true`);
    expect(renderText({ clusters: [replaced] })).toContain(`      ${note}`);
    const d2 = desiredOf(raw({ services: [{ name: "mpwallet", sync: false }] }), "async");
    const deleted = diffCluster(d2, actual([...d2.resources, exchange({ name: "mplogin" }), mine]), "mp");
    expect(renderText({ clusters: [deleted] })).toContain(`  - delete queue mplogin.async\n      ${note.replace("close that client, then apply makes the queue as the file says", "close that client, and the queue goes with it")}`);
  });

  it("deletes only what it owns", () => {
    const extra: Resource[] = [
      exchange({ name: "mpold" }),
      queue({ name: "mpold.async" }),
      binding({ source: "mpold", destination: "mpold.async" }),
      exchange({ name: "billing" }),
      queue({ name: "billing.q" }),
      queue({ name: "topo.lock", exclusive: true }),
      binding({ source: "billing", destination: "mplogin.async", routingKey: "r" }),
      { kind: "policy", name: "user-policy", pattern: ".*", applyTo: "queues", priority: 9, definition: {} },
      { kind: "policy", name: "topo.mp.mirror.async", pattern: ".*", applyTo: "queues", priority: 0, definition: {} },
    ];
    const plan = diffCluster(d, actual([...d.resources, ...extra]), "mp");
    expect(plan.actions.map((a) => `${a.op} ${a.key}`)).toEqual([
      "delete policy|topo.mp.mirror.async",
      "delete exchange|mpold",
      "delete queue|mpold.async",
      "delete binding|mpold|queue|mpold.async|mpold.async.#|{}",
    ]);
    const own = new Ownership("mp");
    expect(own.owns(exchange({ name: "amq.topic" }))).toBe(false);
    expect(own.owns(exchange({ name: "" }))).toBe(false);
  });

  it("does not plan the bindings of a queue whose node is down: they are unknown, not missing", () => {
    const withoutBindings = d.resources.filter((r) => r.kind !== "binding");
    const plan = diffCluster(d, actual(withoutBindings, { queueFacts: { "mplogin.async": { state: "down", node: "a@h" } } }), "mp");
    expect(plan.actions).toEqual([]);
    expect(plan.degraded).toEqual([expect.stringMatching(/^1 queue is unavailable because its node is down \(mplogin\.async\)/)]);
  });

  it("reports a user's queue whose node is down as a warning, not drift, and says what a plan that takes an exchange risks", () => {
    const userQueue = queue({ name: "audit" });
    const facts = { audit: { state: "down", node: "c@h" } };
    const plan = diffCluster(d, actual([...d.resources, userQueue], { queueFacts: facts }), "mp");
    expect(plan.actions).toEqual([]);
    expect(plan.degraded).toEqual([]);
    expect(plan.warnings).toContainEqual("1 queue is unavailable because its node is down (audit); their bindings cannot be read until the node is back; topo does not manage it");
    // The file drops an exchange: a binding of audit's to it would go unseen.
    const mpold = exchange({ name: "mpold" });
    const dropping = diffCluster(d, actual([...d.resources, mpold, userQueue], { queueFacts: facts }), "mp");
    expect(dropping.actions.map((a) => `${a.op} ${a.key}`)).toEqual(["delete exchange|mpold"]);
    expect(dropping.warnings.join("\n")).toMatch(/topo does not manage it, but a binding of it from an exchange this plan deletes or replaces would go with that exchange unseen: apply once the node is back/);
  });

  it("reports the file's quorum queues without a majority of members online as degraded, and no one else's", () => {
    const members = ["a@h", "b@h", "c@h"];
    const facts = {
      "mplogin.async": { state: "running", node: "a@h", members, online: ["b@h"] },
      "billing.jobs": { state: "running", node: "a@h", members, online: [] },
    };
    const plan = diffCluster(d, actual([...d.resources, queue({ name: "billing.jobs" })], { queueFacts: facts }), "mp");
    expect(plan.actions).toEqual([]);
    expect(plan.degraded).toEqual(["1 quorum queue has no majority of its members online (mplogin.async: 1 of 3 online (b@h)): it takes no messages and delivers none until enough of its nodes are back"]);
    // Two of three online is a majority: the queue works.
    const fine = diffCluster(d, actual(d.resources, { queueFacts: { "mplogin.async": { state: "running", node: "a@h", members, online: ["a@h", "b@h"] } } }), "mp");
    expect(fine.degraded).toEqual([]);
  });

  it("reports the file's queues RabbitMQ lists as crashed or stopped as degraded, and no one else's", () => {
    const userQueue = queue({ name: "billing.jobs" });
    const facts = { "mplogin.async": { state: "crashed", node: "a@h" }, "billing.jobs": { state: "crashed", node: "a@h" } };
    const plan = diffCluster(d, actual([...d.resources, userQueue], { queueFacts: facts }), "mp");
    expect(plan.actions).toEqual([]);
    expect(plan.degraded).toEqual([
      "1 queue has crashed and RabbitMQ gave up restarting it (mplogin.async): it refuses declares and publishes routed to it are nacked, though the management API still lists it with its bindings; the log of node a@h says why, and restarting the node starts it again",
    ]);
    const stopped = diffCluster(d, actual(d.resources, { queueFacts: { "mplogin.async": { state: "stopped" } } }), "mp");
    expect(stopped.degraded).toEqual([expect.stringMatching(/^1 queue is stopped \(mplogin\.async\): vhost a is not running on its node .*rabbitmqctl restart_vhost -p a starts it again$/)]);
    // 3.x with stats off says "live", 4.x "running": neither is degraded.
    for (const state of ["live", "running", "flow"]) expect(diffCluster(d, actual(d.resources, { queueFacts: { "mplogin.async": { state } } }), "mp").degraded).toEqual([]);
  });

  it("updates a policy in place", () => {
    const p = d.resources.find((r) => r.kind === "vhost")!;
    const desired = desiredOf(raw(), "sync");
    const pol = desired.resources.find((r): r is Policy => r.kind === "policy")!;
    const plan = diffCluster(desired, actual([...desired.resources.filter((r) => r.kind !== "policy"), { ...pol, priority: 5 }, p]), "mp");
    expect(plan.actions.map((a) => a.op)).toEqual(["update"]);
    const j = planJson({ clusters: [plan] }) as any;
    expect(j.summary).toEqual({ create: 0, update: 1, replace: 0, delete: 0, degraded: 0 });
    expect(j.clusters[0].actions[0]).toMatchObject({ op: "update", kind: "policy", name: "topo.mp.mirror.sync", changed: ["priority: 5 -> 0"] });
  });

  it("plans the prefix's apply mark where the vhost holds the file's objects without it, and nowhere else", () => {
    const desired = desiredOf(raw(), "sync");
    const objects = desired.resources.filter((r) => r.kind !== "policy");
    // Made by workers: the file's objects, no mark.
    const unmarked = planCluster(desired, actual(objects), "mp");
    expect(unmarked.actions.map((a) => `${a.op} ${keyOf(subjectOf(a))}`)).toEqual(["create policy|topo.mp.mirror.sync", "create exchange|topo.mp.generation"]);
    const j = planJson({ clusters: [unmarked] }) as any;
    expect(j.clusters[0].actions[1]).toMatchObject({ op: "create", name: "topo.mp.generation", why: expect.stringMatching(/^the apply mark of prefix mp: this vhost holds the file's objects without it/) });
    // An empty vhost (its first apply makes the mark unasked) and a marked one: no mark to make.
    expect(planCluster(desired, actual([]), "mp").actions.some((a) => keyOf(subjectOf(a)) === "exchange|topo.mp.generation")).toBe(false);
    expect(planCluster(desired, actual([...desired.resources, applyMark("mp")]), "mp").actions).toEqual([]);
  });

  it("lists the actions by kind, then by name as plan prints it, creates and deletes together", () => {
    const desired = desiredOf(raw({ services: ["mpc", "mpa", "mpb_x"] }), "async");
    // mpb's are the broker's only, so plan deletes them among the creates; "mpb_x" sorts after
    // "mpb" by name, and "mpb.async" after "mpa.async", however the file or the broker lists them.
    const held = [binding({ source: "mpb", destination: "mpb.async", routingKey: "mpb.async.#" }), queue({ name: "mpb.async" }), exchange({ name: "mpb" }), applyMark("mp")];
    const plan = planCluster(desired, actual(held), "mp");
    expect(plan.actions.map((a) => `${a.op} ${subjectOf(a).kind} ${shownAs(subjectOf(a))}`)).toEqual([
      "create vhost a",
      "create exchange mpa",
      "delete exchange mpb",
      "create exchange mpb_x",
      "create exchange mpc",
      "create queue mpa.async",
      "delete queue mpb.async",
      "create queue mpb_x.async",
      "create queue mpc.async",
      "create binding mpa -> mpa.async [mpa.async.#]",
      "delete binding mpb -> mpb.async [mpb.async.#]",
      "create binding mpb_x -> mpb_x.async [mpb_x.async.#]",
      "create binding mpc -> mpc.async [mpc.async.#]",
    ]);
  });
});

describe("compatibility", () => {
  it("refuses classic mirroring on 4.x and names quorum queues", () => {
    const d = desiredOf(raw(), "sync");
    const c = compatibility(d, actual([], { version: "4.0.5" }));
    expect(c.errors[0]?.message).toMatch(/no classic queue mirroring/);
    expect(c.hints[0]).toMatch(/quorum/);
    expect(c.warnings[0]).toMatch(/transient non-exclusive queues are deprecated/);
    expect(compatibility(d, actual([], { version: "3.10.8" }))).toEqual({ errors: [], warnings: [], hints: [] });
  });
});

describe("mirroring", () => {
  it("counts a queue the file does not mirror, mirrored by a policy topo does not own, as degraded", () => {
    const un = desiredOf(raw({ services: ["mplogin", { name: "mpwallet", sync: { mirrored: false } }] }), "sync");
    const owner = (res: Resource[]) => {
      const o = Ownership.of("mp", res);
      return (p: Policy) => o.owns(p);
    };
    const theirs: Policy = { kind: "policy", name: "ha-everything", pattern: "^mp", applyTo: "queues", priority: 5, definition: { "ha-mode": "all", "ha-sync-mode": "automatic" } };
    const withUser = [...un.resources, theirs];
    expect(mirroredAgainstFile(un, actual(withUser), owner(withUser))).toEqual([
      `1 queue the file does not mirror (mirrored: false) is mirrored by policy "ha-everything", priority 5, "ha-mode": "all": mpwallet.sync; topo does not change a policy it does not own: narrow its pattern, or give the queue mirrored: true`,
    ]);
    // Another prefix's mirroring policy, written before this prefix's queues were there.
    const wider: Policy = { kind: "policy", name: "topo.m.mirror.sync", pattern: "^m[a-z_]+\\.sync$", applyTo: "queues", priority: 0, definition: { "ha-mode": "all", "ha-sync-mode": "automatic" } };
    const withOther = [...un.resources, wider];
    expect(mirroredAgainstFile(un, actual(withOther, { queueFacts: { "mpwallet.sync": { policy: "topo.m.mirror.sync" } } }), owner(withOther))).toEqual([
      expect.stringMatching(/^1 queue the file does not mirror \(mirrored: false\) is mirrored by policy "topo\.m\.mirror\.sync" \(topo's for another prefix: an apply of that prefix's file narrows its pattern/),
    ]);
    // A policy without ha-mode, a mirrored queue, or RabbitMQ 4 (no classic mirroring): nothing.
    const limits: Policy = { ...theirs, definition: { "max-length": 10 } };
    expect(mirroredAgainstFile(un, actual([...un.resources, limits]), owner([...un.resources, limits]))).toEqual([]);
    expect(mirroredAgainstFile(un, actual(un.resources), owner(un.resources))).toEqual([]);
    expect(mirroredAgainstFile(un, actual(withUser, { version: "4.0.5" }), owner(withUser))).toEqual([]);
  });

  const d = desiredOf(raw({ services: ["mplogin", "mpwallet"] }), "sync");
  const nodes = ["a@h", "b@h", "c@h"];
  const base = (facts: ActualCluster["queueFacts"], more: Partial<ActualCluster> = {}) =>
    mirroring(d, actual(d.resources, { nodes, queueFacts: facts, ...more }));

  it("is quiet when every mirror is there and synchronised", () => {
    const ok = { node: "a@h", policy: "topo.mp.mirror.sync", mirrors: ["b@h", "c@h"], synchronisedMirrors: ["b@h", "c@h"] };
    expect(base({ "mplogin.sync": ok, "mpwallet.sync": ok })).toEqual({ degraded: [], warnings: [], notCompared: [] });
  });

  it("reports a missing mirror and a down node as degraded, a synchronising one as a warning", () => {
    const r = base(
      {
        "mplogin.sync": { node: "a@h", policy: "topo.mp.mirror.sync", mirrors: ["b@h"], synchronisedMirrors: ["b@h"] },
        "mpwallet.sync": { node: "a@h", policy: "topo.mp.mirror.sync", mirrors: ["b@h", "c@h"], synchronisedMirrors: ["b@h"] },
      },
      { downNodes: [] },
    );
    expect(r.degraded).toEqual([expect.stringMatching(/^1 mirrored queue has no mirror on node c@h: mplogin\.sync/)]);
    expect(r.warnings).toEqual([expect.stringMatching(/1 mirror is still synchronising: mpwallet\.sync/)]);
    const down = base({}, { nodes: ["a@h", "b@h"], downNodes: ["c@h"] });
    expect(down.degraded).toEqual([expect.stringMatching(/^node c@h is down/)]);
    // Both are of the nodes as they are now: a plan that changes topo's policies does not say
    // "once this plan is applied:" of them (rv2).
    expect(r.ofNodes).toEqual(r.degraded);
    expect(down.ofNodes).toEqual(down.degraded);
  });

  it("says it did not verify mirroring when the management user may not list the nodes, rather than say nothing", () => {
    const why = "the management user u may not list the cluster's nodes (it needs the monitoring tag)";
    const r = mirroring(d, actual(d.resources, { nodes: [], nodesUnreadable: why, queueFacts: { "mplogin.sync": { node: "a@h", policy: "topo.mp.mirror.sync" } } }));
    expect(r.degraded).toEqual([]);
    expect(r.warnings).toEqual([
      `mirroring not verified: ${why}, so topo cannot tell whether 2 queues the file mirrors (mplogin.sync, mpwallet.sync) have mirrors on every running node, nor whether a node is down; give u the monitoring tag besides its others: rabbitmqctl set_user_tags u TAGS... monitoring, where TAGS are the tags it has now (rabbitmqctl list_users shows them): the command replaces the user's tags`,
    ]);
    // Where its tags were read, the command keeps every one of them: set_user_tags replaces them,
    // and "policymaker monitoring" for everyone took the tags a user had besides.
    const tagged = mirroring(d, actual(d.resources, { nodes: [], nodesUnreadable: why, managementTags: ["deployer", "policymaker"] }));
    expect(tagged.warnings[0]).toMatch(/give u the monitoring tag besides its others: rabbitmqctl set_user_tags u deployer policymaker monitoring \(set_user_tags replaces the user's tags: this keeps the 2 tags it has, deployer, policymaker\)$/);
    // So plan's last line does not say "No changes." of what it did not look at.
    expect(r.notCompared).toEqual(["mirroring"]);
    // Nothing to verify: no mirrored queue, or RabbitMQ 4 (no mirroring).
    expect(mirroring(desiredOf(raw({ defaults: { sync: { mirrored: false } } }), "sync"), actual([], { nodesUnreadable: why }))).toMatchObject({ warnings: [], notCompared: [] });
    expect(mirroring(d, actual([], { version: "4.0.5", nodesUnreadable: why }))).toMatchObject({ warnings: [], notCompared: [] });
  });

  it("warns when a user policy shadows topo's, and counts the unmirrored queues as degraded", () => {
    const user: Policy = { kind: "policy", name: "limits", pattern: "^mplogin\\.", applyTo: "queues", priority: 5, definition: { "max-length": 10 } };
    const a = actual([...d.resources, user], { nodes, queueFacts: { "mplogin.sync": { node: "a@h", policy: "limits" } } });
    const r = mirroring(d, a);
    expect(r.warnings).toEqual([expect.stringMatching(/policy "limits" \(priority 5\) shadows topo's mirroring policy \(priority 0\) on 1 queue \(mplogin\.sync\)/)]);
    expect(r.degraded).toEqual([expect.stringMatching(/1 queue is not mirrored because another policy applies to it: mplogin\.sync \(effective policy "limits"\)/)]);
    const low = mirroring(d, actual([...d.resources, { ...user, priority: -1 }], { nodes }));
    expect(low.warnings).toEqual([expect.stringMatching(/policy "limits" \(priority -1\) matches 1 queue topo mirrors \(mplogin\.sync\), but topo's mirroring policy takes precedence, so "limits"'s settings do not apply/)]);
  });

  it("a user policy of topo's priority: RabbitMQ's choice between the two is not defined, so plan says it cannot tell, not that topo's wins", () => {
    // Measured on 3.10 with both at priority 0: "userpol" set before topo's won, "zzz" set before it lost.
    const user: Policy = { kind: "policy", name: "limits", pattern: "^mplogin\\.", applyTo: "queues", priority: 0, definition: { "max-length": 10 } };
    const tied = mirroring(d, actual([...d.resources, user], { nodes }));
    expect(tied.warnings).toEqual([
      'policy "limits" (priority 0) matches 1 queue topo mirrors (mplogin.sync) with the same priority as topo\'s mirroring policy: RabbitMQ applies one of the two and does not define which, so either topo\'s applies and "limits"\'s settings do not, or "limits"\'s applies and it is not mirrored; give "limits" a priority above 0 and add the ha- keys to it, or one below 0',
    ]);
    // One that mirrors to every node too: mirrored either way, and plan does not say otherwise.
    const ha = mirroring(d, actual([...d.resources, { ...user, definition: { "ha-mode": "all" } }], { nodes }));
    expect(ha.warnings).toEqual([expect.stringMatching(/or "limits"'s applies and it is mirrored by it \(ha-mode all\);/)]);
    expect(tied.degraded).toEqual([]);
    // Once the broker names the user's policy as the one it applies, the queue is not mirrored.
    const told = mirroring(d, actual([...d.resources, user], { nodes, queueFacts: { "mplogin.sync": { node: "a@h", policy: "limits" } } }));
    expect(told.degraded).toEqual([expect.stringMatching(/1 queue is not mirrored because another policy applies to it: mplogin\.sync \(effective policy "limits"\)/)]);
    expect(told.warnings.join("\n")).not.toMatch(/takes precedence/);
  });

  it("a user policy whose pattern topo cannot read is not taken as missing the queue: until the broker names the queue's policy, topo says it cannot tell", () => {
    // PCRE reads (?i); JavaScript cannot. RabbitMQ may apply this policy, and it has no ha-mode.
    const odd: Policy = { kind: "policy", name: "nocase", pattern: "(?i)^MPLOGIN\\.", applyTo: "queues", priority: 5, definition: { "max-length": 10 } };
    const fresh = mirroring(d, actual([...d.resources, odd], { nodes, queueFacts: { "mplogin.sync": { node: "a@h" } } }));
    expect(fresh.warnings).toEqual([
      'topo cannot tell whether 2 queues are mirrored (mplogin.sync, mpwallet.sync): policy "nocase" (priority 5, above topo\'s 0) has a pattern topo cannot read ("(?i)^MPLOGIN\\."), and RabbitMQ has not yet said which policy applies to them; run topo plan again once it has (a few seconds after a declare), or write the pattern without PCRE-only syntax',
    ]);
    expect(fresh.degraded).toEqual([]);
    // Once the broker names the policy it applies, that answer decides.
    const told = mirroring(d, actual([...d.resources, odd], { nodes, queueFacts: { "mplogin.sync": { node: "a@h", policy: "nocase" }, "mpwallet.sync": { node: "a@h", policy: "topo.mp.mirror.sync" } } }));
    expect(told.degraded).toEqual([expect.stringMatching(/1 queue is not mirrored because another policy applies to it: mplogin\.sync \(effective policy "nocase"\)/)]);
    expect(told.warnings.join("\n")).not.toMatch(/cannot tell/);
    // Below topo's priority it cannot win.
    expect(mirroring(d, actual([...d.resources, { ...odd, priority: -1 }], { nodes })).warnings).toEqual([]);
  });

  it("a user policy with ha-mode all but no automatic synchronisation: degraded, since a mirror added later holds none of what was queued", () => {
    const ok = { node: "a@h", policy: "ha", mirrors: ["b@h", "c@h"], synchronisedMirrors: ["b@h", "c@h"] };
    const ha = (def: Record<string, unknown>): Policy => ({ kind: "policy", name: "ha", pattern: "^mplogin\\.", applyTo: "queues", priority: 5, definition: { "ha-mode": "all", ...def } });
    const none = mirroring(d, actual([...d.resources, ha({})], { nodes, queueFacts: { "mplogin.sync": ok } }));
    expect(none.degraded).toEqual([
      'mirrored by policy "ha" without "ha-sync-mode": "automatic" (it has none, and RabbitMQ\'s default is manual): mplogin.sync; a mirror added after a node restarts holds none of the messages queued before it, so a failover then loses them; add "ha-sync-mode": "automatic" to "ha", or narrow its pattern to let topo\'s policy apply'.replace(/^/, "1 queue is "),
    ]);
    expect(mirroring(d, actual([...d.resources, ha({ "ha-sync-mode": "manual" })], { nodes, queueFacts: { "mplogin.sync": ok } })).degraded).toEqual([expect.stringMatching(/^1 queue is mirrored by policy "ha" without "ha-sync-mode": "automatic" \(it has "manual"\)/)]);
    expect(mirroring(d, actual([...d.resources, ha({ "ha-sync-mode": "automatic" })], { nodes, queueFacts: { "mplogin.sync": ok } })).degraded).toEqual([]);
    // A queue plan creates is judged once it exists.
    expect(mirroring(d, actual([...d.resources.filter((r) => !(r.kind === "queue" && r.name === "mplogin.sync")), ha({})], { nodes })).degraded).toEqual([]);
  });

  it("a user policy with ha-mode all that applies mirrors the queue: not degraded, and the warning says so", () => {
    const ha: Policy = { kind: "policy", name: "ha", pattern: "^mplogin\\.", applyTo: "queues", priority: 5, definition: { "ha-mode": "all", "ha-sync-mode": "automatic" } };
    const ok = { node: "a@h", policy: "ha", mirrors: ["b@h", "c@h"], synchronisedMirrors: ["b@h", "c@h"] };
    const r = mirroring(d, actual([...d.resources, ha], { nodes, queueFacts: { "mplogin.sync": ok } }));
    expect(r.degraded).toEqual([]);
    expect(r.warnings).toEqual([expect.stringMatching(/^policy "ha" \(priority 5\) shadows topo's mirroring policy \(priority 0\) on 1 queue \(mplogin\.sync\): it has "ha-mode": "all", so they are mirrored/)]);
    expect(r.warnings.join("")).not.toMatch(/not mirrored|add "ha-mode"/);
    // Its mirrors are still checked like topo's.
    const short = mirroring(d, actual([...d.resources, ha], { nodes, queueFacts: { "mplogin.sync": { ...ok, mirrors: ["b@h"] } } }));
    expect(short.degraded).toEqual([expect.stringMatching(/^1 mirrored queue has no mirror on node c@h: mplogin\.sync/)]);
  });

  it("a user policy with another ha-mode mirrors to some nodes only: degraded", () => {
    const two: Policy = { kind: "policy", name: "ha-two", pattern: "^mplogin\\.", applyTo: "queues", priority: 5, definition: { "ha-mode": "exactly", "ha-params": 2 } };
    const r = mirroring(d, actual([...d.resources, two], { nodes, queueFacts: { "mplogin.sync": { node: "a@h", policy: "ha-two" } } }));
    expect(r.warnings).toEqual([expect.stringMatching(/its "ha-mode": "exactly" mirrors them to some nodes, not to every node/)]);
    expect(r.degraded).toEqual([expect.stringMatching(/^1 queue is not mirrored to every node because another policy applies to it: mplogin\.sync \(effective policy "ha-two", ha-mode exactly\)/)]);
  });

  it("plan and import give one answer: mirroringOf", () => {
    const q = d.queues[0]!.queue;
    const topo = d.resources.filter((r): r is Policy => r.kind === "policy");
    const ours = (p: Policy) => p.name.startsWith("topo.");
    const user = (priority: number, definition: Policy["definition"]): Policy => ({ kind: "policy", name: "u", pattern: ".", applyTo: "queues", priority, definition });
    expect(mirroringOf(q, topo, undefined, ours)).toEqual({ by: "topo" });
    expect(mirroringOf(q, [...topo, user(1, { "ha-mode": "all" })], undefined, ours)).toEqual({ by: "user-all", policy: "u" });
    expect(mirroringOf(q, [...topo, user(0, { "ha-mode": "all" })], undefined, ours)).toEqual({ by: "topo" });
    expect(mirroringOf(q, [...topo, user(1, { "ha-mode": "nodes" })], undefined, ours)).toEqual({ by: "user-partial", policy: "u", mode: "nodes" });
    expect(mirroringOf(q, [...topo, user(1, { "max-length": 1 })], undefined, ours)).toEqual({ by: "none" });
    expect(mirroringOf(q, [...topo, { ...user(1, { "ha-mode": "all" }), applyTo: "quorum_queues" }], undefined, ours)).toEqual({ by: "topo" });
    expect(mirroringOf(q, [...topo, user(0, { "ha-mode": "all" })], "u", ours)).toEqual({ by: "user-all", policy: "u" });
  });

  it("does nothing on RabbitMQ 4, which has no classic mirroring", () => {
    expect(mirroring(d, actual(d.resources, { version: "4.0.5", nodes }))).toEqual({ degraded: [], warnings: [], notCompared: [] });
  });
});

describe("redact", () => {
  it("masks URL passwords and registered secrets", () => {
    const secrets = new Redactor();
    secrets.add("s3cr3t-Zebra");
    expect(secrets.url("amqp://u:s3cr3t-Zebra@h/v")).toBe("amqp://u:***@h/v");
    expect(secrets.text("failed for http://x:y@h:1/a and s3cr3t-Zebra")).toBe("failed for http://x:***@h:1/a and ***");
  });
});

describe("a plan of some of the file's clusters (--cluster)", () => {
  it("names the clusters it did not read on its last line, and in --json", () => {
    const d = desiredOf(raw({ services: ["mplogin"] }), "sync");
    const same = diffCluster(d, actual(d.resources), "mp");
    expect(same.actions).toEqual([]);
    expect(renderText({ clusters: [same], unread: ["async"] }).split("\n").at(-1)).toBe("No changes. Cluster async was not read (--cluster).");
    expect(renderText({ clusters: [same] }).split("\n").at(-1)).toBe("No changes.");
    const more = diffCluster(d, actual([]), "mp");
    expect(renderText({ clusters: [more], unread: ["async", "audit"] }).split("\n").at(-1)).toMatch(/^Plan: \d+ to create, 0 to update, 0 to replace, 0 to delete\. Clusters async, audit were not read \(--cluster\)\.$/);
    expect(planJson({ clusters: [same], unread: ["async"] })).toMatchObject({ unread: ["async"] });
    expect(planJson({ clusters: [same] })).not.toHaveProperty("unread");
  });
});
