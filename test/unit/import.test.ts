// topo import's pure core on plain objects: what a broker holds → the file that describes it, and
// the list of what the file cannot describe. No broker, no files but the schema.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { readBackGenerated } from "../../src/commands/import.js";
import { TopoError } from "../../src/errors.js";
import { describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { normalize, type RawConfig } from "../../src/config/normalize.js";
import { parseConfig } from "../../src/config/load.js";
import type { ActualCluster, Args, Binding, Exchange, Policy, Queue, Resource } from "../../src/model.js";
import { keyOf } from "../../src/core/keys.js";
import { renderAction } from "../../src/plan/render.js";
import { applyMark } from "../../src/plan/diff.js";
import { markedPrefix } from "../../src/core/naming.js";
import { inferTopology, kindsHeld, valueProblem, type ImportSource, type Inference } from "../../src/import/infer.js";
import { emitTopology } from "../../src/import/emit.js";
import { sectionVariables, splitPassword } from "../../src/import/sections.js";

const ROOT = join(import.meta.dirname, "../..");
const SCHEMA = JSON.parse(readFileSync(join(ROOT, "schemas/topology.schema.json"), "utf8"));
const ARG_SCHEMAS = SCHEMA.definitions.arguments.properties;

// --- builders -------------------------------------------------------------------------------
const queue = (o: Partial<Queue> & { name: string }): Queue => ({ kind: "queue", type: "classic", durable: true, autoDelete: false, exclusive: false, arguments: {}, ...o });
const exchange = (o: Partial<Exchange> & { name: string }): Exchange => ({ kind: "exchange", type: "topic", durable: true, autoDelete: false, internal: false, arguments: {}, ...o });
const binding = (o: Partial<Binding> & { source: string; destination: string }): Binding => ({ kind: "binding", destinationType: "queue", routingKey: `${o.destination}.#`, arguments: {}, ...o });
const policy = (o: Partial<Policy> & { name: string; pattern: string }): Policy => ({ kind: "policy", applyTo: "queues", priority: 0, definition: { "ha-mode": "all", "ha-sync-mode": "automatic" }, ...o });
const TOPO_MIRROR = policy({ name: "topo.mp.mirror.sync", pattern: "^(?:topo\\.hold\\.)?mp[a-z_]+\\.sync$" });
const actual = (resources: Resource[], o: Partial<ActualCluster> = {}): ActualCluster => ({ vhostExists: true, version: "3.10.8", nodes: [], resources, queueFacts: {}, ...o });

/** What a kombu worker declares for one service's queue of a kind (exchange, queue, binding). */
function service(name: string, kind: "sync" | "async", q: Partial<Queue> = {}): Resource[] {
  return [exchange({ name }), queue({ name: `${name}.${kind}`, durable: kind === "async", ...q }), binding({ source: name, destination: `${name}.${kind}` })];
}
const src = (name: string, resources: Resource[], o: Partial<ActualCluster> = {}): ImportSource => ({ name, vhost: name, actual: actual([{ kind: "vhost", name }, ...resources], o) });
const NAME_MAX: number = SCHEMA.definitions.serviceName.maxLength;
/**
 * Each source as a vhost where the prefix's apply has run (its apply mark is there) unless
 * `unmarked`: what these tests are about is what else the vhost holds.
 */
const infer = (sources: ImportSource[], prefix = "mp", unmarked = false): Inference =>
  inferTopology(unmarked ? sources : sources.map((s) => (s.actual.resources.some((r) => r.kind === "exchange" && r.name === applyMark(prefix).name) ? s : { ...s, actual: { ...s.actual, resources: [...s.actual.resources, applyMark(prefix)] } })), {
    prefix,
    argumentSchemas: ARG_SCHEMAS,
    serviceNameMaxLength: NAME_MAX,
  });

/** The clusters section import would write for these sources, pointing at their vhosts. */
const sections = (sources: ImportSource[]) => sources.map((s, i) => ({ name: s.name, section: { url: `amqp://guest:\${RABBITMQ_PASSWORD}@host${i}:5672/${encodeURIComponent(s.vhost)}` } }));
const emit = (inf: Inference, sources: ImportSource[]) => emitTopology({ inference: inf, clusters: sections(sources) });

/** Every change plan will show, as plan prints its first line, per cluster. */
const changes = (inf: Inference) => Object.fromEntries(inf.clusters.map((c) => [c.name, c.changes.map((ch) => renderAction(ch.action)[0])]));
const FALLBACK = /differs from anything the file can describe/;

/** Apply a file in imagination: the objects normalize wants become what the broker holds. */
function brokerFor(raw: RawConfig): ImportSource[] {
  const { desired, problems } = normalize(raw);
  expect(problems).toEqual([]);
  // As topo's apply leaves a vhost: with the prefix's apply mark.
  return desired.clusters.map((c) => ({ name: c.target.name, vhost: c.target.amqp.vhost, actual: actual([...c.resources, applyMark(desired.prefix)]) }));
}

/** The broker of `raw` as workers or a definitions import made it: without the prefix's apply mark. */
function unmarkedBrokerFor(raw: RawConfig): ImportSource[] {
  const { desired } = normalize(raw);
  return desired.clusters.map((c) => ({ name: c.target.name, vhost: c.target.amqp.vhost, actual: actual(c.resources) }));
}
const CLUSTERS = { sync: { url: "amqp://h/sync" }, async: { url: "amqp://h/async" } };

// --- round trip -----------------------------------------------------------------------------
describe("import of what topo made", () => {
  const files: [string, RawConfig][] = [
    ["the README example", { version: 1, clusters: CLUSTERS, services: ["mplogin", "mpwallet", { name: "mppayment", sync: false, async: { arguments: { "x-max-length": 100000 } } }] }],
    [
      "quorum sync queues, shared arguments and a mirrored classic exception",
      {
        version: 1,
        clusters: CLUSTERS,
        defaults: { sync: { type: "quorum", arguments: { "x-max-length": 1000 } }, async: { arguments: { "x-message-ttl": 60000 } } },
        services: ["mpa", { name: "mpb", sync: { arguments: { "x-delivery-limit": 5 } } }, { name: "mpc", sync: { type: "classic", durable: false, mirrored: true, arguments: { "x-max-length": 10 } }, async: { arguments: { "x-message-ttl": 1 } } }],
      },
    ],
    [
      "one cluster holding both kinds, renamed, with another prefix",
      { version: 1, prefix: "svc_", clusters: { main: { url: "amqp://h/%2F" } }, defaults: { sync: { cluster: "main", mirrored: false }, async: { cluster: "main" } }, services: ["svc_a", { name: "svc_b", async: false }] },
    ],
    ["some sync queues mirrored, by name", { version: 1, clusters: CLUSTERS, services: ["mpa", { name: "mpb", sync: { mirrored: false } }, "mpc", { name: "mpd", sync: { type: "stream", arguments: { "x-max-age": "7D" } } }] }],
  ];
  it.each(files)("reads %s back to the same objects, with nothing to change", (_label, raw) => {
    const sources = brokerFor(raw);
    const inf = infer(sources, raw.prefix ?? "mp");
    expect(changes(inf)).toEqual(Object.fromEntries(sources.map((s) => [s.name, []])));
    expect(inf.clusters.every((c) => c.kept.length === 0)).toBe(true);
    // The emitted text, read as topo reads files, wants exactly what the broker holds.
    const text = emit(inf, sources);
    const back = parseConfig(text, "imported.yaml", { RABBITMQ_PASSWORD: "x" });
    for (const s of sources) {
      const dc = back.clusters.find((c) => c.target.name === s.name)!;
      // All but the apply mark, which is apply's, not the file's.
      const held = s.actual.resources.filter((r) => !(r.kind === "exchange" && markedPrefix(r) !== undefined));
      expect(dc.resources.map(keyOf)).toEqual(held.map(keyOf));
      expect(dc.resources).toEqual(held.map((r) => (r.kind === "vhost" ? { ...r, name: s.vhost } : r)));
    }
  });
});

describe("a vhost that holds the file's services without the prefix's apply mark", () => {
  it("plans the mark, with why: a file of a shorter prefix would take the services for its own", () => {
    const raw: RawConfig = { version: 1, prefix: "mpx", clusters: CLUSTERS, services: ["mpxfoo"] };
    const inf = infer(unmarkedBrokerFor(raw), "mpx", true);
    for (const c of inf.clusters) {
      expect(c.changes.map((ch) => renderAction(ch.action)[0])).toEqual(["+ create exchange topo.mpx.generation (fanout, durable, internal)"]);
      expect(c.changes[0]?.why).toBe("the vhost holds these services without prefix mpx's apply mark, which apply adds, so that a file of a shorter prefix leaves them alone");
    }
  });
});

// --- defaults and overrides -----------------------------------------------------------------
describe("defaults", () => {
  it("are the common settings, so matching services are plain names and missing kinds are false", () => {
    const sync = src("sync", [...service("mpa", "sync"), ...service("mpb", "sync"), ...service("mpc", "sync", { durable: true }), TOPO_MIRROR]);
    const async = src("async", [...service("mpa", "async"), ...service("mpb", "async"), ...service("mpd", "async")]);
    const { body } = infer([sync, async]);
    expect(body.defaults).toEqual({
      sync: { cluster: "sync", durable: false, mirrored: true },
      async: { cluster: "async", durable: true, mirrored: false },
    });
    expect(body.services).toEqual(["mpa", "mpb", { name: "mpc", sync: { durable: true }, async: false }, { name: "mpd", sync: false }]);
  });

  it("hold an argument only when every queue of the kind has it, with the most common value", () => {
    const ttl = (n: number, extra: Args = {}) => ({ arguments: { "x-message-ttl": n, ...extra } });
    const async = src("async", [
      ...service("mpa", "async", ttl(1000)),
      ...service("mpb", "async", ttl(1000, { "x-max-length": 5 })),
      ...service("mpc", "async", ttl(2000)),
      ...service("mpd", "async", ttl(1000, { "x-max-length": 5 })),
    ]);
    const { body } = infer([async]);
    // x-max-length cannot be a default: a service cannot remove a default argument.
    expect(body.defaults.async).toEqual({ cluster: "async", durable: true, mirrored: false, arguments: { "x-message-ttl": 1000 } });
    expect(body.services).toEqual([
      { name: "mpa", sync: false },
      { name: "mpb", sync: false, async: { arguments: { "x-max-length": 5 } } },
      { name: "mpc", sync: false, async: { arguments: { "x-message-ttl": 2000 } } },
      { name: "mpd", sync: false, async: { arguments: { "x-max-length": 5 } } },
    ]);
  });

  it("put a lone service's arguments on the service, not in the defaults", () => {
    const { body } = infer([src("async", service("mpa", "async", { arguments: { "x-max-length": 5 } }))]);
    expect(body.defaults.async?.arguments).toBeUndefined();
    expect(body.services).toEqual([{ name: "mpa", sync: false, async: { arguments: { "x-max-length": 5 } } }]);
  });

  it("take the majority's queue type; a classic exception says all it is", () => {
    const sync = src("sync", [
      ...service("mpa", "sync", { type: "quorum", durable: true }),
      ...service("mpb", "sync", { type: "quorum", durable: true }),
      ...service("mpc", "sync"),
      TOPO_MIRROR,
    ]);
    const { body } = infer([sync]);
    expect(body.defaults.sync).toEqual({ cluster: "sync", type: "quorum" });
    expect(body.services).toEqual([
      { name: "mpa", async: false },
      { name: "mpb", async: false },
      { name: "mpc", sync: { type: "classic", durable: false, mirrored: true }, async: false },
    ]);
  });

  it("put each kind on the cluster that holds most of its queues, and name the cluster where a queue differs", () => {
    const a = src("rabbit-a", [...service("mpa", "sync"), ...service("mpb", "sync"), ...service("mpc", "async")]);
    const b = src("rabbit-b", [...service("mpc", "sync"), ...service("mpa", "async"), ...service("mpb", "async")]);
    const { body } = infer([a, b]);
    expect(body.defaults.sync?.cluster).toBe("rabbit-a");
    expect(body.defaults.async?.cluster).toBe("rabbit-b");
    expect(body.services).toEqual(["mpa", "mpb", { name: "mpc", sync: { cluster: "rabbit-b" }, async: { cluster: "rabbit-a" } }]);
  });
});

// --- mirroring ------------------------------------------------------------------------------
describe("mirroring", () => {
  it("a queue topo's policy covers is mirrored; with no policy it is not", () => {
    expect(infer([src("sync", [...service("mpa", "sync"), TOPO_MIRROR])]).body.defaults.sync?.mirrored).toBe(true);
    expect(infer([src("sync", service("mpa", "sync"))]).body.defaults.sync?.mirrored).toBe(false);
  });

  it("a user's ha-mode all policy counts as mirrored, and plan creates topo's policy, saying why", () => {
    const user = policy({ name: "ha-sync", pattern: "\\.sync$", priority: 1 });
    const inf = infer([src("sync", [...service("mpa", "sync"), ...service("mpb", "sync"), user])]);
    expect(inf.body.defaults.sync?.mirrored).toBe(true);
    const [create] = inf.clusters[0]!.changes;
    expect(renderAction(create!.action)[0]).toBe("+ create policy topo.mp.mirror.sync (pattern ^(?:topo\\.hold\\.)?mp[a-z_]+\\.sync$, ha-mode=all, ha-sync-mode=automatic, priority 0)");
    expect(create!.why).toMatch(/user's policy ha-sync \(mpa\.sync, mpb\.sync\) mirrors sync queues with ha-mode all/);
    expect(inf.clusters[0]!.kept).toEqual([expect.stringMatching(/^policy ha-sync .*it mirrors mpa\.sync, mpb\.sync, which the file marks mirrored: true/)]);
  });

  it("the policy the broker reports wins over pattern matching (only one policy applies on 3.x)", () => {
    const limits = policy({ name: "limits", pattern: "^mpa", priority: 5, definition: { "max-length": 10 } });
    const inf = infer([src("sync", [...service("mpa", "sync"), ...service("mpb", "sync"), TOPO_MIRROR, limits], { queueFacts: { "mpa.sync": { policy: "limits" } } })]);
    expect(inf.body.services).toEqual([{ name: "mpa", sync: { mirrored: false }, async: false }, { name: "mpb", async: false }]);
    // topo's policy now names the one mirrored queue: an update plan shows.
    expect(changes(inf).sync).toEqual(["~ update policy topo.mp.mirror.sync"]);
  });

  it("another ha-mode is not what mirrored: true means: the file says false and leaves the user's policy be", () => {
    const two = policy({ name: "ha-two", pattern: "^mp", definition: { "ha-mode": "exactly", "ha-params": 2 } });
    const inf = infer([src("sync", [...service("mpa", "sync"), two])]);
    expect(inf.body.defaults.sync?.mirrored).toBe(false);
    expect(changes(inf).sync).toEqual([]);
    expect(inf.clusters[0]!.kept).toEqual([expect.stringMatching(/^policy ha-two .*mirrors mpa\.sync with ha-mode "exactly".*the file says mirrored: false/)]);
  });
});

// --- what the file cannot describe ----------------------------------------------------------
describe("what the file cannot describe", () => {
  const sync = src("sync", [
    ...service("mpok", "sync"),
    ...service("mpauto", "sync", { autoDelete: true }),
    exchange({ name: "mpold" }),
    queue({ name: "mpnoex.sync", durable: false }),
    ...service("mpkeys", "sync").filter((r) => r.kind !== "binding"),
    binding({ source: "mpkeys", destination: "mpkeys.sync", routingKey: "mpkeys.sync.*" }),
    binding({ source: "mpok", destination: "mpauto.sync", routingKey: "x" }),
    ...service("mpdirect", "sync").map((r) => (r.kind === "exchange" ? { ...r, type: "direct", arguments: { "alternate-exchange": "ae" } } : r)),
    exchange({ name: "billing", type: "direct" }),
    queue({ name: "billing.jobs" }),
    binding({ source: "billing", destination: "mpok.sync", routingKey: "b" }),
    binding({ source: "mpold", destination: "billing.jobs", routingKey: "b" }),
    policy({ name: "user-limits", pattern: "^billing", priority: 1, definition: { "max-length": 10 } }),
    policy({ name: "topo.mp.custom", pattern: "^x$", definition: { "max-length": 1 } }),
    TOPO_MIRROR,
  ]);
  const async = src("async", [
    ...service("mpok", "async", { arguments: { "x-custom": "k", "x-max-length": 5 } }),
    ...service("mptimeout", "async", { arguments: { "x-consumer-timeout": "60000" } }),
    ...service("mpauto", "sync", { autoDelete: true }),
  ]);
  const inf = infer([sync, async]);

  it("lists exactly the changes plan will show, each with why", () => {
    expect(changes(inf)).toEqual({
      sync: [
        "- delete policy topo.mp.custom",
        "-/+ replace exchange mpdirect",
        "+ create exchange mpnoex (topic, durable)",
        "- delete exchange mpold",
        "-/+ replace queue mpauto.sync",
        "+ create binding mpkeys -> mpkeys.sync [mpkeys.sync.#]",
        "- delete binding mpkeys -> mpkeys.sync [mpkeys.sync.*]",
        "+ create binding mpnoex -> mpnoex.sync [mpnoex.sync.#]",
        "- delete binding mpok -> mpauto.sync [x]",
      ],
      async: [
        "- delete exchange mpauto",
        "- delete queue mpauto.sync",
        "-/+ replace queue mpok.async",
        "-/+ replace queue mptimeout.async",
        "- delete binding mpauto -> mpauto.sync [mpauto.sync.#]",
      ],
    });
    for (const c of inf.clusters) for (const ch of c.changes) expect(ch.why, renderAction(ch.action)[0]).not.toMatch(FALLBACK);
    const why = (cluster: string, line: string) => inf.clusters.find((c) => c.name === cluster)!.changes.find((ch) => renderAction(ch.action)[0] === line)!.why;
    expect(why("sync", "-/+ replace queue mpauto.sync")).toMatch(/cannot describe auto-delete queues/);
    expect(why("sync", "- delete exchange mpold")).toMatch(/no queue of service mpold is on this cluster/);
    expect(why("sync", "+ create exchange mpnoex (topic, durable)")).toMatch(/queue mpnoex\.sync has no exchange mpnoex/);
    expect(why("sync", "-/+ replace exchange mpdirect")).toMatch(/cannot describe exchange properties/);
    expect(why("sync", "- delete binding mpok -> mpauto.sync [x]")).toMatch(/from one service's exchange to another service's queue/);
    expect(why("sync", "+ create binding mpkeys -> mpkeys.sync [mpkeys.sync.#]")).toMatch(/only with \[mpkeys\.sync\.\*\]/);
    expect(why("async", "-/+ replace queue mpok.async")).toMatch(/argument x-custom="k" cannot be written in the file \(topo does not know argument x-custom\)/);
    expect(why("async", "-/+ replace queue mptimeout.async")).toMatch(/x-consumer-timeout "60000" is not an integer/);
    expect(why("async", "- delete queue mpauto.sync")).toMatch(/the file puts mpauto\.sync on cluster sync/);
    expect(why("sync", "- delete policy topo.mp.custom")).toMatch(/not a policy topo makes/);
  });

  it("describes every queue it can, with the arguments it can write", () => {
    expect(inf.body.services).toEqual([
      { name: "mpauto", async: false },
      { name: "mpdirect", async: false },
      { name: "mpkeys", async: false },
      { name: "mpnoex", async: false },
      { name: "mpok", async: { arguments: { "x-max-length": 5 } } },
      { name: "mptimeout", sync: false },
    ]);
  });

  it("lists what topo leaves alone, and what is outside the namespace", () => {
    const s = inf.clusters.find((c) => c.name === "sync")!;
    expect(s.kept).toEqual([
      expect.stringMatching(/^policy user-limits \(pattern \^billing, apply-to queues, priority 1, max-length=10\): a user's policy\.$/),
      expect.stringMatching(/^binding billing -> mpok\.sync \[b\]: its source is not a service's exchange, .*topo leaves it alone/),
      expect.stringMatching(/^binding mpold -> billing\.jobs \[b\]: its destination is not a service's sync or async queue, .*it goes when topo apply deletes exchange mpold/),
    ]);
    expect(s.outside).toEqual({ exchanges: ["billing"], queues: ["billing.jobs"], users: [] });
  });

  it("says it all in comments at the top of a file that validates", () => {
    const text = emit(inf, [sync, async]);
    expect(text.split("\n")[0]).toBe("# yaml-language-server: $schema=./schemas/topology.schema.json");
    const comments = text.split("\n").filter((l) => l.startsWith("#")).join("\n");
    for (const c of inf.clusters) for (const ch of c.changes) expect(comments).toContain(`#   ${renderAction(ch.action)[0]}`);
    expect(comments).toContain("#   policy user-limits (pattern ^billing");
    expect(comments).toMatch(/# Outside topo's namespace \(prefix "mp"\).*\n#   cluster sync: exchanges billing; queues billing\.jobs/);
    expect(() => parseConfig(text, "imported.yaml", { RABBITMQ_PASSWORD: "x" })).not.toThrow();
  });
});

describe("operator policies", () => {
  it("lists each as left alone, with the file's queues it applies to, and names with spaces quoted", () => {
    // A file holds no operator policy, so a vhost made from it has none: import named those that
    // cap a queue (degraded) and no other, and the copy silently lacked them.
    const ops = [
      policy({ name: "cap", pattern: "^mpa\\.", definition: { "max-length": 5 } }),
      policy({ name: "unused", pattern: "^zzz$", definition: { "message-ttl": 5 }, priority: 2 }),
      policy({ name: "low", pattern: "^mpa\\.", definition: { expires: 100000 }, priority: -1 }),
    ];
    const s = src("sync", [...service("mpa", "sync"), TOPO_MIRROR, policy({ name: "user pol", pattern: "^zz", definition: { "max-length": 1 } })], { operatorPolicies: ops });
    const kept = infer([s]).clusters[0]!.kept;
    expect(kept).toEqual([
      `policy "user pol" (pattern ^zz, apply-to queues, priority 0, max-length=1): a user's policy.`,
      `operator policy cap (pattern ^mpa\\., apply-to queues, priority 0, max-length=5): an operator policy; it applies to 1 queue of this file (mpa.sync).`,
      `operator policy unused (pattern ^zzz$, apply-to queues, priority 2, message-ttl=5): an operator policy.`,
      // Only the highest-priority match applies, as RabbitMQ picks one operator policy.
      `operator policy low (pattern ^mpa\\., apply-to queues, priority -1, expires=100000): an operator policy.`,
    ]);
  });
});

describe("users topo did not mark", () => {
  it("names their rights on the vhost under what is outside the namespace", () => {
    const s = src("sync", [...service("mpa", "sync"), TOPO_MIRROR, { kind: "user", name: "billing", tags: [] }, { kind: "permission", user: "billing", configure: "", write: ".*", read: ".*" }]);
    const inf = infer([s]);
    expect(inf.clusters[0]!.outside.users).toEqual(["billing"]);
    expect(emit(inf, [s])).toContain(`#   cluster sync: the rights here of users without topo's tag topo.mp: billing`);
  });
});

describe("a service name longer than the file allows", () => {
  // RabbitMQ takes names of up to 255 bytes; the schema's service names stop short of that. Import
  // wrote such a service into the file, failed its own read-back and blamed a bug in topo.
  const long = `mp${"a".repeat(NAME_MAX - 1)}`;
  const sync = src("sync", [...service("mpok", "sync"), ...service(long, "sync")]);
  const inf = infer([sync]);

  it("is left out of a file that validates, and what plan does about it is listed with why", () => {
    expect(JSON.stringify(inf.body.services)).not.toContain(long);
    expect(inf.queues).toBe(1);
    expect(changes(inf)).toEqual({ sync: [`- delete exchange ${long}`, `- delete queue ${long}.sync`, `- delete binding ${long} -> ${long}.sync [${long}.sync.#]`] });
    for (const ch of inf.clusters[0]!.changes) expect(ch.why).toContain(`service name ${long} is ${NAME_MAX + 1} characters long; a topology file's service names have at most ${NAME_MAX}`);
    expect(() => parseConfig(emit(inf, [sync]), "imported.yaml", { RABBITMQ_PASSWORD: "x" })).not.toThrow();
  });
});

describe("an exchange named like a service but not of the shape topo makes, with no queue of its service", () => {
  // plan never deletes it or its bindings, and warns that it leaves it alone; import said nothing of
  // it and that everything in the namespace was described.
  const sync = src("sync", [
    ...service("mpa", "sync"),
    exchange({ name: "mpdirect", type: "direct" }),
    exchange({ name: "mpalt", arguments: { "alternate-exchange": "x" } }),
    binding({ source: "mpdirect", destination: "mpa.sync", routingKey: "k" }),
  ]);
  const inf = infer([sync]);

  it("is listed as left alone, with its bindings, and plan shows no changes", () => {
    expect(changes(inf)).toEqual({ sync: [] });
    expect(inf.clusters[0]!.kept).toEqual([
      expect.stringMatching(/^exchange mpdirect \(direct\): named like a service of prefix "mp" but not the durable topic exchange without arguments topo makes, and no queue of service mpdirect is in the file here, so topo leaves it and its bindings alone\.$/),
      expect.stringMatching(/^exchange mpalt \(topic, with arguments\): named like a service/),
      expect.stringMatching(/^binding mpdirect -> mpa\.sync \[k\]: its exchange mpdirect is left alone, and so is it\.$/),
    ]);
    expect(emit(inf, [sync])).not.toContain("Everything in topo's namespace is described");
  });
});

describe("a longer prefix another topology uses on the vhost", () => {
  // mpx's apply mark and policy show that mpxfoo is the mpx file's, as plan reads it. Import with
  // prefix mp wrote mpxfoo into the mp file, whose plan then warned that both files claim it and
  // widened mp's mirror policy over mpx's queues.
  const mpxPolicy = policy({ name: "topo.mpx.mirror.sync", pattern: "^(?:topo\\.hold\\.)?mpx[a-z_]+\\.sync$" });
  const main = src("main", [
    ...service("mplogin", "sync"),
    ...service("mplogin", "async").filter((r) => r.kind !== "exchange"),
    ...service("mpxfoo", "sync"),
    ...service("mpxfoo", "async").filter((r) => r.kind !== "exchange"),
    exchange({ name: "topo.mpx.generation", arguments: { "x-topo-generation": "1" } }),
    mpxPolicy,
    policy({ name: "topo.mp.mirror.sync", pattern: "^(?:topo\\.hold\\.)?mp(?!x)[a-z_]+\\.sync$" }),
  ]);
  const inf = infer([main]);

  it("leaves its services out of the file, which plans no changes", () => {
    expect(inf.body.services).toEqual(["mplogin"]);
    expect(inf.queues).toBe(2);
    expect(changes(inf)).toEqual({ main: [] });
    expect(inf.clusters[0]!.kept.join("\n")).not.toMatch(/mpx/);
    expect(inf.clusters[0]!.outside).toEqual({ exchanges: ["mpxfoo", "topo.mpx.generation"], queues: ["mpxfoo.sync", "mpxfoo.async"], users: [] });
    const back = parseConfig(emit(inf, [main]), "imported.yaml", { RABBITMQ_PASSWORD: "x" });
    expect(back.clusters[0]!.resources.map(keyOf).filter((k) => k.includes("mpx"))).toEqual([]);
  });

  it("does not name a cluster after the kinds of its queues", () => {
    const onlyMpx = src("main", [...service("mpxfoo", "sync"), exchange({ name: "topo.mpx.generation" })]);
    expect(kindsHeld(onlyMpx.actual, "mp")).toEqual([]);
  });
});

describe("an interrupted replace", () => {
  it("is shown as the replace apply finishes, not as objects to delete", () => {
    const async = src("async", [
      exchange({ name: "mpa" }),
      queue({ name: "mpa.async" }),
      queue({ name: "topo.hold.mpa.async" }),
      binding({ source: "mpa", destination: "topo.hold.mpa.async", routingKey: "mpa.async.#" }),
    ]);
    const inf = infer([async]);
    expect(inf.body.services).toEqual([{ name: "mpa", sync: false }]);
    const c = inf.clusters[0]!;
    expect(c.changes.map((ch) => renderAction(ch.action)[0])).toEqual(["-/+ replace queue mpa.async", "+ create binding mpa -> mpa.async [mpa.async.#]"]);
    expect(c.changes[0]!.why).toMatch(/a replace by topo apply was interrupted; topo apply finishes it/);
    expect(c.changes[1]!.why).not.toMatch(FALLBACK);
    expect(c.kept).toEqual([]);
    expect(c.outside).toEqual({ exchanges: [], queues: [], users: [] });
  });
});

// --- emission -------------------------------------------------------------------------------
describe("emission", () => {
  it("keeps argument types: a number stays a number, a string that looks like one stays a string, $ stays $", () => {
    const args = { "x-max-length": 100000, "x-dead-letter-exchange": "dlx$1${HOME}", "x-dead-letter-routing-key": "123", "x-single-active-consumer": true };
    const sources = [src("async", service("mpa", "async", { arguments: args }))];
    const inf = infer(sources);
    const text = emit(inf, sources);
    expect(text).toContain("x-max-length: 100000");
    expect(text).toContain('x-dead-letter-routing-key: "123"');
    const back = parseConfig(text, "imported.yaml", { RABBITMQ_PASSWORD: "x", HOME: "/root" });
    expect(back.clusters[0]!.queues[0]!.queue.arguments).toEqual(args);
  });

  it("writes short settings in flow style and a plain name for a service that matches the defaults", () => {
    const sources = brokerFor({ version: 1, clusters: CLUSTERS, services: ["mplogin", { name: "mppay", sync: false, async: { arguments: { "x-max-length": 1 } } }] });
    const text = emit(infer(sources), sources);
    expect(text).toContain("  sync: { cluster: sync, durable: false, mirrored: true }\n");
    expect(text).toContain("  - mplogin\n  - name: mppay\n    sync: false\n    async: { arguments: { x-max-length: 1 } }\n");
  });

  it("cannot be broken out of a comment by a name the broker holds", () => {
    const sources = [src("sync", [...service("mpa", "sync"), queue({ name: "evil\r\nservices: []\u2028x" }), TOPO_MIRROR])];
    const text = emit(infer(sources), sources);
    const doc = parseDocument(text);
    expect(doc.errors).toEqual([]);
    expect(doc.toJS().services).toEqual([{ name: "mpa", async: false }]);
    expect(text).toContain("evil\\u000d\\u000aservices: []\\u2028x");
  });

  it("writes a value with a control or format character double-quoted and escaped (a bidi override, a tab, a C1 control), so it reads the same and shows what it holds", () => {
    const odd = "dlx\u202etxt\tend\u0085x";
    const sources = [src("async", service("mpa", "async", { arguments: { "x-dead-letter-exchange": odd } }))];
    const text = emit(infer(sources), sources);
    expect(text).not.toMatch(/[\u202e\u0085\t]/);
    expect(text).toContain('"dlx\\u202etxt\\tend\\u0085x"');
    const doc = parseDocument(text);
    expect(doc.errors).toEqual([]);
    expect(doc.toJS().services).toEqual([{ name: "mpa", sync: false, async: { arguments: { "x-dead-letter-exchange": odd } } }]);
  });

  it("masks what the redactor masks in comments, e.g. credentials in a policy value", () => {
    const p = policy({ name: "fed", pattern: "^billing", definition: { "federation-upstream": "amqp://u:Secr3t@up" } });
    const sources = [src("sync", [...service("mpa", "sync"), p])];
    const text = emitTopology({ inference: infer(sources), clusters: sections(sources), redact: (s) => s.replace("Secr3t", "***") });
    expect(text).not.toContain("Secr3t");
    expect(text).toContain("amqp://u:***@up");
  });

  it("keeps a cluster section given as a yaml node, with its comments and ${VAR} references", () => {
    const node = parseDocument("url: amqp://topo:${PW}@h:5672/sync   # the sync cluster\nmanagement: http://h:15672\n").contents;
    const sources = [src("sync", [...service("mpa", "sync"), TOPO_MIRROR])];
    const text = emitTopology({ inference: infer(sources), clusters: [{ name: "sync", section: node }] });
    expect(text).toContain("  sync:\n    url: amqp://topo:${PW}@h:5672/sync # the sync cluster\n    management: http://h:15672\n");
  });
});

// --- smaller pieces -------------------------------------------------------------------------
describe("pieces", () => {
  it("checks argument values against the schema's fragments", () => {
    expect(valueProblem(ARG_SCHEMAS["x-max-length"], 5)).toBeUndefined();
    expect(valueProblem(ARG_SCHEMAS["x-max-length"], "5")).toBe('"5" is not an integer');
    expect(valueProblem(ARG_SCHEMAS["x-max-priority"], 0)).toBe("0 is below the minimum 1");
    expect(valueProblem(ARG_SCHEMAS["x-overflow"], "drop-tail")).toMatch(/is not one of "drop-head"/);
    expect(valueProblem(ARG_SCHEMAS["x-max-age"], "7 days")).toMatch(/does not match/);
  });

  it("knows which kinds a cluster holds", () => {
    expect(kindsHeld(actual(service("mpa", "sync")), "mp")).toEqual(["sync"]);
    expect(kindsHeld(actual([...service("mpa", "sync"), ...service("mpa", "async")]), "mp")).toEqual(["sync", "async"]);
    expect(kindsHeld(actual([queue({ name: "other.sync" })]), "mp")).toEqual([]);
  });

  it("finds a URL's password as written, skipping ${VAR} references", () => {
    expect(splitPassword("amqp://u:p%40ss@h:5672/v")).toEqual({ before: "amqp://u:", password: "p%40ss", after: "@h:5672/v" });
    expect(splitPassword("amqp://u:${P:-a@b}@h/v")).toEqual({ before: "amqp://u:", password: "${P:-a@b}", after: "@h/v" });
    expect(splitPassword("amqp://u@h/v")).toBeUndefined();
    expect(splitPassword("amqp://h/v")).toBeUndefined();
    expect(splitPassword("${SYNC_URL}")).toBeUndefined();
    expect(splitPassword("http://u:pw@h:15672")).toEqual({ before: "http://u:", password: "pw", after: "@h:15672" });
  });

  it("names the variables the clusters' sections read, copied from a file or written for a --url", () => {
    const copied = parseDocument('sync: { url: "amqp://u:${SYNC_PW:-x}@h/v", management: "http://${MGMT_HOST}:15672" }').get("sync", true);
    expect(sectionVariables([copied, { url: "amqp://u:${RABBITMQ_PASSWORD}@h/v" }])).toEqual(["SYNC_PW", "MGMT_HOST", "RABBITMQ_PASSWORD"]);
  });
});

describe("the cluster sections import writes", async () => {
  const { Document, parseDocument } = await import("yaml");
  const yamlOf = (n: unknown) => {
    const d = new Document();
    d.contents = n as never;
    return d.toString();
  };
  const { PasswordVariables, rewriteSection, schemaReference, urlSection, urlSections } = await import("../../src/import/sections.js");
  const text = [
    "# yaml-language-server: $schema=../schemas/topology.schema.json",
    "version: 1",
    "base: &conn { url: 'amqp://u:s3cret@h/a' }",
    "clusters:",
    "  sync:",
    "    url: amqp://u:s3cret@h:5672/s   # the sync vhost",
    "    management: http://admin:other@h:15672",
    "    tls: { ca: ca.pem }",
    "  async: *conn",
    "  ref:",
    "    url: amqp://u:${PW}@h/r",
    "services: []",
  ].join("\n");
  const doc = parseDocument(text);

  it("replaces each literal password by a variable, one per password, keeps references and comments", () => {
    const vars = new PasswordVariables("RABBITMQ_PASSWORD");
    const sync = rewriteSection(doc, "sync", vars, (p) => `../x/${p}`);
    const async = rewriteSection(doc, "async", vars, (p) => p);
    const ref = rewriteSection(doc, "ref", vars, (p) => p);
    expect(yamlOf(sync)).toContain("url: amqp://u:${RABBITMQ_PASSWORD}@h:5672/s # the sync vhost");
    expect(yamlOf(sync)).toContain("management: http://admin:${RABBITMQ_PASSWORD_SYNC_MANAGEMENT}@h:15672");
    expect(yamlOf(sync)).toContain("ca: ../x/ca.pem");
    // The alias is resolved to what it means here, and its password is the first one again.
    expect(yamlOf(async)).toContain("url: amqp://u:${RABBITMQ_PASSWORD}@h/a");
    expect(yamlOf(ref)).toContain("url: amqp://u:${PW}@h/r");
    expect(vars.introduced).toEqual({ RABBITMQ_PASSWORD: "s3cret", RABBITMQ_PASSWORD_SYNC_MANAGEMENT: "other" });
    expect(vars.notices("t.yaml")).toEqual([
      expect.stringMatching(/^clusters\.sync\.url and clusters\.async\.url in t\.yaml hold passwords, which import does not copy: this file reads them from \$\{RABBITMQ_PASSWORD\}/),
      expect.stringMatching(/^clusters\.sync\.management in t\.yaml holds a password/),
    ]);
    // The user's document itself is left as it was.
    expect(doc.toString()).toContain("amqp://u:s3cret@h:5672/s");
  });

  it("rewrites a password a section takes through a merge key (<<), from a cluster or from elsewhere", async () => {
    const { writtenPasswords } = await import("../../src/import/sections.js");
    const merged = parseDocument(
      [
        "version: 1",
        "shared: &mgmt { management: 'http://admin:M%2Fpw@h:15672' }",
        "clusters:",
        "  sync: &broker",
        "    url: amqp://u:S3cr%2Ft@h/s",
        "  async:",
        "    <<: *broker",
        "    url: amqp://u:S3cr%2Ft@h/a",
        "  third:",
        "    <<: [*mgmt, { url: 'amqp://u:Inl1ne@h/t' }]",
        "services: []",
      ].join("\n"),
      { merge: true },
    );
    const vars = new PasswordVariables("RABBITMQ_PASSWORD");
    const out = ["sync", "async", "third"].map((n) => yamlOf(rewriteSection(merged, n, vars, (p) => p))).join("\n");
    expect(out).not.toMatch(/S3cr|M%2Fpw|Inl1ne|<</);
    expect(out).toContain("url: amqp://u:${RABBITMQ_PASSWORD}@h/a");
    expect(out).toContain("url: amqp://u:${RABBITMQ_PASSWORD_THIRD}@h/t");
    expect(out).toContain("management: http://admin:${RABBITMQ_PASSWORD_THIRD_MANAGEMENT}@h:15672");
    expect(writtenPasswords(merged).sort()).toEqual(["Inl1ne", "M%2Fpw", "S3cr%2Ft", "S3cr%2Ft"]);
  });

  it("masks a password in the section's comments, in whatever form, and keeps the other comments", async () => {
    const { Redactor } = await import("../../src/redact.js");
    const commented = parseDocument(
      [
        "version: 1",
        "clusters:",
        "  sync:",
        "    # hs-p4 / S3cr3t%2BPass%3Dword (the ops vault has it)",
        "    url: amqp://hs-p4:S3cr3t%2BPass%3Dword@localhost:5672/hs-sync   # was amqp://hs-p4:S3cr3t%2BPass%3Dword@old-host",
        "    # old: amqp:/other:Hunter22@old",
        "    management: http://localhost:15672 # S3cr3t+Pass=word, lower: S3cr3t%2bPass%3dword",
        "    tls: { ca: ca.pem } # the CA",
        "  async:",
        "    # nothing secret here",
        "    url: amqp://u:${PW}@h/a",
        "services: []",
      ].join("\n"),
    );
    const redactor = new Redactor();
    redactor.add("S3cr3t+Pass=word");
    const masked: string[] = [];
    const mask = (c: string) => {
      const m = redactor.text(c);
      if (m !== c) masked.push(c);
      return m;
    };
    const vars = new PasswordVariables("RABBITMQ_PASSWORD");
    const sync = yamlOf(rewriteSection(commented, "sync", vars, (p) => p, mask));
    const async = yamlOf(rewriteSection(commented, "async", vars, (p) => p, mask));
    expect(sync).not.toMatch(/S3cr3t|Pass|Hunter22/);
    expect(sync).toContain("# hs-p4 / *** (the ops vault has it)");
    expect(sync).toContain("# was amqp://hs-p4:***@old-host");
    expect(sync).toContain("# old: amqp:/other:***@old");
    expect(sync).toContain("# the CA");
    expect(async).toContain("# nothing secret here");
    expect(masked).toHaveLength(4);
  });

  it("keeps the schema reference, rebased", () => {
    expect(schemaReference(text, doc, (p) => `../${p}`)).toEqual({ schemaLine: "yaml-language-server: $schema=../../schemas/topology.schema.json", schemaKey: undefined });
    expect(schemaReference("version: 1\n", parseDocument("version: 1\n"), (p) => p).schemaLine).toBe("yaml-language-server: $schema=./schemas/topology.schema.json");
  });

  it("writes a --url with its password as a reference, and $ doubled", () => {
    expect(urlSection("amqp://u:p%2Fw@h:5672/v$x", "PW")).toEqual({ written: "amqp://u:${PW}@h:5672/v$$x", password: "p%2Fw", user: "u" });
    expect(urlSection("amqp://h/v", "PW")).toEqual({ written: "amqp://h/v", password: undefined, user: "" });
    expect(urlSection("not a url", "PW")).toBeUndefined();
  });

  it("keeps guest/guest as written, from a file or a --url: no secret, and a file that worked without a variable keeps working without one", () => {
    expect(urlSection("amqp://guest:guest@127.0.0.1:5672/v", "PW")).toEqual({ written: "amqp://guest:guest@127.0.0.1:5672/v", user: "guest", guest: true });
    expect(urlSection("amqp://guest:other@127.0.0.1/v", "PW")).toMatchObject({ written: "amqp://guest:${PW}@127.0.0.1/v", password: "other" });
    const both = urlSections([{ name: "sync", url: "amqp://guest:guest@h/s" }], "PW", "set");
    expect(both).toEqual({ sections: [{ url: "amqp://guest:guest@h/s" }], introduced: {}, notices: [] });
    const doc = parseDocument("clusters:\n  a: { url: 'amqp://guest:guest@h/a', management: 'http://guest:guest@h:15672' }\n  b: { url: 'amqp://guest:gu%65st@h/b' }\n  c: { url: 'amqp://admin:guest@h/c' }\n");
    const vars = new PasswordVariables("PW");
    const out = ["a", "b", "c"].map((n) => (rewriteSection(doc, n, vars, (p) => p).toJSON() as { url: string; management?: string }));
    expect(out).toEqual([{ url: "amqp://guest:guest@h/a", management: "http://guest:guest@h:15672" }, { url: "amqp://guest:gu%65st@h/b" }, { url: "amqp://admin:${PW}@h/c" }]);
    expect(vars.notices("f.yaml")).toEqual([expect.stringMatching(/^clusters\.c\.url in f\.yaml holds a password/)]);
  });

  it("refuses a --url without // or host, whose password a URL parser reads as a path", () => {
    // "amqp:u:p@h" parses with no host and the user-info as its path: written as "amqp://" + path,
    // it became a working URL with the password in it.
    for (const raw of ["amqp:hi-u1:Secret1@127.0.0.1:5672/v", "amqp:/hi-u1:Secret1@127.0.0.1/v", "hi-u1:Secret1@127.0.0.1/v", "amqp:///v"]) {
      expect(urlSection(raw, "PW"), raw).toBeUndefined();
    }
  });

  it("gives --url clusters one variable per distinct password, as a file's get, and keeps $PW for a --url without one", () => {
    const one = urlSections([{ name: "sync", url: "amqp://u:p1@h/s" }, { name: "async", url: "amqp://u:p1@h/a" }], "PW", undefined);
    expect(one.sections).toEqual([{ url: "amqp://u:${PW}@h/s" }, { url: "amqp://u:${PW}@h/a" }]);
    expect(one.introduced).toEqual({ PW: "p1" });
    expect(one.notices).toEqual([expect.stringMatching(/^The password given in --url is not written: this file reads it from \$\{PW\}; export PW /)]);

    const two = urlSections([{ name: "sync", url: "amqp://u:p1@h/s" }, { name: "async", url: "amqp://v:p2@h/a", management: "http://h:15672" }], "PW", undefined);
    expect(two.sections).toEqual([{ url: "amqp://u:${PW}@h/s" }, { url: "amqp://v:${PW_ASYNC}@h/a", management: "http://h:15672" }]);
    expect(two.introduced).toEqual({ PW: "p1", PW_ASYNC: "p2" });
    expect(two.notices).toEqual([
      expect.stringMatching(/^The password given in --url for cluster sync is not written: this file reads it from \$\{PW\}; export PW /),
      expect.stringMatching(/^The password given in --url for cluster async is not written: this file reads it from \$\{PW_ASYNC\}; export PW_ASYNC /),
    ]);

    // $PW holds the password of the --url typed without one: a different typed one gets its own.
    const mixed = urlSections([{ name: "sync", url: "amqp://u@h/s" }, { name: "async", url: "amqp://u:p2@h/a" }, { name: "main", url: "amqp://u:p0@h/m" }], "PW", "p0");
    expect(mixed.sections.map((s) => s.url)).toEqual(["amqp://u:${PW}@h/s", "amqp://u:${PW_ASYNC}@h/a", "amqp://u:${PW}@h/m"]);
    expect(mixed.introduced).toEqual({ PW: "p0", PW_ASYNC: "p2" });
    expect(mixed.notices).toHaveLength(2);
  });
});

describe("a generated text that does not validate (a bug in import)", () => {
  it("is placed in the generated text, with its line, never at FILE:LINE:COL of a file that does not hold it", () => {
    const checkPath = join(tmpdir(), "topo-import-check", "topology.yaml");
    const text = "version: 1\nprefix: mp\nclusters:\n  sync:\n    url: amqp://guest:${RABBITMQ_PASSWORD}@127.0.0.1:5672/s\nservices:\n  - MpBad\n";
    let error: unknown;
    try {
      readBackGenerated(text, checkPath, { RABBITMQ_PASSWORD: "pw" });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TopoError);
    const message = (error as TopoError).message;
    expect(message).not.toContain(`${checkPath}:`);
    expect(message).toContain(
      `the file import made does not validate; this is a bug in topo, and nothing was written\nthe places are lines of the text import generated, which was not written (to ${checkPath} or anywhere else):\n  line 7, column 5 of the generated text: services[0]: service name "MpBad" must match `,
    );
    expect(message.endsWith("\n    7 |   - MpBad")).toBe(true);
  });
});
