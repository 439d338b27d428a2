// The per-version rule table (plan/broker-rules.ts) as plan uses it. test/integration/
// broker-rules.test.ts proves the table itself on real brokers.

import { describe, expect, it } from "vitest";
import { permitsOf, type QueueDeclare } from "../../src/plan/broker-rules.js";
import { compatibility } from "../../src/plan/compat.js";
import { parseConfig } from "../../src/config/load.js";
import type { ActualCluster, DesiredCluster } from "../../src/model.js";

/** The refusals' messages, without their places. */
const messages = (c: { errors: { message: string }[] }) => c.errors.map((e) => e.message);

function queue(o: Partial<QueueDeclare> & { name?: string; autoDelete?: boolean } = {}) {
  return { kind: "queue" as const, name: o.name ?? "mplogin.sync", type: o.type ?? "classic", durable: o.durable ?? true, autoDelete: o.autoDelete ?? false, exclusive: false, arguments: o.arguments ?? {} };
}

function desired(...qs: ReturnType<typeof queue>[]): DesiredCluster {
  return {
    target: { amqp: { vhost: "async" } } as DesiredCluster["target"],
    resources: qs,
    queues: qs.map((q) => ({ service: q.name.split(".")[0] as string, traffic: "sync", cluster: "sync", queue: q, mirrored: false })),
  };
}

const actual = (version: string): ActualCluster => ({ vhostExists: true, version, nodes: [], resources: [], queueFacts: {} });

/** The phases 4.3.6 reports at GET /api/deprecated-features. */
const REPORTED_436 = [
  { name: "queue_master_locator", deprecation_phase: "denied_by_default" },
  { name: "global_qos", deprecation_phase: "denied_by_default" },
  { name: "transient_nonexcl_queues", deprecation_phase: "permitted_by_default" },
  { name: "classic_queue_mirroring", deprecation_phase: "removed" },
];

describe("plan checks what the broker permits", () => {
  it("refuses x-consumer-timeout on a classic queue on 4.3, naming the queue, the rule and the fix", () => {
    const d = desired(queue({ arguments: { "x-consumer-timeout": 60000 } }));
    const c = compatibility(d, actual("4.3.6"), permitsOf("4.3.6", REPORTED_436));
    expect(messages(c)).toHaveLength(1);
    expect(messages(c)[0]).toMatch(/^queue mplogin\.sync: x-consumer-timeout: RabbitMQ 4\.3\.6 takes x-consumer-timeout on quorum queues only/);
    expect(messages(c)[0]).toMatch(/fix: drop the argument, or use type: quorum/);
    // A consumer-timeout policy did not cancel a consumer on a classic queue on 4.3.6: not offered.
    expect(messages(c)[0]).not.toMatch(/policy/);
    expect(messages(compatibility(d, actual("4.0.5")))).toEqual([]);
    expect(messages(compatibility(d, actual("3.10.8")))).toEqual([]);
  });

  it("refuses x-queue-master-locator where the broker denies queue_master_locator, and warns where it permits it", () => {
    const d = desired(queue({ arguments: { "x-queue-master-locator": "min-masters" } }), queue({ name: "mpwallet.sync", arguments: { "x-queue-master-locator": "client-local" } }));
    const c = compatibility(d, actual("4.3.6"), permitsOf("4.3.6", REPORTED_436));
    // One line for both queues: one rule.
    expect(messages(c)).toEqual([expect.stringMatching(/^queues mplogin\.sync, mpwallet\.sync: x-queue-master-locator: .*denies the deprecated feature queue_master_locator.*fix: drop x-queue-master-locator/)]);
    const on40 = compatibility(d, actual("4.0.5"), permitsOf("4.0.5", [{ name: "queue_master_locator", deprecation_phase: "permitted_by_default" }]));
    expect(messages(on40)).toEqual([]);
    expect(on40.warnings).toEqual([expect.stringMatching(/x-queue-master-locator is deprecated.*4\.0\.5 permits it by default \(as it reports\)/)]);
  });

  it("says 4.3.6 permits transient non-exclusive queues by default, and refuses them where the broker reports them denied", () => {
    const d = desired(queue({ durable: false }));
    const c = compatibility(d, actual("4.3.6"), permitsOf("4.3.6", REPORTED_436));
    expect(messages(c)).toEqual([]);
    expect(c.warnings).toEqual([expect.stringMatching(/4\.3\.6 permits them by default \(as it reports\), but a broker whose rabbitmq\.conf denies them refuses them/)]);
    expect(c.warnings[0]).not.toMatch(/denied by default from 4\.3/);
    const deny = permitsOf("4.4.0", [{ name: "transient_nonexcl_queues", deprecation_phase: "denied_by_default" }]);
    expect(messages(compatibility(d, actual("4.4.0"), deny))).toEqual([expect.stringMatching(/durable: false: .*denies .*transient_nonexcl_queues.*fix: make the queue durable/)]);
    expect(compatibility(d, actual("3.10.8")).warnings).toEqual([]);
  });

  it("goes by the state 4.3 reports, rabbitmq.conf included, where the broker gives one", () => {
    // 4.3.6 with deprecated_features.permit.transient_nonexcl_queues = false and
    // deprecated_features.permit.queue_master_locator = true: the phase is the default, the state what it does.
    const reported = [
      { name: "transient_nonexcl_queues", deprecation_phase: "permitted_by_default", state: "denied" },
      { name: "queue_master_locator", deprecation_phase: "denied_by_default", state: "permitted" },
    ];
    const transient = desired(queue({ durable: false }));
    const c = compatibility(transient, actual("4.3.6"), permitsOf("4.3.6", reported));
    expect(messages(c)).toEqual([expect.stringMatching(/^queue mplogin\.sync: durable: false: RabbitMQ 4\.3\.6 denies the deprecated feature transient_nonexcl_queues \(its configuration denies it: deprecated_features\.permit\.transient_nonexcl_queues = false\), so it refuses transient non-exclusive queues; fix: .*deprecated_features\.permit\.transient_nonexcl_queues = true/)]);
    expect(c.warnings).toEqual([]);
    const locator = desired(queue({ arguments: { "x-queue-master-locator": "client-local" } }));
    const l = compatibility(locator, actual("4.3.6"), permitsOf("4.3.6", reported));
    expect(messages(l)).toEqual([]);
    // Beside it, the warning that the broker refuses Celery's reply queues (the queue is durable).
    expect(l.warnings).toEqual([expect.stringMatching(/^RabbitMQ 4\.3\.6 denies transient non-exclusive queues, and Celery's rpc:\/\//), expect.stringMatching(/x-queue-master-locator is deprecated.*4\.3\.6 permits it \(as it reports, its configuration included\)/)]);
    // Permitted by state: no word of a configuration the API would not show.
    const permitted = compatibility(transient, actual("4.3.6"), permitsOf("4.3.6", [{ name: "transient_nonexcl_queues", deprecation_phase: "permitted_by_default", state: "permitted" }]));
    expect(messages(permitted)).toEqual([]);
    expect(permitted.warnings).toEqual([expect.stringMatching(/4\.3\.6 permits them \(as it reports, its configuration included\); make them durable or quorum before a release that denies them/)]);
    expect(permitted.warnings[0]).not.toMatch(/does not show/);
  });

  it("warns that Celery's rpc:// reply queues are refused where the broker denies transient non-exclusive queues, once the file's own pass", () => {
    const reported = [{ name: "transient_nonexcl_queues", deprecation_phase: "permitted_by_default", state: "denied" }];
    const durableSync = desired(queue({ durable: true }));
    const c = compatibility(durableSync, actual("4.3.6"), permitsOf("4.3.6", reported));
    expect(messages(c)).toEqual([]);
    expect(c.warnings).toEqual([expect.stringMatching(/^RabbitMQ 4\.3\.6 denies transient non-exclusive queues, and Celery's rpc:\/\/ result backend, .*\(mplogin\.sync\), declares each caller's reply queue so: it is refused \(541 INTERNAL_ERROR\)/)]);
    // Permitted: nothing to say.
    expect(compatibility(durableSync, actual("4.3.6"), permitsOf("4.3.6", REPORTED_436)).warnings).toEqual([]);
  });

  it("refuses x-queue-leader-locator on a classic queue before 4.0", () => {
    const d = desired(queue({ arguments: { "x-queue-leader-locator": "balanced" } }));
    expect(messages(compatibility(d, actual("3.10.8")))).toEqual([expect.stringMatching(/x-queue-leader-locator: .*fix: drop it and use x-queue-master-locator/)]);
    expect(messages(compatibility(d, actual("4.0.5")))).toEqual([]);
  });

  it("falls back to the version's defaults when the broker's list cannot be read", () => {
    expect(permitsOf("4.3.6")).toMatchObject({ source: "version", deprecated: { queue_master_locator: "denied_by_default", transient_nonexcl_queues: "permitted_by_default" } });
    expect(permitsOf("4.0.5").deprecated.queue_master_locator).toBe("permitted_by_default");
    expect(permitsOf("3.10.8").deprecated).toEqual({});
    // Phases topo does not know are left out rather than guessed.
    expect(permitsOf("5.0.0", [{ name: "x", deprecation_phase: "someday" }]).deprecated).toEqual({});
  });
});

describe("what a broker accepts and ignores", () => {
  /** Queues whose arguments the file writes at `at` (defaults.async, say), as normalize places them. */
  function placed(at: string, ...qs: ReturnType<typeof queue>[]): DesiredCluster {
    const d = desired(...qs);
    for (const s of d.queues) s.origin = { service: ["services", 0], settings: Object.fromEntries(Object.keys(s.queue.arguments).map((a) => [`arguments.${a}`, [...at.split("."), "arguments", a]])) };
    return d;
  }
  const where = (path: (string | number)[]) => `topology.yaml:9:7 (${path.join(".")})`;
  const lazy = placed("defaults.async", queue({ name: "mplogin.async", arguments: { "x-queue-mode": "lazy" } }), queue({ name: "mpwallet.async", arguments: { "x-queue-mode": "lazy" } }));
  const inMemory = placed("services.0.sync", queue({ type: "quorum", arguments: { "x-max-in-memory-length": 0, "x-max-in-memory-bytes": 1024 } }));
  const v1 = placed("services.1.async", queue({ name: "mpwallet.async", arguments: { "x-queue-version": 1 } }));

  it("warns, once per place in the file, naming the queues, the version and what to write", () => {
    const c = compatibility(lazy, actual("4.0.5"), undefined, undefined, where);
    expect(c.errors).toEqual([]);
    expect(c.warnings).toEqual([
      'topology.yaml:9:7 (defaults.async.arguments.x-queue-mode): x-queue-mode: "lazy" (queues mplogin.async, mpwallet.async): RabbitMQ 4.0.5 accepts x-queue-mode: lazy and ignores it: classic queues have had one mode since 3.12, which moves messages to disk much as lazy did (they keep a few in memory whatever the mode says); fix: drop x-queue-mode (apply --allow-destructive then replaces the queues, keeping their messages); it still makes classic queues lazy on RabbitMQ 3.11 and earlier',
    ]);
    expect(compatibility(inMemory, actual("4.3.6"), permitsOf("4.3.6", REPORTED_436), undefined, where).warnings).toEqual([
      expect.stringMatching(/^topology\.yaml:9:7 \(services\.0\.sync\.arguments\.x-max-in-memory-length\): x-max-in-memory-length: 0 \(queue mplogin\.sync\): RabbitMQ 4\.3\.6 accepts x-max-in-memory-length and ignores it/),
      expect.stringMatching(/^topology\.yaml:9:7 \(services\.0\.sync\.arguments\.x-max-in-memory-bytes\): x-max-in-memory-bytes: 1024 \(queue mplogin\.sync\): RabbitMQ 4\.3\.6 accepts x-max-in-memory-bytes and ignores it: quorum queues keep no message bodies in memory since 3\.10.*; fix: drop x-max-in-memory-bytes/),
    ]);
    expect(compatibility(v1, actual("4.0.5"), undefined, undefined, where).warnings).toEqual([
      expect.stringMatching(/^topology\.yaml:9:7 \(services\.1\.async\.arguments\.x-queue-version\): x-queue-version: 1 \(queue mpwallet\.async\): RabbitMQ 4\.0\.5 accepts x-queue-version: 1 and ignores it: it stores classic queues in version 2 only.*; fix: write x-queue-version: 2/),
    ]);
  });

  it("says nothing where the setting works, and refuses rather than warns where the broker refuses it", () => {
    // 3.10 still has lazy classic queues and version 1 storage; it ignores in-memory limits already.
    expect(compatibility(lazy, actual("3.10.8")).warnings).toEqual([]);
    expect(compatibility(v1, actual("3.10.8")).warnings).toEqual([]);
    expect(compatibility(inMemory, actual("3.10.8")).warnings).toHaveLength(2);
    expect(compatibility(inMemory, actual("3.9.29")).warnings).toEqual([]);
    const refused = compatibility(v1, actual("4.3.6"), permitsOf("4.3.6", REPORTED_436));
    expect(refused.warnings).toEqual([]);
    expect(refused.errors.map((e) => e.message)).toEqual([expect.stringMatching(/^queue mpwallet\.async: x-queue-version: 1: RabbitMQ 4\.3\.6 stores classic queues in version 2 only/)]);
    expect(refused.errors[0]?.at).toEqual([{ path: ["services", "1", "async", "arguments", "x-queue-version"], queues: ["mpwallet.async"] }]);
  });
});

describe("a vhost's default queue type", () => {
  const d = desired(
    queue({ name: "mpa.async" }),
    queue({ name: "mpb.async" }),
    queue({ name: "mpc.sync", durable: false }),
    queue({ name: "mpd.async", autoDelete: true }),
    queue({ name: "mpe.async", type: "quorum" }),
  );
  const withDefault = (type: string | undefined, vhostExists = true): ActualCluster => ({ ...actual("4.0.5"), vhostExists, defaultQueueType: type });
  /** The warnings of this rule (4.0.5 also warns of the transient queue). */
  const about = (ws: string[]) => ws.filter((w) => w.includes("default queue type"));

  it("refuses the durable classic queues the plan declares, and only those; the others are warned about", () => {
    const c = compatibility(d, withDefault("quorum"), undefined, new Set(["mpa.async", "mpc.sync", "mpd.async", "mpe.async"]));
    expect(messages(c)).toEqual([
      'vhost "async" makes a durable queue declared without x-queue-type a quorum queue (its default queue type); topo declares classic queues without it, as workers do, so a queue the file says is classic would be created as quorum and never match the file: mpa.async',
    ]);
    expect(c.hints).toContain("give the vhost the classic default: rabbitmqctl update_vhost_metadata async --default-queue-type classic");
    expect(about(c.warnings)).toHaveLength(1);
    expect(about(c.warnings)[0]).toMatch(/but mpb\.async is a classic queue: a worker that declares it without x-queue-type .* is refused with 406 PRECONDITION_FAILED/);
  });

  it("names the broker's default for a vhost apply creates", () => {
    const c = compatibility(d, withDefault("stream", false), undefined, new Set(["mpa.async", "mpb.async"]));
    expect(messages(c)[0]).toMatch(/^the broker gives the vhost "async" apply creates its default queue type, and so makes a durable queue declared without x-queue-type a stream queue .* 2 queues the file says are classic would be created as stream .*: mpa\.async, mpb\.async$/);
    expect(c.hints.join("\n")).toContain("rabbitmqctl add_vhost async --default-queue-type classic");
    expect(about(c.warnings)).toEqual([]);
  });

  it("on 3.10, which has the default but cannot change it once the vhost exists, says so instead of naming a command it lacks", () => {
    // Measured on 3.10.8: a vhost created with defaultqueuetype quorum makes a durable queue
    // declared without x-queue-type quorum; rabbitmqctl has no update_vhost_metadata, and a PUT
    // to the vhost answers 204 and keeps the type.
    const on310 = { ...withDefault("quorum"), version: "3.10.8" };
    const c = compatibility(d, on310, undefined, new Set(["mpa.async"]));
    expect(messages(c)).toEqual([expect.stringMatching(/^vhost "async" makes a durable queue declared without x-queue-type a quorum queue \(its default queue type\); .*: mpa\.async$/)]);
    expect(c.hints.join("\n")).not.toContain("update_vhost_metadata async");
    expect(c.hints).toContain(
      "RabbitMQ 3.10.8 cannot give a vhost that exists another default queue type (it has no rabbitmqctl update_vhost_metadata, and its HTTP API keeps the type): set the type in the file, or create the vhost again with rabbitmqctl add_vhost async --default-queue-type classic once it is deleted, with everything it holds",
    );
    expect(about(c.warnings)[0]).toMatch(/is refused with 406 PRECONDITION_FAILED .*keeping their messages\); RabbitMQ 3\.10\.8 cannot give a vhost that exists another default queue type/);
  });

  it("says nothing where the default is classic or unknown (3.9 and older have none)", () => {
    for (const type of ["classic", undefined]) {
      const c = compatibility(d, withDefault(type), undefined, new Set(["mpa.async"]));
      expect([...c.errors, ...about(c.warnings)]).toEqual([]);
    }
  });
});

describe("every refusal names the keys of the file that ask for it", () => {
  const CLUSTERS = "clusters:\n  sync: { url: amqp://g:g@h/s }\n  async: { url: amqp://g:g@h/a }\n";
  const on = (text: string, cluster: string) => parseConfig(text, "t.yaml", {}).clusters.find((c) => c.target.name === cluster) as DesiredCluster;
  const where = (c: { errors: { at: { path: (string | number)[]; queues: string[]; builtIn?: unknown }[] }[] }) => c.errors.map((e) => e.at);

  it("a setting written in defaults, in a service, or taken from the built-in default: each its own place, with its queues", () => {
    const text = `version: 1\n${CLUSTERS}defaults:\n  async: { arguments: { x-consumer-timeout: 1000 } }\nservices:\n  - mpa\n  - mpb\n  - name: mpc\n    sync: { mirrored: true, durable: true }\n    async: { arguments: { x-queue-version: 1 } }\n`;
    const sync = on(text, "sync");
    // 4.0: mirroring, asked by the built-in default (mpa, mpb: at the first of them) and by mpc's own key.
    expect(where(compatibility(sync, actual("4.0.5")))).toEqual([
      [
        { path: ["services", 0], queues: ["mpa.sync", "mpb.sync"], builtIn: { traffic: "sync", setting: "mirrored: true" } },
        { path: ["services", 2, "sync", "mirrored"], queues: ["mpc.sync"] },
      ],
    ]);
    // 4.3 with transient queues denied: durable: false comes from the built-in default (mpc writes durable: true).
    const deny = permitsOf("4.3.6", [...REPORTED_436.filter((f) => f.name !== "transient_nonexcl_queues"), { name: "transient_nonexcl_queues", deprecation_phase: "permitted_by_default", state: "denied" }]);
    const c = compatibility(sync, actual("4.3.6"), deny);
    expect(c.errors.map((e) => e.message)).toEqual([expect.stringMatching(/no classic queue mirroring/), expect.stringMatching(/^queues mpa\.sync, mpb\.sync: durable: false: /)]);
    expect(c.errors[1]?.at).toEqual([{ path: ["services", 0], queues: ["mpa.sync", "mpb.sync"], builtIn: { traffic: "sync", setting: "durable: false" } }]);
    // Arguments: at the key of the argument, in defaults or in the service.
    const async = compatibility(on(text, "async"), actual("4.3.6"), permitsOf("4.3.6", REPORTED_436));
    expect(async.errors.map((e) => [e.message.split(":")[0], e.at])).toEqual([
      ["queues mpa.async, mpb.async, mpc.async", [{ path: ["defaults", "async", "arguments", "x-consumer-timeout"], queues: ["mpa.async", "mpb.async", "mpc.async"] }]],
      ["queue mpc.async", [{ path: ["services", 2, "async", "arguments", "x-queue-version"], queues: ["mpc.async"] }]],
    ]);
  });

  it("the hint for mirrored queues on RabbitMQ 4 names the kinds the file mirrors", () => {
    const text = `version: 1\n${CLUSTERS}services:\n  - name: mpa\n    sync: false\n    async: { mirrored: true }\n`;
    expect(compatibility(on(text, "async"), actual("4.0.5")).hints).toEqual([expect.stringContaining("(e.g. defaults: { async: { type: quorum } })")]);
    expect(compatibility(on(`version: 1\n${CLUSTERS}services:\n  - mpa\n`, "sync"), actual("4.0.5")).hints).toEqual([expect.stringContaining("(e.g. defaults: { sync: { type: quorum } })")]);
  });

  it("a queue type the version lacks, and a vhost's default queue type: at the type key, or the built-in classic", () => {
    const text = `version: 1\n${CLUSTERS}defaults:\n  sync: { type: quorum }\nservices:\n  - mpa\n  - name: mpb\n    async: { type: classic }\n`;
    expect(where(compatibility(on(text, "sync"), actual("3.7.28")))).toEqual([[{ path: ["defaults", "sync", "type"], queues: ["mpa.sync", "mpb.sync"] }]]);
    const typed = compatibility(on(text, "async"), { ...actual("4.0.5"), defaultQueueType: "quorum" }, undefined, new Set(["mpa.async", "mpb.async"]));
    expect(where(typed)).toEqual([
      [
        { path: ["services", 0], queues: ["mpa.async"], builtIn: { traffic: "async", setting: "type: classic" } },
        { path: ["services", 1, "async", "type"], queues: ["mpb.async"] },
      ],
    ]);
  });
});
