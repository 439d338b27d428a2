// The naming rules, in one place: the prefix that is topo's namespace, the service-name rule, and
// the names of topo's own objects (mirror policies, the apply lock, holding queues). Everything
// topo creates for itself carries the file's prefix, so two files with different prefixes on one
// vhost never touch each other's objects, and a renamed prefix leaves the old objects alone
// instead of taking them over.

import type { Args, Exchange, Traffic, Policy, Queue, Resource, User } from "../model.js";
import { assertNever } from "../model.js";

export const DEFAULT_PREFIX = "mp";

/** An environment variable's name, as ${NAME} in the file and --password-env / --broker-env take it. */
export const ENV_NAME_SOURCE = "[A-Za-z_][A-Za-z0-9_]*";
export const ENV_NAME = new RegExp(`^${ENV_NAME_SOURCE}$`);

/** The variable topo's examples and `topo import` use for the broker password. */
export const DEFAULT_PASSWORD_ENV = "RABBITMQ_PASSWORD";

/**
 * A prefix is a namespace: at least one lowercase letter first. An empty prefix would make every
 * lowercase exchange and every `<name>.sync` queue of the vhost topo's to delete.
 */
export const PREFIX_RULE = /^[a-z][a-z_]*$/;

/** Words topo uses inside its own namespace (topo.hold.<queue>, the old topo.mirror.<kind>). */
const RESERVED_PREFIXES = new Set(["hold", "mirror"]);

/** Why `prefix` cannot be topo's namespace, or undefined when it can. */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix === "") {
    return `an empty prefix is no namespace: topo would own (and delete) every lowercase exchange and <name>.sync/.async queue of the vhost; use the prefix your services share, e.g. "mp"`;
  }
  if (!PREFIX_RULE.test(prefix)) return `${JSON.stringify(prefix)} must match ${PREFIX_RULE.source} (lowercase letters and _, starting with a letter)`;
  if (RESERVED_PREFIXES.has(prefix)) return `${JSON.stringify(prefix)} is reserved: topo.${prefix}.* names topo's own objects of every prefix; choose another`;
  return undefined;
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * The router rule: a service is the prefix then this. Written once; the regexes below, the mirror
 * policies' patterns and the Python router `export celery` writes are all made from it.
 */
export const SERVICE_NAME_BODY = "[a-z_]+";

/**
 * The task part of a task name `<service>.<kind>.<task>`: letters, digits and _, as in a Python
 * function's name. The Python router `export celery` writes refuses other names, and the topic
 * permissions of topo's users allow only these routing keys (core/permissions.ts).
 */
export const TASK_NAME_BODY = "[A-Za-z0-9_]+";

/**
 * The longest routing key, exchange or queue name AMQP carries: a short string, at most 255 bytes.
 * Clients refuse a longer routing key before sending it (amqplib: "must be a string (up to 255
 * chars)", py-amqp: struct.error), so a longer task name reaches no queue.
 */
export const MAX_ROUTING_KEY_BYTES = 255;

/**
 * Exchanges Celery declares by itself at run time whose names a prefix's pattern can match (its
 * default exchange, direct; its events exchange and, from Celery 5.5 with quorum queues, the
 * exchange of its native delayed delivery, both durable topic ones: the very shape topo makes).
 * No service may take them, and no prefix owns them: prefix "c" to "celery" deleted a worker's
 * `celeryev`, and prefix "c" the `celery_delayed_delivery` every countdown task of a quorum
 * queue reaches its queue through, as services that left the file. (kombu's levels,
 * `celery_delayed_0` to `celery_delayed_27`, hold digits, which no service name does.)
 */
export const CELERY_EXCHANGES: ReadonlyMap<string, string> = new Map([
  ["celery", "Celery's default exchange"],
  ["celeryev", "the exchange of Celery's task events (celery worker -E, celery events)"],
  ["celery_delayed_delivery", "the exchange of Celery's native delayed delivery (ETA and countdown tasks on quorum queues, Celery 5.5 and later)"],
]);

export function serviceNamePattern(prefix: string): RegExp {
  return new RegExp(`^${escapeRegex(prefix)}${SERVICE_NAME_BODY}$`);
}

/** The body of PREFIX_RULE: what a prefix is, unanchored. */
const PREFIX_BODY = PREFIX_RULE.source.slice(1, -1);

/** A service's exchange of any prefix: a prefix, then the service's own letters. */
export const ANY_SERVICE_NAME = new RegExp(`^${PREFIX_BODY}${SERVICE_NAME_BODY}$`);

/** A service's queue of any prefix. */
export const ANY_SERVICE_QUEUE = new RegExp(`^${PREFIX_BODY}${SERVICE_NAME_BODY}\\.(?:sync|async)$`);

/** A service's queue: `<service>.sync` or `<service>.async`. */
export function serviceQueuePattern(prefix: string): RegExp {
  return new RegExp(`^${escapeRegex(prefix)}${SERVICE_NAME_BODY}\\.(?:sync|async)$`);
}

/**
 * The pattern of a mirror policy that covers every `<kind>` queue of the prefix. Celery's own
 * names are left out where the prefix's pattern would match them (CELERY_EXCHANGES: no service
 * takes them), as ownership leaves them out: prefix "c" mirrored a worker's `celery.sync`, over
 * the policy its owner had given it, while plan and import said topo never touches it.
 */
export function kindQueuesPattern(prefix: string, kind: Traffic, leaveOutCelery = true): string {
  const celery = [...CELERY_EXCHANGES.keys()].filter((n) => leaveOutCelery && n.length > prefix.length && n.startsWith(prefix)).map((n) => `${escapeRegex(n.slice(prefix.length))}\\.`);
  return `^${escapeRegex(prefix)}${celery.length ? `(?!${celery.join("|")})` : ""}${SERVICE_NAME_BODY}\\.${kind}$`;
}

/** The default exchange and amq.* are never topo's (nor the default exchange's implicit bindings), and always there. */
export function isBrokersOwn(exchange: string): boolean {
  return exchange === "" || exchange.startsWith("amq.");
}

/** Every object topo makes for itself starts with this, then the prefix. */
export const TOPO_NAMESPACE = "topo.";

/** The namespace of one prefix's own objects: `topo.<prefix>.` */
export function ownNamespace(prefix: string): string {
  return `${TOPO_NAMESPACE}${prefix}.`;
}

export function mirrorPolicyName(prefix: string, kind: Traffic): string {
  return `${ownNamespace(prefix)}mirror.${kind}`;
}

/** Before policies carried the prefix, topo named them `topo.mirror.<kind>`. */
const LEGACY_MIRROR_POLICY = /^topo\.mirror\.(sync|async)$/;

/** The apply lock: an exclusive queue that lives as long as the apply's connection. */
export function lockQueueName(prefix: string): string {
  return `${ownNamespace(prefix)}lock`;
}

/**
 * The apply mark: a durable exchange with no bindings whose x-topo-generation every apply renews,
 * under the lock and before its first write, so that a later apply can tell whether any apply
 * wrote while it read (broker/generation.ts).
 */
export function applyMarkName(prefix: string): string {
  return `${ownNamespace(prefix)}generation`;
}

/**
 * What a file may call a user, and what tags it may give one (the schema's users propertyNames and
 * tags patterns, which a unit test holds these to). RabbitMQ takes any name and tag: a user made by
 * hand may have one no file can hold.
 */
export const USER_NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/;
export const USER_NAME_WORDS = "1 to 128 letters, digits, _ . @ and - (starting with a letter or a digit)";
export const USER_TAG_RULE = /^[A-Za-z0-9_.-]+$/;

/**
 * The tag that marks a broker user as topo's, for one prefix. RabbitMQ ignores tags it does not
 * know for AMQP; a user without this tag is never changed or deleted unless the file adopts it.
 */
export function userMarkerTag(prefix: string): string {
  return `${TOPO_NAMESPACE}${prefix}`;
}

/**
 * The marker tags of other prefixes a user carries beside `prefix`'s. A user with another
 * topology's marker is that topology's too: this file neither deletes it nor takes it over.
 */
export function otherMarkers(tags: readonly string[], prefix: string): string[] {
  const own = userMarkerTag(prefix);
  return tags.filter((t) => t !== own && t.startsWith(TOPO_NAMESPACE));
}

/** Is the user this prefix's alone: its marker, and no other prefix's? */
export function markedAsOnly(tags: readonly string[], prefix: string): boolean {
  return tags.includes(userMarkerTag(prefix)) && otherMarkers(tags, prefix).length === 0;
}

/** A lossless replace parks a queue's messages here; the queue's name carries the prefix. */
export const HOLD_PREFIX = "topo.hold.";

/** What a plan saved by topo plan -o says it is (its "format"); a topology file never says so. */
export const SAVED_PLAN_FORMAT_NAME = "topo-saved-plan";

/**
 * A mirror policy's pattern that also matches the holding queues of the queues it matches. A
 * replace parks a mirrored queue's messages in `topo.hold.<queue>`; unmirrored there, the sync
 * queues' transient messages were lost with the one node that held them (measured on a 3-node
 * 3.10 cluster: 18,944 of 60,000 gone when that node stopped during the replace).
 */
export function coveringHolds(pattern: string): string {
  return pattern.startsWith("^") ? `^(?:${escapeRegex(HOLD_PREFIX)})?${pattern.slice(1)}` : pattern;
}

export function holdingQueueName(queue: string): string {
  return `${HOLD_PREFIX}${queue}`;
}

/** The holding queue itself: durable and plain, so nothing but a policy limits what it holds. */
export function holdingQueue(queue: string, type: "classic" | "quorum" = "classic"): Queue {
  return { kind: "queue", name: holdingQueueName(queue), type, durable: true, autoDelete: false, exclusive: false, arguments: {} };
}

/** The queue a holding queue holds messages for, when `r` is one of this prefix's holding queues. */
export function holdingQueueOf(r: Resource, owner: Ownership): string | undefined {
  return r.kind === "queue" ? holdingQueueBase(r.name, owner) : undefined;
}

/** The queue a queue named `name` holds messages for, when it is one of this prefix's holding queues. */
export function holdingQueueBase(name: string, owner: Ownership): string | undefined {
  if (!name.startsWith(HOLD_PREFIX)) return undefined;
  const base = name.slice(HOLD_PREFIX.length);
  return owner.isServiceQueue(base) ? base : undefined;
}

/** The prefix a `topo.<prefix>.…` name belongs to, if it is one. */
export function prefixOfOwnName(name: string): string | undefined {
  if (!name.startsWith(TOPO_NAMESPACE)) return undefined;
  const rest = name.slice(TOPO_NAMESPACE.length);
  const dot = rest.indexOf(".");
  if (dot <= 0) return undefined;
  const p = rest.slice(0, dot);
  return PREFIX_RULE.test(p) && !RESERVED_PREFIXES.has(p) ? p : undefined;
}

/**
 * The prefix whose marker `r` is: its apply mark, its lock, or one of its `topo.<prefix>.*`
 * policies. Any of them says that prefix's file manages this vhost (an apply that wrote leaves
 * its mark; a vhost without mirrored queues has no policy).
 */
/** The apply mark's argument that names the file of the last apply that wrote (plan/other-file.ts). */
export const MARK_FILE = "x-topo-file";

/** The apply mark a binding is on (from it, or into it from an exchange), or undefined. */
export function markOfBinding(b: { source: string; destination: string; destinationType: string }): string | undefined {
  for (const n of [b.source, b.destinationType === "exchange" ? b.destination : undefined]) {
    const p = n === undefined ? undefined : prefixOfOwnName(n);
    if (p !== undefined && n === applyMarkName(p)) return n;
  }
  return undefined;
}

export function markedPrefix(r: Resource): string | undefined {
  if (r.kind !== "policy" && r.kind !== "exchange" && r.kind !== "queue") return undefined;
  const p = prefixOfOwnName(r.name);
  if (p === undefined) return undefined;
  if (r.kind === "policy") return p;
  return r.name === (r.kind === "exchange" ? applyMarkName(p) : lockQueueName(p)) ? p : undefined;
}

/**
 * What topo may change or delete for one prefix: its services' exchanges, queues and bindings, and
 * its own `topo.<prefix>.*` policies. Never amq.*, the default exchange, a user's policy, or the
 * objects of another prefix, including a longer prefix that starts with this one ("mp" and "mpx")
 * when the broker shows that prefix is in use (it holds mpx's apply mark, lock or a `topo.mpx.*`
 * policy: markedPrefix).
 */
export class Ownership {
  private readonly exchange: RegExp;
  private readonly queue: RegExp;
  private readonly legacyPattern: Record<Traffic, string>;
  /** Longer prefixes in use on the broker whose names this prefix's patterns would also match. */
  readonly nested: string[];
  /** Shorter prefixes in use on the broker, whose patterns match every name of this one. */
  readonly outer: string[];
  private readonly nestedRe: RegExp | undefined;

  /** Users this prefix manages: marked with its tag on the broker, or adopted by the file. */
  private readonly users: Set<string>;

  constructor(
    readonly prefix: string,
    others: Iterable<string> = [],
    users: Iterable<string> = [],
  ) {
    this.users = new Set(users);
    this.exchange = serviceNamePattern(prefix);
    this.queue = serviceQueuePattern(prefix);
    // As older versions wrote it: without leaving out Celery's names.
    this.legacyPattern = { sync: kindQueuesPattern(prefix, "sync", false), async: kindQueuesPattern(prefix, "async", false) };
    this.nested = [...new Set(others)].filter((o) => o !== prefix && o.startsWith(prefix)).sort();
    this.outer = [...new Set(others)].filter((o) => o !== prefix && prefix.startsWith(o)).sort();
    // A longer prefix's names are that prefix then at least one more letter: "ab" itself is not
    // prefix ab's (its pattern is ^ab[a-z_]+$), and was left by both files' plans as the other's.
    this.nestedRe = this.nested.length ? namespaceOf(this.nested) : undefined;
  }

  /** Ownership for what a vhost holds: other prefixes' markers (markedPrefix) mark their namespaces. */
  static of(prefix: string, resources: Resource[], adopted: readonly string[] = []): Ownership {
    const others: string[] = [];
    const users: string[] = [...adopted];
    for (const r of resources) {
      // A user with another prefix's marker as well is the other topology's too: never deleted here.
      if (r.kind === "user" && markedAsOnly(r.tags, prefix)) users.push(r.name);
      const p = markedPrefix(r);
      if (p) others.push(p);
    }
    return new Ownership(prefix, others, users);
  }

  /**
   * The pattern of this prefix's mirror policy for every `<kind>` queue. A longer prefix in use
   * is left out with a negative lookahead (`^mp(?!x)[a-z_]+\.sync$`), so the policy never
   * mirrors mpx's queues; RabbitMQ's patterns are PCRE (Erlang re), which reads it as JavaScript does.
   */
  kindQueuesPattern(kind: Traffic, nested: readonly string[] = this.nested, services: readonly string[] = []): string {
    const plain = kindQueuesPattern(this.prefix, kind);
    if (!nested.length) return plain;
    const rests = nested.map((n) => escapeRegex(n.slice(this.prefix.length)));
    const head = `${escapeRegex(this.prefix)}(?!${rests.join("|")})`;
    const tail = plain.slice(1 + escapeRegex(this.prefix).length);
    if (!services.length) return `^${head}${tail}`;
    // The file's own services inside a longer prefix, by name: `^(?:mp(?!x)[a-z_]+|mpxbar)\.sync$`.
    const body = tail.slice(0, tail.length - `\\.${kind}$`.length);
    return `^(?:${head}${body}|${services.map(escapeRegex).join("|")})\\.${kind}$`;
  }

  /** A user topo manages for this prefix (its permissions in the vhost with it). */
  ownsUser(name: string): boolean {
    return this.users.has(name);
  }

  /** The longer prefix in use whose namespace holds `name` (a service's exchange or queue), if any. */
  nestedOwner(name: string): string | undefined {
    return this.nestedRe?.test(name) ? this.nested.find((n) => namespaceOf([n]).test(name)) : undefined;
  }

  private mine(name: string, re: RegExp): boolean {
    return re.test(name) && !this.nestedRe?.test(name);
  }

  isService(name: string): boolean {
    return this.mine(name, this.exchange) && !CELERY_EXCHANGES.has(name);
  }

  /** No service is named as one of Celery's exchanges (CELERY_EXCHANGES), so no queue of theirs is a service's. */
  isServiceQueue(name: string): boolean {
    return this.mine(name, this.queue) && !CELERY_EXCHANGES.has(name.slice(0, name.lastIndexOf(".")));
  }

  owns(r: Resource): boolean {
    switch (r.kind) {
      case "vhost":
        return false;
      case "exchange":
        return this.isService(r.name);
      case "queue":
        return this.isServiceQueue(r.name);
      case "binding":
        return r.destinationType === "queue" && this.isService(r.source) && this.isServiceQueue(r.destination);
      case "policy":
        return this.ownsPolicy(r);
      case "user":
        return this.ownsUser((r as User).name);
      case "permission":
      case "topic-permission":
        return this.ownsUser(r.user);
      default:
        return assertNever(r);
    }
  }

  /**
   * This prefix's policies, and the unprefixed `topo.mirror.<kind>` of older versions when its
   * pattern is the one they wrote for this prefix and its definition, apply-to (queues) and
   * priority (0) theirs, mirroring and nothing else (plan replaces it with the prefixed one). A
   * user's policy of that name that limits or dead-letters is the user's, whatever its pattern.
   */
  ownsPolicy(p: Policy): boolean {
    if (p.name.startsWith(ownNamespace(this.prefix))) return true;
    const legacy = LEGACY_MIRROR_POLICY.exec(p.name);
    // Older versions wrote it with apply-to queues and priority 0: one with another priority or
    // apply-to was written by someone, whatever its name.
    if (!legacy || !legacyMirrorDefinition(p.definition) || p.applyTo !== "queues" || p.priority !== 0) return false;
    const kind = legacy[1] as Traffic;
    if (p.pattern === this.legacyPattern[kind]) return true;
    // The exact-list form: ^(?:a\.sync|b\.sync)$, every name one of this prefix's queues.
    const list = /^\^\(\?:(.*)\)\$$/.exec(p.pattern);
    if (!list) return false;
    const names = (list[1] as string).split("|").map((n) => n.replace(/\\(.)/g, "$1"));
    return names.length > 0 && names.every((n) => this.isServiceQueue(n) && n.endsWith(`.${kind}`));
  }
}

/** What an older topo's `topo.mirror.<kind>` held: ha-mode all, with or without ha-sync-mode automatic. */
function legacyMirrorDefinition(d: Args): boolean {
  return d["ha-mode"] === "all" && Object.keys(d).every((k) => k === "ha-mode" || (k === "ha-sync-mode" && d[k] === "automatic"));
}

/** The services' exchanges and queues of any of `prefixes`. */
function namespaceOf(prefixes: readonly string[]): RegExp {
  return new RegExp(`^(?:${prefixes.map(escapeRegex).join("|")})${SERVICE_NAME_BODY}(?:\\.(?:sync|async))?$`);
}

/** The one exchange shape topo makes for a service: what it may delete when the file drops it. */
export function madeByTopo(e: Exchange): boolean {
  return e.type === "topic" && e.durable && !e.autoDelete && !e.internal && Object.keys(e.arguments).length === 0;
}

/** Is `name` one of topo's own objects (of any prefix), as opposed to a user's? */
export function isTopoName(name: string): boolean {
  return name.startsWith(TOPO_NAMESPACE);
}
