// Pure: what a given broker refuses of a queue declare, as data. The rules common to every version
// (config/arguments.ts, checked by validate) come first; then the rules that differ by version, or
// by the state of a RabbitMQ 4 deprecated feature. plan reports every refusal, before anything is
// written. test/integration/broker-rules.test.ts declares every argument on every queue type on
// each real broker and checks that brokerRefuses predicted exactly what it accepted and refused:
// a new RabbitMQ version is added by running that test, not by reading release notes.

import { argumentRule } from "../config/arguments.js";
import type { ArgValue, Args, QueueType } from "../model.js";

/** GET /api/deprecated-features (RabbitMQ 4) reports each feature's phase. */
export type DeprecationPhase = "permitted_by_default" | "denied_by_default" | "disconnected" | "removed";

/** What GET /api/deprecated-features says a feature is now, its configuration included (4.3.6, not 4.0.5). */
export type DeprecationState = "permitted" | "denied";

/**
 * What a broker permits. The management API reports each deprecated feature's phase, that is the
 * version's default. 4.0.5 reports nothing else: with transient_nonexcl_queues denied in
 * rabbitmq.conf (deprecated_features.permit.X) it still said permitted_by_default, so there topo
 * goes by the default, and says so where it matters. 4.3.6 also reports each feature's `state`,
 * the configuration included (measured: "denied" for a feature permitted by default and denied in
 * rabbitmq.conf, "permitted" for one denied by default and permitted there): where it is given,
 * topo goes by it.
 */
export interface BrokerPermits {
  version: string;
  deprecated: Readonly<Record<string, DeprecationPhase>>;
  /** The features' states, where the broker reports them (4.3.6): rabbitmq.conf included. */
  state?: Readonly<Record<string, DeprecationState>>;
  /** "broker": read from the broker; "version": the defaults of its version (3.x, or a user who may not read the list). */
  source: "broker" | "version";
}

/** Parsed versions: the queue rules ask several times per queue, for one or two versions a run. */
const parsedVersions = new Map<string, readonly [number, number]>();

export function majorMinor(version: string): readonly [number, number] {
  let mm = parsedVersions.get(version);
  if (mm === undefined) {
    const m = /^(\d+)\.(\d+)/.exec(version);
    mm = m ? [Number(m[1]), Number(m[2])] : [0, 0];
    parsedVersions.set(version, mm);
  }
  return mm;
}

/** Is `version` at least maj.min? An unknown version ("") is none. */
export function atLeast(version: string, maj: number, min: number): boolean {
  const [a, b] = majorMinor(version);
  return a > maj || (a === maj && b >= min);
}

/** RabbitMQ 4's delivery limit of a quorum queue that names none (measured on 4.0.5 and 4.3.6). */
export const DEFAULT_DELIVERY_LIMIT = 20;

/** The delivery limit a quorum queue has on `version` where nothing sets one: 20 from RabbitMQ 4, none before. */
export function defaultDeliveryLimit(version: string): number | undefined {
  return atLeast(version, 4, 0) ? DEFAULT_DELIVERY_LIMIT : undefined;
}

/** Whether `version` is at least major.minor.patch (a version topo cannot read counts as older). */
function atLeastPatch(version: string, [maj, min, patch]: readonly [number, number, number]): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  const [a, b, c] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [...majorMinor(version), 0];
  return a !== maj ? a > maj : b !== min ? b > min : c >= patch;
}

/**
 * The deprecated-feature phases of a version, as measured: 4.0.5 permits all but mirroring by
 * default; 4.3.6 denies queue_master_locator and global_qos and still permits transient
 * non-exclusive queues. 4.1 and 4.2 are unmeasured and are given 4.0's defaults.
 */
export function defaultDeprecations(version: string): Record<string, DeprecationPhase> {
  if (!atLeast(version, 4, 0)) return {};
  const late = atLeast(version, 4, 3);
  return {
    classic_queue_mirroring: "removed",
    ram_node_type: late ? "removed" : "permitted_by_default",
    transient_nonexcl_queues: "permitted_by_default",
    queue_master_locator: late ? "denied_by_default" : "permitted_by_default",
    global_qos: late ? "denied_by_default" : "permitted_by_default",
    management_metrics_collection: "permitted_by_default",
    amqp_address_v1: late ? "denied_by_default" : "permitted_by_default",
    ...(late ? { amqp_filter_set_bug: "denied_by_default" as const } : {}),
  };
}

const PHASES: readonly string[] = ["permitted_by_default", "denied_by_default", "disconnected", "removed"];

/** The broker's own list where it gave one, else its version's defaults. */
export function permitsOf(version: string, read?: readonly { name: string; deprecation_phase?: string; state?: string }[]): BrokerPermits {
  if (!read) return { version, deprecated: defaultDeprecations(version), source: "version" };
  const deprecated: Record<string, DeprecationPhase> = {};
  const state: Record<string, DeprecationState> = {};
  for (const f of read) {
    if (f.deprecation_phase && PHASES.includes(f.deprecation_phase)) deprecated[f.name] = f.deprecation_phase as DeprecationPhase;
    if (f.state === "permitted" || f.state === "denied") state[f.name] = f.state;
  }
  return { version, deprecated, ...(Object.keys(state).length ? { state } : {}), source: "broker" };
}

/** Is this deprecated feature refused on this broker: by its reported state, else by its phase? */
export function denied(permits: BrokerPermits, feature: string): boolean {
  const state = permits.state?.[feature];
  if (state !== undefined) return state === "denied";
  const phase = permits.deprecated[feature];
  return phase !== undefined && phase !== "permitted_by_default";
}

/** Does the broker report this feature's state, its configuration included (4.3.6)? */
export function stateKnown(permits: BrokerPermits, feature: string): boolean {
  return permits.state?.[feature] !== undefined;
}

/** Why a feature is denied, for a refusal: its phase, or the configuration that overrides it. */
function deniedBy(p: BrokerPermits, feature: string): string {
  const phase = p.deprecated[feature];
  return p.state?.[feature] === "denied" && phase === "permitted_by_default" ? `its configuration denies it: deprecated_features.permit.${feature} = false` : String(phase);
}

/** A queue as it is declared. */
export interface QueueDeclare {
  type: QueueType;
  durable: boolean;
  autoDelete: boolean;
  exclusive: boolean;
  /** Without x-queue-type. */
  arguments: Args;
}

/** One thing the broker refuses: the setting, the broker's rule, and what to write instead. */
export interface Refusal {
  setting: string;
  /** The queue setting that asks for it, as QueueOrigin names it (durable, type, arguments.NAME); none for what the file cannot set. */
  field?: string;
  rule: string;
  fix: string;
  /**
   * "common": every version refuses it, and validate reports it. "version": it depends on the
   * RabbitMQ version or a deprecated feature's state, and plan reports it. "topo": the broker
   * accepts it but it does nothing there, so validate refuses it rather than pretend.
   */
  scope: "common" | "version" | "topo";
}

/** Quorum queue arguments RabbitMQ reads from 4.3 on, and every earlier version accepts and ignores. */
const QUORUM_4_3 = ["x-delayed-retry-type", "x-delayed-retry-min", "x-delayed-retry-max", "x-consumer-disconnected-timeout"] as const;

/**
 * What RabbitMQ accepts on a queue type and then ignores, up to the version `before` where given
 * (measured on 3.10.8, 4.0.5 and 4.3.6): topo's table refuses them, and the proving test checks
 * that it is topo refusing, not the broker.
 */
const IGNORED: readonly { type: QueueType; name: string; value?: ArgValue; before?: [number, number]; why: string }[] = [
  { type: "quorum", name: "x-overflow", value: "reject-publish-dlx", why: "quorum queues accept x-overflow: reject-publish-dlx and do not dead-letter refused messages" },
  // 4.3.6 refuses it: invalid arg 'x-consumer-timeout' ... of queue type rabbit_stream_queue.
  { type: "stream", name: "x-consumer-timeout", before: [4, 3], why: "streams accept x-consumer-timeout and never time a consumer out" },
  // 3.10.8 and 4.0.5 accept every value of these on every queue type; 4.3.6 refuses them on
  // classic queues and streams (invalid arg ... of queue type rabbit_classic_queue).
  ...(["classic", "stream"] as const).flatMap((type) =>
    QUORUM_4_3.map((name) => ({ type, name, before: [4, 3] as [number, number], why: `${type === "stream" ? "streams" : "classic queues"} accept ${name} and ignore it` })),
  ),
  // The same of a stream's filter size: 3.10.8 and 4.0.5 accept it on classic and quorum queues, 4.3.6 refuses it there.
  ...(["classic", "quorum"] as const).map((type) => ({ type, name: "x-stream-filter-size-bytes", before: [4, 3] as [number, number], why: `${type} queues accept x-stream-filter-size-bytes and ignore it` })),
];

/**
 * Refusals that hold on every version topo supports (validate reports them with the file's
 * places; they are here so that the proving test checks them on real brokers too).
 */
function commonRefusals(version: string, q: QueueDeclare): Refusal[] {
  const out: Refusal[] = [];
  const common = (setting: string, rule: string, fix: string, arg?: string, field = arg === undefined ? undefined : `arguments.${arg}`, accepted = false) => {
    if (accepted) {
      out.push({ setting, ...(field ? { field } : {}), rule, fix, scope: "topo" });
      return;
    }
    const value = arg === undefined ? undefined : q.arguments[arg];
    const ignored = IGNORED.find(
      (i) => i.type === q.type && i.name === arg && (i.value === undefined || i.value === value) && (!i.before || !atLeast(version, ...i.before)),
    );
    out.push({ setting, ...(field ? { field } : {}), rule: ignored ? `${rule} (RabbitMQ: ${ignored.why})` : rule, fix, scope: ignored ? "topo" : "common" });
  };
  if (q.type !== "classic") {
    if (!q.durable) common("durable: false", `${q.type} queues are always durable (RabbitMQ: invalid property 'non-durable')`, "drop durable: false", undefined, "durable");
    if (q.autoDelete) common("auto-delete", `${q.type} queues cannot be auto-delete`, "drop auto-delete");
    if (q.exclusive) common("exclusive", `${q.type} queues cannot be exclusive`, "drop exclusive");
  }
  for (const [name, value] of Object.entries(q.arguments)) {
    const rule = argumentRule(name);
    if (!rule) continue;
    if (!rule.types.includes(q.type)) {
      common(name, `${name} does not apply to ${q.type} queues`, `drop it, or use type: ${rule.types.join(" or ")}`, name);
      continue;
    }
    for (const r of rule.refusedOn ?? []) if (r.type === q.type && r.value === value) common(`${name}: ${String(value)}`, r.message, "use another value", name);
    if (rule.requires && rule.requires.unless !== value && !(rule.requires.name in q.arguments)) common(name, rule.requires.why, rule.requires.fix, undefined, `arguments.${name}`, rule.requires.ignored);
  }
  return out;
}

/**
 * The rules that differ by version or deprecated-feature state, each as measured on a real
 * broker. `applies` says when the broker refuses; the rest is what plan prints.
 */
interface VersionRule {
  setting: string;
  /** The queue setting that asks for it (Refusal.field). */
  field: string;
  applies: (p: BrokerPermits, q: QueueDeclare) => boolean;
  rule: (p: BrokerPermits) => string;
  fix: string;
}

const VERSION_RULES: readonly VersionRule[] = [
  {
    // 3.10.8: 406 PRECONDITION_FAILED - invalid arg 'x-queue-leader-locator' ... of queue type
    // rabbit_classic_queue. 4.0.5 accepts it (it replaced x-queue-master-locator there).
    setting: "x-queue-leader-locator",
    field: "arguments.x-queue-leader-locator",
    applies: (p, q) => !atLeast(p.version, 4, 0) && q.type === "classic" && "x-queue-leader-locator" in q.arguments,
    rule: (p) => `RabbitMQ ${p.version} takes x-queue-leader-locator on quorum and stream queues only; classic queues take it from RabbitMQ 4.0 (invalid arg 'x-queue-leader-locator' of queue type rabbit_classic_queue)`,
    fix: "drop it and use x-queue-master-locator (its 3.x name for classic queues), or use type: quorum",
  },
  {
    // 3.10.8 accepts x-delivery-limit -1 and drops the message at its first return (a closed
    // channel's basic.get); 4.0.5 and 4.3.6 take -1 as no limit. The broker does not refuse it:
    // topo does, before it writes a queue that would drop every requeued message.
    setting: "x-delivery-limit: -1",
    field: "arguments.x-delivery-limit",
    applies: (p, q) => !atLeast(p.version, 4, 0) && q.type === "quorum" && q.arguments["x-delivery-limit"] === -1,
    rule: (p) => `RabbitMQ ${p.version} takes x-delivery-limit -1 as no delivery at all: it drops (or dead-letters) a message the first time it is returned; -1 means no limit from RabbitMQ 4.0`,
    fix: "drop x-delivery-limit (RabbitMQ 3.x sets no limit by default), or write the highest number of deliveries to allow",
  },
  {
    // 4.3.6: 406 PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' ... of queue type rabbit_classic_queue.
    // 4.0.5 and 3.10.8 accept it. Unmeasured in between: 4.1 and 4.2 are given 4.0's rule.
    setting: "x-consumer-timeout",
    field: "arguments.x-consumer-timeout",
    applies: (p, q) => atLeast(p.version, 4, 3) && q.type === "classic" && "x-consumer-timeout" in q.arguments,
    rule: (p) => `RabbitMQ ${p.version} takes x-consumer-timeout on quorum queues only (invalid arg 'x-consumer-timeout' of queue type rabbit_classic_queue)`,
    // A consumer-timeout policy on a classic queue is no substitute there: applied (the queue's
    // effective policy showed it), it did not cancel a consumer that held a delivery for 150 s
    // (4.3.6, a 5 s timeout; measured), so it is not offered.
    fix: "drop the argument, or use type: quorum",
  },
  {
    // 4.3.6: 406 PRECONDITION_FAILED - invalid arg 'x-queue-version' ...: "unsupported queue version '1'".
    setting: "x-queue-version: 1",
    field: "arguments.x-queue-version",
    applies: (p, q) => atLeast(p.version, 4, 3) && q.type === "classic" && q.arguments["x-queue-version"] === 1,
    rule: (p) => `RabbitMQ ${p.version} stores classic queues in version 2 only (unsupported queue version '1')`,
    fix: "write x-queue-version: 2, or drop the argument",
  },
  {
    // 4.3.6 denies queue_master_locator by default: the declare fails with an internal error.
    setting: "x-queue-master-locator",
    field: "arguments.x-queue-master-locator",
    applies: (p, q) => denied(p, "queue_master_locator") && "x-queue-master-locator" in q.arguments,
    rule: (p) => `RabbitMQ ${p.version} denies the deprecated feature queue_master_locator (${deniedBy(p, "queue_master_locator")}), so it refuses x-queue-master-locator`,
    fix: "drop x-queue-master-locator (x-queue-leader-locator places classic queues on RabbitMQ 4), or permit it with deprecated_features.permit.queue_master_locator = true in rabbitmq.conf",
  },
  {
    // A denied transient_nonexcl_queues closes the whole connection with 541 INTERNAL_ERROR.
    setting: "durable: false",
    field: "durable",
    applies: (p, q) => q.type === "classic" && !q.durable && !q.exclusive && denied(p, "transient_nonexcl_queues"),
    rule: (p) => `RabbitMQ ${p.version} denies the deprecated feature transient_nonexcl_queues (${deniedBy(p, "transient_nonexcl_queues")}), so it refuses transient non-exclusive queues`,
    fix: "make the queue durable (durable: true) or quorum (type: quorum), or permit it with deprecated_features.permit.transient_nonexcl_queues = true in rabbitmq.conf",
  },
];

/** A setting this broker accepts and keeps in the queue's arguments, and then does nothing with. */
export interface Ignored {
  /** The argument that asks for it, where the file writes it. */
  argument: string;
  setting: string;
  rule: string;
  fix: string;
}

/** Dropping or changing an argument changes the queue's arguments, which RabbitMQ cannot change in place. */
const REPLACES = "apply --allow-destructive then replaces the queues, keeping their messages";

/**
 * What RabbitMQ accepts and ignores from a version on (and up to the one that refuses it, which
 * VERSION_RULES holds). The broker says nothing: the declare succeeds and the argument is listed
 * with the queue, so a file, topo's read back and a worker's redeclare all agree on a setting that
 * has no effect. topo cannot make it work, so plan warns, naming the version and what to write;
 * where it works (an older cluster the same file serves), nothing is said. Each was measured by
 * declaring queues on 3.10.8, 4.0.5 and 4.3.6 and reading them back.
 */
const IGNORED_FROM: readonly {
  type: QueueType;
  argument: string;
  value?: ArgValue;
  from: [number, number];
  until?: [number, number];
  /** Ignored only before this version (major, minor, patch): where a release brought it in. */
  before?: [number, number, number];
  rule: (version: string, value: ArgValue) => string;
  fix: string;
}[] = [
  ...(["classic", "quorum"] as const).map((type) => ({
    // 3.10.8: a consumer holding one delivery of a queue declared with x-consumer-timeout 5000
    // was neither cancelled nor its channel closed in 150 s (classic and quorum alike; 60000 and
    // 300 s too); the broker lists the argument with the queue. RabbitMQ reads it from 3.11.15 on
    // (rabbitmq-server#5437).
    type,
    argument: "x-consumer-timeout",
    from: [0, 0] as [number, number],
    before: [3, 11, 15] as [number, number, number],
    rule: (v: string) => `RabbitMQ ${v} accepts x-consumer-timeout and ignores it: a queue's own consumer timeout came in 3.11.15, and until then only the broker-wide consumer_timeout (30 minutes by default) cancels a consumer that holds a delivery too long`,
    fix: "keep it for RabbitMQ 3.11.15 and later; on this broker only the node's consumer_timeout (rabbitmq.conf) sets the timeout",
  })),
  {
    // 3.10.8 accepts it on a stream, any value, and lists it with the stream; stream filtering
    // came in 3.13 (4.0.5 and 4.3.6 check the value).
    type: "stream",
    argument: "x-stream-filter-size-bytes",
    from: [0, 0],
    before: [3, 13, 0],
    rule: (v) => `RabbitMQ ${v} accepts x-stream-filter-size-bytes and ignores it: stream filtering came in 3.13`,
    fix: "keep it for RabbitMQ 3.13 and later, where the stream reads it; this broker does not",
  },
  ...QUORUM_4_3.map((argument) => ({
    // 3.10.8 and 4.0.5 accept them on a quorum queue's declare and list them with the queue; a
    // delayed retry and a consumer's disconnected timeout of its own came in 4.3.
    type: "quorum" as const,
    argument,
    from: [0, 0] as [number, number],
    before: [4, 3, 0] as [number, number, number],
    rule: (v: string) =>
      argument === "x-consumer-disconnected-timeout"
        ? `RabbitMQ ${v} accepts x-consumer-disconnected-timeout and ignores it: a quorum queue's own timeout for the consumers of a disconnected node came in 4.3`
        : `RabbitMQ ${v} accepts ${argument} and ignores it: delayed retries came in 4.3, and until then a returned message is ready again at once`,
    fix: `keep it for RabbitMQ 4.3 and later, where the queue reads it; this broker does not`,
  })),
  {
    // 3.10.8: a lazy queue held 0 of 20 messages in memory, a default one 20. 4.0.5 and 4.3.6
    // kept x-queue-mode: lazy in the queue's arguments, and the lazy queue held as many in memory
    // as one without it (1 of 20). RabbitMQ's docs date the change to 3.12 (3.11 to 3.13 unmeasured).
    type: "classic",
    argument: "x-queue-mode",
    from: [3, 12],
    rule: (v, value) =>
      `RabbitMQ ${v} accepts x-queue-mode: ${String(value)} and ignores it: classic queues have had one mode since 3.12, which moves messages to disk much as lazy did (they keep a few in memory whatever the mode says)`,
    fix: `drop x-queue-mode (${REPLACES}); it still makes classic queues lazy on RabbitMQ 3.11 and earlier`,
  },
  {
    // 3.10.8: a quorum queue without it held 0 of 20 messages in memory too, and its Raft machine
    // (rabbit_fifo) has no in-memory limit any more; 4.0.5 and 4.3.6 keep the argument and hold none.
    type: "quorum",
    argument: "x-max-in-memory-length",
    from: [3, 10],
    rule: (v) => `RabbitMQ ${v} accepts x-max-in-memory-length and ignores it: quorum queues keep no message bodies in memory since 3.10, whatever the limit`,
    fix: `drop x-max-in-memory-length (${REPLACES}); it limits memory on RabbitMQ 3.8 and 3.9 only`,
  },
  {
    type: "quorum",
    argument: "x-max-in-memory-bytes",
    from: [3, 10],
    rule: (v) => `RabbitMQ ${v} accepts x-max-in-memory-bytes and ignores it: quorum queues keep no message bodies in memory since 3.10, whatever the limit`,
    fix: `drop x-max-in-memory-bytes (${REPLACES}); it limits memory on RabbitMQ 3.8 and 3.9 only`,
  },
  {
    // 4.0.5: a queue declared with x-queue-version: 1 keeps the argument, and its messages were
    // written in version 2's files (0.qi, 0.qs; 3.10.8 wrote version 1's, 0.idx and journal.jif).
    // 4.3.6 refuses it (VERSION_RULES).
    type: "classic",
    argument: "x-queue-version",
    value: 1,
    from: [4, 0],
    until: [4, 3],
    rule: (v) => `RabbitMQ ${v} accepts x-queue-version: 1 and ignores it: it stores classic queues in version 2 only (and RabbitMQ 4.3 refuses version 1)`,
    fix: `write x-queue-version: 2, or drop it (${REPLACES})`,
  },
];

/** What this broker accepts of this declare and then ignores. */
export function brokerIgnores(version: string, q: QueueDeclare): Ignored[] {
  return IGNORED_FROM.filter(
    (i) =>
      i.type === q.type &&
      i.argument in q.arguments &&
      (i.value === undefined || i.value === q.arguments[i.argument]) &&
      atLeast(version, ...i.from) &&
      !(i.until && atLeast(version, ...i.until)) &&
      !(i.before && atLeastPatch(version, i.before)),
  ).map((i) => {
    const value = q.arguments[i.argument] as ArgValue;
    return { argument: i.argument, setting: `${i.argument}: ${JSON.stringify(value)}`, rule: i.rule(version, value), fix: i.fix };
  });
}

/** Everything this broker refuses of this declare, common rules first. */
export function brokerRefuses(permits: BrokerPermits, q: QueueDeclare): Refusal[] {
  const out = commonRefusals(permits.version, q);
  for (const r of VERSION_RULES) if (r.applies(permits, q)) out.push({ setting: r.setting, field: r.field, rule: r.rule(permits), fix: r.fix, scope: "version" });
  return out;
}

/**
 * Settings this broker accepts now but marks deprecated. Where the broker reports no state (4.0.5),
 * one whose rabbitmq.conf denies the feature refuses them, and the management API does not show that.
 */
export function deprecatedUse(permits: BrokerPermits, q: QueueDeclare): string[] {
  const out: string[] = [];
  const used = (feature: string) => permits.deprecated[feature] !== undefined && !denied(permits, feature);
  if (q.type === "classic" && !q.durable && !q.exclusive && used("transient_nonexcl_queues")) out.push("transient_nonexcl_queues");
  if ("x-queue-master-locator" in q.arguments && used("queue_master_locator")) out.push("queue_master_locator");
  return out;
}
