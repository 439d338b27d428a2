// Read one cluster's state through the management API: a constant number of requests whatever the
// number of services (never one request per object), stats off and only the columns topo uses.

import type { ActualCluster, ClusterTarget, QueueFacts } from "../model.js";
import type { Channel } from "amqplib";
import type { AmqpSession } from "./amqp.js";
import { amqpError } from "./amqp.js";
import type { ManagementClient } from "./http.js";
import { vh } from "./http.js";
import type { ApiBinding, ApiExchange, ApiPermission, ApiPolicy, ApiQueue, ApiTopicPermission, ApiUser } from "./state.js";
import { actualFrom } from "./state.js";
import { atLeast, permitsOf, type BrokerPermits } from "../plan/broker-rules.js";
import { sleep } from "./retry.js";

export const EXCHANGE_COLUMNS = "name,type,durable,auto_delete,internal,arguments";
// With stats off, 3.x still reports the mirror fields; message totals cost twice the time of the
// whole listing, so they are read only when a plan needs them (see readMessageCounts).
export const QUEUE_COLUMNS = "name,type,durable,auto_delete,exclusive,arguments,node,state,policy,slave_nodes,synchronised_slave_nodes";
export const BINDING_COLUMNS = "source,destination,destination_type,routing_key,arguments";
const USER_COLUMNS = "name,password_hash,hashing_algorithm,tags";
/**
 * An empty `sort` turns off the broker's own sort (RabbitMQ 3.8 to 4.x alike): without it, it
 * sorts every listing by name, and bindings by six fields, before encoding it. At 25,000 services
 * that sort was a fifth to a third of the time the broker took to answer. topo sorts what it reads
 * itself (core/keys.ts sortResources), so the broker's order is never used.
 */
const UNSORTED = "sort=";

/**
 * The requests that describe one vhost's objects: what every plan reads, and what the benchmark
 * times alone as the read floor (bench/run.mjs), so that the two are the same requests.
 */
export function listingPaths(vhost: string): { nodes: string; exchanges: string; queues: string; bindings: string; policies: string; operatorPolicies: string } {
  const v = vh(vhost);
  return {
    nodes: `/api/nodes?columns=name,running,applications`,
    exchanges: `/api/exchanges/${v}?disable_stats=true&columns=${EXCHANGE_COLUMNS}&${UNSORTED}`,
    queues: `/api/queues/${v}?disable_stats=true&columns=${QUEUE_COLUMNS}&${UNSORTED}`,
    bindings: `/api/bindings/${v}?columns=${BINDING_COLUMNS}&${UNSORTED}`,
    policies: `/api/policies/${v}`,
    operatorPolicies: `/api/operator-policies/${v}`,
  };
}

interface ApiNode {
  name: string;
  running: boolean;
  applications?: { name: string; version: string }[];
}

/** `users`: also read the broker's users and the vhost's permissions (the file manages users, or import writes them). */
export async function readCluster(client: ManagementClient, target: ClusterTarget, users = false): Promise<ActualCluster> {
  const v = vh(target.amqp.vhost);
  const paths = listingPaths(target.amqp.vhost);
  const none = Promise.resolve(undefined);
  const [nodes, exchanges, queues, bindings, policies, operatorPolicies, userList, permissions, topicPermissions, allPermissions] = await Promise.all([
    // Which nodes run decides where mirrors must be, and the rabbit application gives the
    // version (cheaper than /api/overview). Only monitoring and administrator users may list
    // nodes; for others the version comes from the overview and the mirror check is skipped.
    client.getOptional<ApiNode[]>(paths.nodes, [401, 403]),
    // A missing vhost answers 404 here: that is how topo learns it must create it.
    client.getOptional<ApiExchange[]>(paths.exchanges),
    client.getOptional<ApiQueue[]>(paths.queues),
    client.getOptional<ApiBinding[]>(paths.bindings),
    client.getOptional<ApiPolicy[]>(paths.policies),
    // Operator policies cap a queue's length, bytes, TTL and expiry whatever its arguments say
    // (the lowest value wins). A monitoring user with rights on the vhost may read them (3.10.8,
    // 4.0.5); for a user who may not, they stay unknown.
    client.getOptional<ApiPolicy[]>(paths.operatorPolicies, [401, 403, 404]),
    // Users, and the vhost's permissions: only administrators may list them. For anyone else
    // (a monitoring user running plan) users are not compared, and plan says so.
    users ? client.getOptional<ApiUser[]>(`/api/users?columns=${USER_COLUMNS}`, [401, 403]) : none,
    users ? client.getOptional<ApiPermission[]>(`/api/vhosts/${v}/permissions`, [401, 403, 404]) : none,
    users ? client.getOptional<ApiTopicPermission[]>(`/api/vhosts/${v}/topic-permissions`, [401, 403, 404]) : none,
    // Which vhosts each user may use: a marked user with rights elsewhere is another file's.
    users ? client.getOptional<{ user: string; vhost: string }[]>(`/api/permissions?columns=user,vhost`, [401, 403]) : none,
  ]);
  let version = nodes?.flatMap((n) => n.applications ?? []).find((a) => a.name === "rabbit")?.version;
  version ??= (await client.get<{ rabbitmq_version?: string }>(`/api/overview?columns=rabbitmq_version`)).rabbitmq_version;
  const exists = exchanges !== undefined;
  return actualFrom({
    version: version ?? "",
    nodes: (nodes ?? []).filter((n) => n.running).map((n) => n.name),
    downNodes: (nodes ?? []).filter((n) => !n.running).map((n) => n.name),
    vhost: exists ? target.amqp.vhost : undefined,
    exchanges: exchanges ?? [],
    queues: exists ? (queues ?? []) : [],
    bindings: exists ? (bindings ?? []) : [],
    policies: exists ? (policies ?? []) : [],
    operatorPolicies: exists ? operatorPolicies : [],
    users: userList,
    usersUnreadable: userList || !users ? undefined : `the management user ${target.management.username} may not list users (it needs the administrator tag)`,
    nodesUnreadable: nodes ? undefined : `the management user ${target.management.username} may not list the cluster's nodes (it needs the monitoring tag)`,
    permissions: exists ? (permissions ?? []) : [],
    topicPermissions: exists ? (topicPermissions ?? []) : [],
    allPermissions,
  });
}

/**
 * What the broker permits beyond its version: on RabbitMQ 4, its deprecated features and their
 * phases (one request). 3.x has no deprecated features, and a user who may not read the list
 * gets the version's defaults. The list gives each feature's default phase: a rabbitmq.conf
 * override (deprecated_features.permit.X) is not shown there (measured on 4.0.5).
 */
export async function readPermits(client: ManagementClient, version: string): Promise<BrokerPermits> {
  if (!atLeast(version, 4, 0)) return permitsOf(version);
  const list = await client.getOptional<{ name: string; deprecation_phase?: string }[]>(`/api/deprecated-features`, [401, 403, 404]);
  return permitsOf(version, Array.isArray(list) ? list : undefined);
}

/**
 * The vhost's default queue type (RabbitMQ 3.11+): what a durable queue declared without
 * x-queue-type becomes there. An existing vhost reports its own (or the broker's, when it has
 * none); a vhost apply will create takes the broker's, from the overview. "undefined" (a broker
 * default that does not name a type) counts as none.
 */
export async function readDefaultQueueType(client: ManagementClient, target: ClusterTarget, vhostExists: boolean): Promise<string | undefined> {
  const answer = vhostExists
    ? await client.getOptional<{ default_queue_type?: string }>(`/api/vhosts/${vh(target.amqp.vhost)}?columns=name,default_queue_type`)
    : await client.get<{ default_queue_type?: string }>(`/api/overview?columns=default_queue_type`);
  const type = answer?.default_queue_type;
  return type && type !== "undefined" ? type : undefined;
}

/**
 * The vhost's max-queues, when it has one (monitoring and management users may read it); read
 * only for a plan that writes to a vhost that exists.
 */
export async function readMaxQueues(client: ManagementClient, target: ClusterTarget): Promise<number | undefined> {
  const limits = await client.getOptional<{ value?: Record<string, number> }[]>(`/api/vhost-limits/${vh(target.amqp.vhost)}`, [401, 403, 404]);
  const max = Array.isArray(limits) ? limits[0]?.value?.["max-queues"] : undefined;
  return typeof max === "number" ? max : undefined;
}

/** Message totals of every queue (one request), for plans that delete or replace queues. */
export async function readMessageCounts(client: ManagementClient, target: ClusterTarget, actual: ActualCluster): Promise<void> {
  const qs = await client.getOptional<{ name: string; messages?: number }[]>(
    `/api/queues/${vh(target.amqp.vhost)}?disable_stats=true&enable_queue_totals=true&columns=name,messages&${UNSORTED}`,
  );
  for (const q of qs ?? []) {
    const facts = (actual.queueFacts[q.name] ??= {});
    facts.messages = q.messages;
  }
}

const STATS_COLUMNS = "name,messages,messages_ready,messages_unacknowledged,consumers,message_bytes";

/**
 * What the queues a plan replaces hold: ready and unacknowledged messages, consumers and bytes.
 * One request per queue (a replace is rare, a listing with stats costs seconds at 5,000 queues).
 * The figures are the broker's statistics, up to 5 s old; readLiveCounts corrects them.
 */
export async function readQueueStats(client: ManagementClient, target: ClusterTarget, actual: ActualCluster, names: readonly string[]): Promise<void> {
  const v = vh(target.amqp.vhost);
  await Promise.all(
    names.map(async (name) => {
      const q = await readStats(client, v, name);
      // Right after a declare the statistics are not there yet: the counts stay unknown.
      if (q) statsInto((actual.queueFacts[name] ??= {}), q);
    }),
  );
}

interface ApiQueueStats {
  messages?: number;
  messages_ready?: number;
  messages_unacknowledged?: number;
  consumers?: number;
  message_bytes?: number;
}

/** A queue's statistics, or undefined when it is gone or has none yet. */
async function readStats(client: ManagementClient, v: string, name: string): Promise<ApiQueueStats | undefined> {
  const q = await client.getOptional<ApiQueueStats>(`/api/queues/${v}/${encodeURIComponent(name)}?columns=${STATS_COLUMNS}`);
  return q?.messages === undefined ? undefined : q;
}

function statsInto(facts: QueueFacts, q: ApiQueueStats): void {
  facts.messages = q.messages;
  facts.ready = q.messages_ready ?? q.messages;
  facts.unacked = q.messages_unacknowledged ?? 0;
  facts.consumers = q.consumers ?? 0;
  facts.bytes = q.message_bytes;
}

/**
 * How long statistics that count unacknowledged messages on a queue no consumer holds are read
 * again before topo believes them, and how often. A client that fetched messages with basic.get
 * and then closed its channel (or an apply stopped half-way through a move) leaves the figure
 * standing until the queue's next statistics, every 5 s by default (collect_statistics_interval):
 * measured on 3.10, a replace run at once was refused for "10 messages fetched but not
 * acknowledged" that were back in the queue. Twice the interval leaves room for a busy broker.
 */
export const UNACKED_SETTLE_MS = 10_000;
const UNACKED_POLL_MS = 500;

/**
 * Read the statistics of `names` again while they count unacknowledged messages and no consumer,
 * until the count is 0 or UNACKED_SETTLE_MS have passed: only a figure that stands is a client
 * holding messages. No consumer and unacknowledged messages is rare (basic.get without ack), so
 * the wait is paid only where a replace would otherwise be refused.
 */
export async function settleUnacked(client: ManagementClient, target: ClusterTarget, actual: ActualCluster, names: readonly string[], settleMs = UNACKED_SETTLE_MS): Promise<void> {
  // A queue gone meanwhile is left to the live count (apply) or to the next plan.
  const gone = new Set<string>();
  const held = () => names.filter((n) => !gone.has(n) && (actual.queueFacts[n]?.unacked ?? 0) > 0 && actual.queueFacts[n]?.consumers === 0);
  const v = vh(target.amqp.vhost);
  for (const deadline = Date.now() + settleMs; held().length && Date.now() < deadline; ) {
    await sleep(UNACKED_POLL_MS);
    await Promise.all(
      held().map(async (name) => {
        const q = await readStats(client, v, name);
        if (q) statsInto(actual.queueFacts[name]!, q);
        else gone.add(name);
      }),
    );
  }
}

/**
 * The broker's counts now, from a passive declare: ready messages and consumers. Apply judges a
 * replace on these, not on statistics that lag by up to 5 s. Unacknowledged messages have no live
 * count; the statistics' figure is kept unless it is stale (it counts consumers that are gone).
 */
export async function readLiveCounts(session: AmqpSession, actual: ActualCluster, queues: readonly { name: string; stream: boolean }[]): Promise<void> {
  for (const q of queues) {
    // A channel of its own: a 404 closes it, and it must not go back to the session's pool.
    let ch: Channel | undefined;
    let live: { messageCount: number; consumerCount: number } | undefined;
    try {
      ch = await session.channel();
      session.rpcs++;
      live = await ch.checkQueue(q.name);
    } catch (e) {
      // 404: the queue is gone, so it holds nothing.
      if ((e as { code?: number }).code !== 404) throw amqpError(session.cluster, `count messages of queue ${q.name}`, e as Error, session.lost);
    } finally {
      await ch?.close().catch(() => undefined);
    }
    const facts = (actual.queueFacts[q.name] ??= {});
    if (!live) {
      Object.assign(facts, { ready: 0, unacked: 0, messages: 0, consumers: 0, bytes: 0 });
      continue;
    }
    if ((facts.consumers ?? 0) > live.consumerCount) facts.unacked = 0;
    facts.consumers = live.consumerCount;
    // A stream's passive declare always says 0 messages; its statistics are the only count.
    if (!q.stream) {
      const stale = facts.ready;
      facts.ready = live.messageCount;
      // Bytes have no live count. Statistics that counted other messages say nothing of these:
      // an average per message hid ten 100 KB messages behind ten small ones, and a byte limit
      // was judged met when it was not. So the bytes are unknown, and a byte limit cannot be judged.
      if (stale !== facts.ready) facts.bytes = facts.ready === 0 ? 0 : undefined;
    }
    facts.ready ??= 0;
    facts.unacked ??= 0;
    facts.messages = facts.ready + facts.unacked;
  }
}
