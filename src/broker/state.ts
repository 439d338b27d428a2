// Pure: what the management API returns → the model, normalised exactly like the desired state
// (defaults filled, x-queue-type folded into `type`, argument keys sorted).

import type { ActualCluster, Args, Binding, Exchange, Policy, Queue, QueueFacts, QueueType, Resource, StoredHash } from "../model.js";
import { keyOf, sortArgs, sortResources } from "../core/keys.js";
import { byName, pushTo } from "../core/collections.js";
import { isBrokersOwn } from "../core/naming.js";
import { SHA256 } from "../config/credentials.js";
import { exactArgs } from "./exact-args.js";

export interface ApiExchange {
  name: string;
  type: string;
  durable: boolean;
  auto_delete: boolean;
  internal: boolean;
  arguments?: Args;
}
export interface ApiQueue {
  name: string;
  type?: string;
  durable: boolean;
  auto_delete: boolean;
  exclusive?: boolean;
  arguments?: Args;
  messages?: number;
  consumers?: number;
  node?: string;
  state?: string;
  policy?: string;
  slave_nodes?: string[];
  synchronised_slave_nodes?: string[];
  /** A quorum queue's members, and those reachable now. */
  members?: string[];
  online?: string[];
}
export interface ApiBinding {
  source: string;
  destination: string;
  destination_type: "queue" | "exchange";
  routing_key: string;
  arguments?: Args;
  /** The routing key and, where the binding has arguments, "~" and a hash of them with their types. */
  properties_key?: string;
}
export interface ApiPolicy {
  name: string;
  pattern: string;
  "apply-to": Policy["applyTo"];
  priority: number;
  definition: Args;
}

export function exchangeFrom(e: ApiExchange): Exchange {
  return {
    kind: "exchange",
    name: e.name,
    type: e.type,
    durable: e.durable,
    autoDelete: e.auto_delete,
    internal: e.internal,
    arguments: sortArgs(e.arguments ?? {}),
  };
}

export function queueFrom(q: ApiQueue): Queue {
  const { "x-queue-type": declaredType, ...rest } = q.arguments ?? {};
  // RabbitMQ 4 reports x-queue-type: classic even when a queue was declared without it, and 3.x
  // keeps whatever the client sent; the queue's type is what counts, wherever it is written.
  const type = (q.type ?? (typeof declaredType === "string" ? declaredType : "classic")) as QueueType;
  return {
    kind: "queue",
    name: q.name,
    type,
    durable: q.durable,
    autoDelete: q.auto_delete,
    exclusive: q.exclusive ?? false,
    arguments: sortArgs(rest),
  };
}

export function bindingFrom(b: ApiBinding): Binding {
  const binding: Binding = {
    kind: "binding",
    source: b.source,
    destination: b.destination,
    destinationType: b.destination_type,
    routingKey: b.routing_key,
    arguments: sortArgs(b.arguments ?? {}),
  };
  // Nearly every binding has no arguments: its routing key alone tells it apart, and AMQP writes
  // it exactly. One with arguments carries what tells it apart, and what re-creates it exactly.
  if (Object.keys(binding.arguments).length === 0) return binding;
  return { ...binding, ...(b.properties_key !== undefined ? { propertiesKey: b.properties_key } : {}), ...exactArgs(binding.arguments, b.properties_key) };
}

export function policyFrom(p: ApiPolicy): Policy {
  return {
    kind: "policy",
    name: p.name,
    pattern: p.pattern,
    applyTo: p["apply-to"],
    priority: p.priority,
    definition: sortArgs(p.definition ?? {}),
  };
}

export function factsFrom(q: ApiQueue): QueueFacts {
  return {
    messages: q.messages,
    consumers: q.consumers,
    node: q.node,
    state: q.state,
    policy: q.policy || undefined,
    mirrors: q.slave_nodes,
    synchronisedMirrors: q.synchronised_slave_nodes,
    ...(Array.isArray(q.members) && Array.isArray(q.online) ? { members: q.members, online: q.online } : {}),
  };
}

export interface ApiUser {
  name: string;
  password_hash?: string;
  hashing_algorithm?: string;
  /** A list on 3.9 and later; a comma-separated string before. */
  tags?: string[] | string;
}

/** One user's limits (GET /api/user-limits): max-connections, max-channels. */
export interface ApiUserLimits {
  user: string;
  value?: Record<string, unknown>;
}

export interface ApiPermission {
  user: string;
  configure: string;
  write: string;
  read: string;
}

export interface ApiTopicPermission {
  user: string;
  exchange: string;
  write: string;
  read: string;
}

export interface ApiSnapshot {
  version: string;
  nodes: string[];
  downNodes?: string[];
  vhost?: string;
  exchanges: ApiExchange[];
  queues: ApiQueue[];
  bindings: ApiBinding[];
  policies: ApiPolicy[];
  /** The vhost's operator policies; undefined when the management user may not read them. */
  operatorPolicies?: ApiPolicy[];
  /** Every user of the broker; undefined when the management user may not list them. */
  users?: ApiUser[];
  /** Why users could not be read. */
  usersUnreadable?: string;
  /** Why the cluster's nodes could not be read. */
  nodesUnreadable?: string;
  /** Why the vhost's operator policies could not be read. */
  operatorPoliciesUnreadable?: string;
  permissions?: ApiPermission[];
  topicPermissions?: ApiTopicPermission[];
  /** Every user's permissions and topic permissions on every vhost (user and vhost only). */
  allPermissions?: { user: string; vhost: string }[];
  /** Users' limits; undefined when not read, or the management user may not read them. */
  userLimits?: ApiUserLimits[];
}

/**
 * A user's tags as the management API gives them (a list on RabbitMQ 3.10 and 4, one
 * comma-separated string on older ones), trimmed, without repeats, sorted: what the plan compares.
 */
export function tagsOf(tags: unknown): string[] {
  const t = Array.isArray(tags) ? tags.map(String) : String(tags ?? "").split(",");
  return [...new Set(t.map((x) => x.trim()).filter(Boolean))].sort();
}


/**
 * Bindings that JSON shows alike but the broker holds apart (their properties_keys differ): each
 * but the one with the lowest properties_key gets it as its `twin`, so that none is lost where
 * resources are kept by key (a replace re-created one of two; a delete counted one).
 */
function markTwins(bindings: Binding[]): void {
  const seen = new Map<string, Binding[]>();
  for (const b of bindings) if (b.propertiesKey !== undefined) pushTo(seen, keyOf(b), b);
  for (const alike of seen.values()) {
    if (alike.length < 2) continue;
    alike.sort((a, b) => ((a.propertiesKey as string) < (b.propertiesKey as string) ? -1 : 1));
    for (const b of alike.slice(1)) b.twin = b.propertiesKey;
  }
}

export function actualFrom(s: ApiSnapshot): ActualCluster {
  const resources: Resource[] = [];
  const queueFacts = byName<QueueFacts>();
  if (s.vhost !== undefined) resources.push({ kind: "vhost", name: s.vhost });
  for (const e of s.exchanges) if (!isBrokersOwn(e.name)) resources.push(exchangeFrom(e));
  for (const q of s.queues) {
    resources.push(queueFrom(q));
    queueFacts[q.name] = factsFrom(q);
  }
  const bindings = s.bindings.flatMap((b) => (b.source !== "" ? [bindingFrom(b)] : []));
  markTwins(bindings);
  for (const b of bindings) resources.push(b);
  for (const p of s.policies) resources.push(policyFrom(p));
  // Users are the broker's; their hashes stay out of the resources, so no plan can print one.
  const userHashes = byName<StoredHash>();
  for (const u of s.users ?? []) {
    resources.push({ kind: "user", name: u.name, tags: tagsOf(u.tags) });
    if (u.password_hash) userHashes[u.name] = { hash: u.password_hash, algorithm: u.hashing_algorithm ?? SHA256 };
  }
  const userLimits = byName<Record<string, number>>();
  for (const l of s.userLimits ?? []) {
    const numbers = Object.entries(l.value ?? {}).filter((e): e is [string, number] => typeof e[1] === "number");
    if (numbers.length) userLimits[l.user] = Object.fromEntries(numbers);
  }
  const userVhosts = byName<string[]>();
  // Each vhost once: a user's permissions and its topic permissions there are both listed.
  for (const p of s.allPermissions ?? []) {
    const vhosts = (userVhosts[p.user] ??= []);
    if (!vhosts.includes(p.vhost)) vhosts.push(p.vhost);
  }
  if (s.users) {
    for (const p of s.permissions ?? []) resources.push({ kind: "permission", user: p.user, configure: p.configure, write: p.write, read: p.read });
    for (const t of s.topicPermissions ?? []) resources.push({ kind: "topic-permission", user: t.user, exchange: t.exchange, write: t.write, read: t.read });
  }
  return {
    vhostExists: s.vhost !== undefined,
    version: s.version,
    nodes: s.nodes,
    downNodes: s.downNodes ?? [],
    resources: sortResources(resources),
    queueFacts,
    ...(s.operatorPolicies ? { operatorPolicies: s.operatorPolicies.map(policyFrom) } : {}),
    ...(s.users ? { userHashes, userVhosts } : {}),
    ...(s.userLimits ? { userLimits } : {}),
    ...(s.usersUnreadable ? { usersUnreadable: s.usersUnreadable } : {}),
    ...(s.nodesUnreadable ? { nodesUnreadable: s.nodesUnreadable } : {}),
    ...(s.operatorPoliciesUnreadable ? { operatorPoliciesUnreadable: s.operatorPoliciesUnreadable } : {}),
  };
}
