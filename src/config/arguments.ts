// Pure: the queue x-arguments topo accepts and what RabbitMQ refuses of them, in one table. The
// schema's `arguments` section is generated from it (scripts/schema-arguments.ts; a unit test keeps
// the two equal), so ajv and editors check the types and ranges; checkArguments checks what a
// schema cannot see: the queue type and the arguments merged from defaults and the service.
//
// Every limit here was measured by declaring queues on RabbitMQ 3.10.8 and 4.0.5 (amqplib, as
// apply does). Rules that differ between versions (x-queue-leader-locator on classic queues before
// 4.0, x-consumer-timeout on classic queues from 4.3, ...) are plan/broker-rules.ts's, which plan
// checks against the broker; test/integration/broker-rules.test.ts proves both tables on real brokers.

import { assertNever, type Args, type QueueType } from "../model.js";
import { ownValue } from "../core/collections.js";

/** Larger integers lose precision in YAML and JavaScript: the broker would get another number. */
export const MAX_EXACT = Number.MAX_SAFE_INTEGER;
/** RabbitMQ refuses a larger x-message-ttl or x-expires ({value_too_large, N}): 10 years in ms. */
export const MAX_EXPIRY_MS = 315_360_000_000;
/** RabbitMQ refuses a larger x-stream-max-segment-size-bytes ("Exceeded max value"). */
export const MAX_SEGMENT_BYTES = 3_000_000_000;

export type ArgumentValue =
  /** `limit` says why the maximum is what it is, for the message when it is exceeded. */
  | { kind: "integer"; min: number; max: number; limit: string }
  | { kind: "enum"; values: readonly (string | number)[] }
  | { kind: "string" }
  | { kind: "boolean" }
  /** A whole number above 0 and one unit: RabbitMQ refuses "0s", "1d", "1W" (invalid_max_age). */
  | { kind: "duration" };

export interface ArgumentRule {
  description: string;
  /** Queue types that accept it: RabbitMQ refuses it on the others ("invalid arg ... of queue type"). */
  types: readonly QueueType[];
  value: ArgumentValue;
  /**
   * Another argument the queue must have with it (unless its value is `unless`), and what to write.
   * `ignored`: the broker accepts the one without the other and ignores it, rather than refuse it.
   */
  requires?: { name: string; why: string; fix: string; unless?: string | number; ignored?: true };
  /** An argument this one's value must not be below, where the queue has both, and why. */
  notBelow?: { name: string; why: string };
  /** Values refused on some queue type, with the message. */
  refusedOn?: { type: QueueType; value: string | number; message: string }[];
}

const exact = (min: number): ArgumentValue => ({
  kind: "integer",
  min,
  max: MAX_EXACT,
  limit: "larger numbers (above 2^53-1) lose precision in YAML, so RabbitMQ would get another number",
});
const expiry = (min: number): ArgumentValue => ({
  kind: "integer",
  min,
  max: MAX_EXPIRY_MS,
  limit: "RabbitMQ refuses more (value_too_large), 10 years in milliseconds",
});
const CQ: QueueType[] = ["classic", "quorum"];

/** In the schema's order: "RabbitMQ knows: ..." lists them so. */
export const ARGUMENTS: Readonly<Record<string, ArgumentRule>> = {
  "x-message-ttl": { types: CQ, value: expiry(0), description: "Milliseconds a message may stay in the queue (at most 315360000000, 10 years)." },
  "x-expires": { types: CQ, value: expiry(1), description: "Milliseconds of disuse after which the queue is deleted (at most 315360000000, 10 years)." },
  "x-max-length": { types: CQ, value: exact(0), description: "Most messages the queue holds." },
  "x-max-length-bytes": { types: ["classic", "quorum", "stream"], value: exact(0), description: "Most bytes of message bodies the queue holds." },
  "x-overflow": {
    types: CQ,
    value: { kind: "enum", values: ["drop-head", "reject-publish", "reject-publish-dlx"] },
    description: "What happens when a limit is reached.",
    refusedOn: [
      { type: "quorum", value: "reject-publish-dlx", message: "x-overflow: reject-publish-dlx is not supported by quorum queues; use drop-head or reject-publish" },
    ],
  },
  "x-dead-letter-exchange": { types: CQ, value: { kind: "string" }, description: "Exchange that receives dead-lettered messages (\"\" is the default exchange)." },
  "x-dead-letter-routing-key": {
    types: CQ,
    value: { kind: "string" },
    description: "Routing key of dead-lettered messages. Needs x-dead-letter-exchange.",
    requires: {
      name: "x-dead-letter-exchange",
      why: "RabbitMQ refuses a dead-letter routing key on a queue without a dead-letter exchange (routing_key_but_no_dlx_defined)",
      fix: 'add x-dead-letter-exchange (in defaults or the service; "" is the default exchange) or drop x-dead-letter-routing-key',
    },
  },
  "x-dead-letter-strategy": { types: ["quorum"], value: { kind: "enum", values: ["at-most-once", "at-least-once"] }, description: "Quorum queues: how dead-lettering is done." },
  "x-max-priority": {
    types: ["classic"],
    value: { kind: "integer", min: 1, max: 255, limit: "RabbitMQ refuses a higher priority (max_value_exceeded)" },
    description: "Classic queues: highest message priority (1 to 255).",
  },
  "x-queue-mode": { types: ["classic"], value: { kind: "enum", values: ["default", "lazy"] }, description: "Classic queues, RabbitMQ 3.11 and earlier: keep messages on disk (lazy). 3.12 and later accept it and ignore it (plan warns)." },
  "x-queue-version": { types: ["classic"], value: { kind: "enum", values: [1, 2] }, description: "Classic queues: storage version. RabbitMQ 4.0 to 4.2 accept 1 and store version 2 (plan warns); 4.3 refuses 1." },
  "x-queue-master-locator": {
    types: ["classic"],
    value: { kind: "enum", values: ["client-local", "min-masters", "random"] },
    description: "Classic queues (3.x): where the master is placed.",
  },
  "x-queue-leader-locator": {
    types: ["classic", "quorum", "stream"],
    value: { kind: "enum", values: ["client-local", "balanced"] },
    description: "Quorum and stream queues: where the leader is placed.",
  },
  "x-single-active-consumer": { types: CQ, value: { kind: "boolean" }, description: "Only one consumer receives at a time." },
  "x-consumer-timeout": { types: CQ, value: exact(1), description: "Milliseconds a delivery may stay unacknowledged (RabbitMQ 3.11.15 and later; earlier ones ignore it, and plan warns). RabbitMQ never compares it on redeclare; topo does." },
  // -1 is RabbitMQ 4's "no limit", the only way off its default of 20 (measured on 4.0.5 and
  // 4.3.6); 3.x accepts -1 but drops a message at its first return: plan/broker-rules.ts refuses it there.
  "x-delivery-limit": {
    types: ["quorum"],
    value: exact(-1),
    description: "Quorum queues: deliveries before a message is dead-lettered or dropped; -1: no limit (RabbitMQ 4.0+, whose default is 20).",
  },
  // RabbitMQ 4.3's delayed retries: a returned message waits before it is delivered again. 4.3.6
  // takes any value on a quorum queue's declare and then delays nothing where the set is not
  // whole (a type it does not know, no minimum, a minimum that is not a whole number above 0:
  // rabbit_quorum_queue:get_delayed_retry_config/1), so topo refuses what it would ignore. Before
  // 4.3 every version accepts them and ignores them (plan/broker-rules.ts).
  "x-delayed-retry-type": {
    types: ["quorum"],
    value: { kind: "enum", values: ["all", "failed", "returned", "disabled"] },
    description: "Quorum queues, RabbitMQ 4.3 and later: which returned messages wait before they are delivered again (all; failed: rejected, or left unacknowledged by a closed channel; returned: nacked with requeue). Needs x-delayed-retry-min.",
    requires: {
      name: "x-delayed-retry-min",
      unless: "disabled",
      ignored: true,
      why: "RabbitMQ 4.3 delays no retry without a minimum delay, and says nothing (the queue reports delayed_retry: disabled)",
      fix: "add x-delayed-retry-min (milliseconds, above 0) or drop x-delayed-retry-type",
    },
  },
  "x-delayed-retry-min": {
    types: ["quorum"],
    value: exact(1),
    description: "Quorum queues, RabbitMQ 4.3 and later: milliseconds a delayed retry waits, times the message's delivery count. Needs x-delayed-retry-type.",
    requires: {
      name: "x-delayed-retry-type",
      ignored: true,
      why: "RabbitMQ 4.3 delays retries only for a type of them, and ignores a minimum alone",
      fix: "add x-delayed-retry-type (all, failed or returned) or drop x-delayed-retry-min",
    },
  },
  "x-delayed-retry-max": {
    types: ["quorum"],
    value: exact(1),
    description: "Quorum queues, RabbitMQ 4.3 and later: most milliseconds a delayed retry waits (x-delayed-retry-min when not given). Needs x-delayed-retry-min.",
    requires: {
      name: "x-delayed-retry-min",
      ignored: true,
      why: "RabbitMQ 4.3 ignores a maximum without a minimum",
      fix: "add x-delayed-retry-min (milliseconds, above 0) or drop x-delayed-retry-max",
    },
    notBelow: { name: "x-delayed-retry-min", why: "RabbitMQ 4.3 refuses a policy whose delayed-retry-max is smaller than its delayed-retry-min, and a queue's declare does not check" },
  },
  "x-consumer-disconnected-timeout": {
    types: ["quorum"],
    value: exact(0),
    description: "Quorum queues, RabbitMQ 4.3 and later: milliseconds a consumer whose node is disconnected keeps its messages before they are returned (the node's consumer_disconnected_timeout, 60000, when not given).",
  },
  "x-quorum-initial-group-size": { types: ["quorum"], value: exact(1), description: "Quorum queues: number of replicas at creation." },
  "x-max-in-memory-length": { types: ["quorum"], value: exact(0), description: "Quorum queues, RabbitMQ 3.8 and 3.9: most messages kept in memory. 3.10 and later accept it and ignore it (plan warns)." },
  "x-max-in-memory-bytes": { types: ["quorum"], value: exact(0), description: "Quorum queues, RabbitMQ 3.8 and 3.9: most bytes kept in memory. 3.10 and later accept it and ignore it (plan warns)." },
  "x-max-age": { types: ["stream"], value: { kind: "duration" }, description: "Streams: how long messages are kept, a whole number above 0 and a unit Y, M, D, h, m or s, e.g. 7D." },
  "x-stream-max-segment-size-bytes": {
    types: ["stream"],
    value: { kind: "integer", min: 1, max: MAX_SEGMENT_BYTES, limit: "RabbitMQ refuses a larger segment (Exceeded max value)" },
    description: "Streams: size of a segment file (at most 3000000000).",
  },
  // 4.0.5 and 4.3.6 refuse a size outside 16 to 255 ("Invalid value for x-stream-filter-size-bytes");
  // 3.10.8 takes any and filters nothing (stream filtering came in 3.13).
  "x-stream-filter-size-bytes": {
    types: ["stream"],
    value: { kind: "integer", min: 16, max: 255, limit: "RabbitMQ refuses a larger Bloom filter (Invalid value for x-stream-filter-size-bytes)" },
    description: "Streams, RabbitMQ 3.13 and later: bytes of each chunk's Bloom filter for filtered reads (16 to 255).",
  },
  "x-initial-cluster-size": { types: ["stream"], value: exact(1), description: "Streams: number of replicas at creation." },
};

/**
 * The rule of argument `name`, or undefined for one the table does not know. By the table's own
 * keys only: a queue on a broker may carry any argument, and one named `constructor` found
 * Object's constructor (import of such a queue crashed).
 */
export function argumentRule(name: string): ArgumentRule | undefined {
  return ownValue(ARGUMENTS, name);
}

const DURATION = "^0*[1-9][0-9]*(Y|M|D|h|m|s)$";

/** The JSON Schema of one argument, as schemas/topology.schema.json holds it. */
function valueSchema(rule: ArgumentRule): Record<string, unknown> {
  const v = rule.value;
  switch (v.kind) {
    case "integer":
      return { type: "integer", minimum: v.min, maximum: v.max, description: rule.description };
    case "enum":
      return { enum: [...v.values], description: rule.description };
    case "string":
      return { type: "string", description: rule.description };
    case "boolean":
      return { type: "boolean", description: rule.description };
    case "duration":
      return { type: "string", pattern: DURATION, description: rule.description };
    default:
      return assertNever(v);
  }
}

/** The schema's definitions.arguments, generated from ARGUMENTS. */
export function argumentsSchema(): Record<string, unknown> {
  return {
    type: "object",
    description: "Queue x-arguments, sent with the types written here. Only arguments RabbitMQ knows are allowed, each within the values RabbitMQ accepts; set the queue type with type, not x-queue-type.",
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(ARGUMENTS).map(([name, rule]) => [name, valueSchema(rule)])),
  };
}

/** The message for a schema error on an argument's value, when the table says it better than ajv. */
export function argumentValueMessage(name: string, keyword: string, value: unknown): string | undefined {
  const rule = argumentRule(name);
  if (!rule) return undefined;
  const v = rule.value;
  if (keyword === "maximum" && v.kind === "integer") return `must be at most ${v.max}: ${v.limit}; write a smaller number`;
  if (keyword === "pattern" && v.kind === "duration") {
    return `${JSON.stringify(value)} is not a duration RabbitMQ accepts; write a whole number above 0 and one unit, Y, M, D, h, m or s (e.g. 7D)`;
  }
  return undefined;
}

/** A layer of queue settings that may set arguments: defaults.<kind>, then the service's own. */
export interface ArgumentLayer {
  arguments?: Args;
  path: (string | number)[];
}

export interface ArgumentProblem {
  path: (string | number)[];
  message: string;
  atKey?: boolean;
}

/** Where an argument was written: the most specific layer that sets it ([] when none does). */
export function argumentPath(name: string, layers: readonly ArgumentLayer[]): (string | number)[] {
  const layer = [...layers].reverse().find((l) => l.arguments && name in l.arguments);
  return layer ? [...layer.path, "arguments", name] : [];
}

/** What RabbitMQ would refuse of a queue's merged arguments, placed where each was written. */
/** `refused`: arguments written but refused elsewhere, which no other argument is faulted for lacking. */
export function checkArguments(type: QueueType, args: Args, layers: ArgumentLayer[], refused: readonly string[] = []): ArgumentProblem[] {
  const problems: ArgumentProblem[] = [];
  const pathOf = (name: string) => argumentPath(name, layers);
  for (const [name, value] of Object.entries(args)) {
    const rule = argumentRule(name);
    if (!rule) continue; // the schema refuses unknown arguments
    if (!rule.types.includes(type)) {
      problems.push({ path: pathOf(name), atKey: true, message: `argument ${name} does not apply to ${type} queues` });
      continue;
    }
    for (const r of rule.refusedOn ?? []) {
      if (r.type === type && r.value === value) problems.push({ path: pathOf(name), message: r.message });
    }
    if (rule.requires && rule.requires.unless !== value && !(rule.requires.name in args) && !refused.includes(rule.requires.name)) {
      problems.push({ path: pathOf(name), atKey: true, message: `${name} needs ${rule.requires.name}: ${rule.requires.why}; ${rule.requires.fix}` });
    }
    const floor = rule.notBelow ? args[rule.notBelow.name] : undefined;
    if (rule.notBelow && typeof value === "number" && typeof floor === "number" && value < floor) {
      problems.push({ path: pathOf(name), message: `${name} ${value} is below ${rule.notBelow.name} ${floor}: ${rule.notBelow.why}; write ${name} ${floor} or more` });
    }
  }
  return problems;
}
