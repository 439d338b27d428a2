// Read one cluster's state through the management API: a constant number of requests whatever the
// number of services (never one request per object), stats off and only the columns topo uses.

import type { ActualCluster, ClusterTarget, KeptTopicPermission, Queue, QueueFacts, Resource } from "../model.js";
import { placesOf } from "../model.js";
import { redactText } from "../redact.js";
import { noRightsHint, plural, shellWord } from "../core/words.js";
import type { Channel } from "amqplib";
import type { AmqpSession } from "./amqp.js";
import { amqpError, closeChannel, vhostFoundOverAmqp } from "./amqp.js";
import type { ManagementClient } from "./http.js";
import { vh } from "./http.js";
import { sleep } from "./retry.js";
import { runLimited } from "./limited.js";
import { BrokerError } from "../errors.js";
import { bindingItem, exchangeItem, nodeItem, permissionItem, policiesUnlisted, policyItem, queueCountItem, queueItem, queueOperatorPolicyItem, topicPermissionItem, userItem, userVhostItem } from "./answers.js";
import type { ApiBinding, ApiExchange, ApiPermission, ApiPolicy, ApiQueue, ApiTopicPermission, ApiUser, ApiUserLimits } from "./state.js";
import { actualFrom, tagsOf } from "./state.js";
import { atLeast, permitsOf, type BrokerPermits } from "../plan/broker-rules.js";
import type { NodeAlarm } from "../plan/alarms.js";
import type { TopicPermissionOf } from "../plan/topic-rights.js";

export const EXCHANGE_COLUMNS = "name,vhost,type,durable,auto_delete,internal,arguments";
// With stats off, 3.x still reports the mirror fields; message totals cost twice the time of the
// whole listing, so they are read only when a plan needs them (see readMessageCounts).
export const QUEUE_COLUMNS = "name,vhost,type,durable,auto_delete,exclusive,arguments,node,state,policy,slave_nodes,synchronised_slave_nodes,members,online";
export const BINDING_COLUMNS = "source,vhost,destination,destination_type,routing_key,arguments,properties_key";
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
/** The cluster's nodes with the rabbit application's version: the read lists them, and identify() compares them. */
export const NODES_PATH = "/api/nodes?columns=name,running,applications";

export function listingPaths(vhost: string): { nodes: string; exchanges: string; queues: string; bindings: string; policies: string; operatorPolicies: string } {
  const v = vh(vhost);
  return {
    nodes: NODES_PATH,
    exchanges: `/api/exchanges/${v}?disable_stats=true&columns=${EXCHANGE_COLUMNS}&${UNSORTED}`,
    queues: `/api/queues/${v}?disable_stats=true&columns=${QUEUE_COLUMNS}&${UNSORTED}`,
    bindings: `/api/bindings/${v}?columns=${BINDING_COLUMNS}&${UNSORTED}`,
    policies: `/api/policies/${v}`,
    operatorPolicies: `/api/operator-policies/${v}`,
  };
}

const LISTING = { listing: true } as const;

interface ApiNode {
  name: string;
  running: boolean;
  applications?: { name: string; version: string }[];
}

/** `users`: also read the broker's users and the vhost's permissions (the file manages users, or import writes them). */
export async function readCluster(client: ManagementClient, target: ClusterTarget, users = false, again = true): Promise<ActualCluster> {
  const v = vh(target.amqp.vhost);
  const paths = listingPaths(target.amqp.vhost);
  const none = Promise.resolve(undefined);
  const [nodes, exchanges, queues, bindings, policies, operatorPolicies, userList, permissions, topicPermissions, allPermissions, allTopicPermissions, userLimits] = await Promise.all([
    // Which nodes run decides where mirrors must be, and the rabbit application gives the
    // version (cheaper than /api/overview). Only monitoring and administrator users may list
    // nodes; for others the version comes from the overview and the mirror check is skipped.
    client.list<ApiNode>(paths.nodes, [401, 403], {}, { check: nodeItem, of: "nodes" }),
    // A missing vhost answers 404 here: that is how topo learns it must create it. Each item
    // must be of the kind and the vhost asked for (broker/answers.ts).
    client.list<ApiExchange>(paths.exchanges, [404], LISTING, { check: exchangeItem(target.amqp.vhost), of: `exchanges of vhost ${target.amqp.vhost}` }),
    client.list<ApiQueue>(paths.queues, [404], LISTING, { check: queueItem(target.amqp.vhost), of: `queues of vhost ${target.amqp.vhost}` }),
    client.list<ApiBinding>(paths.bindings, [404], LISTING, { check: bindingItem(target.amqp.vhost), of: `bindings of vhost ${target.amqp.vhost}` }),
    client.list<ApiPolicy>(paths.policies, [404], {}, { check: policyItem(target.amqp.vhost), of: `policies of vhost ${target.amqp.vhost}` }),
    // Operator policies cap a queue's length, bytes, TTL and expiry whatever its arguments say
    // (the lowest value wins). A monitoring user with rights on the vhost may read them (3.10.8,
    // 4.0.5); for a user who may not, they stay unknown.
    client.list<ApiPolicy>(paths.operatorPolicies, [401, 403, 404], {}, { check: policyItem(target.amqp.vhost), of: `operator policies of vhost ${target.amqp.vhost}` }),
    // Users, and the vhost's permissions: only administrators may list them. For anyone else
    // (a monitoring user running plan) users are not compared, and plan says so.
    users ? client.list<ApiUser>(`/api/users?columns=${USER_COLUMNS}`, [401, 403], {}, { check: userItem, of: "users" }) : none,
    users ? client.list<ApiPermission>(`/api/vhosts/${v}/permissions`, [401, 403, 404], {}, { check: permissionItem(target.amqp.vhost), of: `permissions of vhost ${target.amqp.vhost}` }) : none,
    users ? readVhostTopicPermissions(client, target.amqp.vhost) : none,
    // Which vhosts each user may use: a marked user with rights elsewhere is another file's.
    users ? client.list<{ user: string; vhost: string }>(`/api/permissions?columns=user,vhost`, [401, 403], {}, { check: userVhostItem, of: "permissions" }) : none,
    // And topic permissions: a marked user whose only rights elsewhere were topic permissions was
    // deleted, and those with it (an apply writes a user's topic permissions before its
    // permissions, so another file's user part-way through its apply looks so too).
    users ? client.list<{ user: string; vhost: string }>(`/api/topic-permissions?columns=user,vhost`, [401, 403, 404], {}, { check: userVhostItem, of: "topic permissions" }) : none,
    // Users' limits (rabbitmqctl set_user_limits): max-connections 0 keeps a worker from logging
    // in. A broker without the endpoint (before 3.8) has none to show.
    users ? client.list<ApiUserLimits>(`/api/user-limits`, [401, 403, 404]) : none,
  ]);
  let version = nodes?.flatMap((n) => n.applications ?? []).find((a) => a.name === "rabbit")?.version;
  version ??= (await client.get<{ rabbitmq_version?: string }>(`/api/overview?columns=rabbitmq_version`)).rabbitmq_version;
  // Every check that depends on the version (mirroring on 3.x, queue types on 4.x) would be skipped
  // in silence without it.
  if (typeof version !== "string" || !/^\d+\.\d+/.test(version)) throw client.notTheBrokers("GET", `/api/overview`, `it does not say which RabbitMQ version it is (rabbitmq_version)`);
  // A running cluster has a node; an empty list is no answer about them.
  if (nodes && nodes.length === 0) throw client.notTheBrokers("GET", paths.nodes, `it lists no node`);
  const exists = exchanges !== undefined;
  // Every vhost has the default exchange: a listing without it is not all of the vhost's.
  if (exchanges && !exchanges.some((e) => e.name === "")) throw client.notTheBrokers("GET", paths.exchanges, `it lacks the default exchange every vhost has`);
  // The vhost looks missing: a proxy that decodes %2F in paths ("a/b", and "/") makes RabbitMQ
  // answer 404 for a vhost that exists, and apply would then create another. The list of vhosts
  // names none in its path, so it says whether the vhost is there.
  /** The management user's tags, where the read needed them: what plan asks next for a plan that writes, not asked twice. */
  let managementTags: string[] | undefined;
  if (!exists) {
    // RabbitMQ 4.3 answers 404, as for no such vhost, to a management user without permissions on
    // it (4.0.5 and 3.10 answer 401), and lists it in /api/vhosts only to a monitoring user: plan
    // said "+ create vhost" of one that exists, or blamed a proxy. An administrator sees every
    // vhost; for anyone else the AMQP user's connection.open says whether it exists.
    // 4.1 and 4.2 are not measured: they are asked as 4.3 is (where the vhost is missing, the
    // AMQP user's open says so, and the read goes on).
    if (atLeast(version, 4, 1)) {
      managementTags = await readOwnTags(client).catch(() => undefined);
      const unseen = await unseenVhost(target, managementTags);
      if (unseen) throw unseen;
    }
    if (await vhostListed(client, target.amqp.vhost)) {
      // Or the vhost was created between the two requests (another apply creating it): then its
      // exchanges answer now, and the read starts again (a saved plan applied beside another
      // was refused as read through a proxy).
      if (again && (await client.list(paths.exchanges, [404])) !== undefined) return readCluster(client, target, users, false);
      throw client.notTheBrokers(
        "GET",
        paths.exchanges,
        `404 for vhost ${target.amqp.vhost}, which /api/vhosts lists: something between topo and RabbitMQ changes the path (a proxy that decodes %2F), and topo cannot read the vhost through it`,
      );
    }
  }
  // The vhost's listings answer alike: all of them, or 404 for all (it does not exist). A mix means
  // it was created or deleted while topo read it, and half a vhost is no state to plan from.
  const listed = { exchanges, queues, bindings, policies };
  const mixed = Object.entries(listed).filter(([, l]) => (l !== undefined) !== exists);
  if (mixed.length) {
    throw new BrokerError(
      target.name,
      `vhost ${target.amqp.vhost}: ${mixed.map(([k]) => k).join(", ")} ${exists ? "answered 404 (no such vhost) where the exchanges were listed" : "were listed where the exchanges answered 404 (no such vhost)"}: it was created or deleted while topo read it`,
      { hints: ["run the command again once whatever creates or deletes that vhost has finished"], code: "broker_refused" },
    );
  }
  const agreed = exists ? await policiesAgreed(client, target, paths, queues ?? [], policies ?? []) : { queues, policies };
  const actual = actualFrom({
    version: version ?? "",
    nodes: (nodes ?? []).filter((n) => n.running).map((n) => n.name),
    downNodes: (nodes ?? []).filter((n) => !n.running).map((n) => n.name),
    vhost: exists ? target.amqp.vhost : undefined,
    exchanges: exchanges ?? [],
    queues: exists ? (agreed.queues ?? []) : [],
    bindings: exists ? (bindings ?? []) : [],
    policies: exists ? (agreed.policies ?? []) : [],
    operatorPolicies: exists ? operatorPolicies : [],
    operatorPoliciesUnreadable: !exists || operatorPolicies ? undefined : `the management user ${target.management.username} could not read the vhost's operator policies (RabbitMQ shows them to monitoring and administrator users with permissions on the vhost)`,
    users: userList,
    usersUnreadable: userList || !users ? undefined : `the management user ${target.management.username} may not list users (it needs the administrator tag)`,
    nodesUnreadable: nodes ? undefined : `the management user ${target.management.username} may not list the cluster's nodes (it needs the monitoring tag)`,
    permissions: exists ? (permissions ?? []) : [],
    topicPermissions: exists ? (topicPermissions ?? []) : [],
    allPermissions: allPermissions && [...allPermissions, ...(allTopicPermissions ?? [])],
    userLimits,
  });
  if (managementTags) actual.managementTags = managementTags;
  return actual;
}

/** How often, and how long apart, the queues and policies are read again while they disagree. */
const POLICY_REREADS = 3;
const POLICY_REREAD_MS = 2_500;

/**
 * The queues and policies of one read, once they agree: every policy a queue's listing names is
 * in the vhost's policy list. Where one is not, the plan would judge the queue by the policies
 * listed (none that limits it) and say "No changes." over a policy that caps it, which is what a
 * cache or proxy that answers the policies from before does. A policy added or deleted between
 * the two requests disagrees too (RabbitMQ 3.10 names a queue's policy in its listing as soon as
 * the policy is set or gone, measured): both are read again a few times, and if they still
 * disagree the plan stops.
 */
async function policiesAgreed(
  client: ManagementClient,
  target: ClusterTarget,
  paths: ReturnType<typeof listingPaths>,
  queues: ApiQueue[],
  policies: ApiPolicy[],
): Promise<{ queues: ApiQueue[]; policies: ApiPolicy[] }> {
  let unlisted = policiesUnlisted(queues, policies);
  for (let i = 0; i < POLICY_REREADS && unlisted.size > 0; i++) {
    await sleep(POLICY_REREAD_MS);
    [queues, policies] = await Promise.all([
      client.list<ApiQueue>(paths.queues, [], LISTING, { check: queueItem(target.amqp.vhost), of: `queues of vhost ${target.amqp.vhost}` }).then((l) => l ?? []),
      client.list<ApiPolicy>(paths.policies, [], {}, { check: policyItem(target.amqp.vhost), of: `policies of vhost ${target.amqp.vhost}` }).then((l) => l ?? []),
    ]);
    unlisted = policiesUnlisted(queues, policies);
  }
  const first = [...unlisted][0];
  if (!first) return { queues, policies };
  const [queue, policy] = first;
  throw new BrokerError(
    target.name,
    redactText(
      `vhost ${target.amqp.vhost}: the broker's answers disagree: GET ${paths.queues.split("?")[0]} says policy ${JSON.stringify(policy)} applies to queue ${queue}${unlisted.size > 1 ? ` (and ${plural(unlisted.size - 1, "more queue")} name policies that are not listed)` : ""}, and GET ${paths.policies} lists no policy of that name, after ${(POLICY_REREADS * POLICY_REREAD_MS) / 1000} s of reading both again: topo cannot tell what limits the queue`,
    ),
    {
      code: "broker_unreachable",
      object: `queue ${queue}`,
      hints: [
        `rabbitmqctl list_policies -p ${shellWord(target.amqp.vhost)} shows the vhost's policies: if it lists ${JSON.stringify(policy)}, a cache or proxy in between answers with stale data, and ${placesOf(target).management} must reach RabbitMQ's management API itself; if policies were being changed, run the command again once they are done`,
      ],
    },
  );
}

/**
 * The operator policy the broker applies to each queue of `queues`, into the facts, as the
 * vhost's queue listing with statistics names it (one request): the listing with statistics off,
 * which the read makes, names a queue's policy but not its operator policy. Read only where the
 * patterns cannot tell (plan/policy-limits.ts operatorPoliciesUnsure), as statistics cost the
 * broker more to list. They are seconds behind: a queue they name no operator policy for keeps
 * what the patterns say.
 */
export async function readOperatorPolicies(client: ManagementClient, target: ClusterTarget, actual: ActualCluster, queues: readonly string[]): Promise<void> {
  const wanted = new Set(queues);
  const path = `/api/queues/${vh(target.amqp.vhost)}?columns=name,vhost,operator_policy&${UNSORTED}`;
  const listed = await client.list<{ name: string; operator_policy?: string | null }>(path, [404], LISTING, { check: queueOperatorPolicyItem(target.amqp.vhost), of: `queues of vhost ${target.amqp.vhost}` });
  for (const q of listed ?? []) {
    if (wanted.has(q.name) && typeof q.operator_policy === "string" && q.operator_policy) (actual.queueFacts[q.name] ??= {}).operatorPolicy = q.operator_policy;
  }
}

/**
 * What the broker permits beyond its version: on RabbitMQ 4, its deprecated features and their
 * phases (one request). 3.x has no deprecated features, and a user who may not read the list
 * gets the version's defaults. The list gives each feature's default phase; a rabbitmq.conf
 * override (deprecated_features.permit.X) shows only in the `state` 4.3.6 adds (4.0.5 has none).
 */
export async function readPermits(client: ManagementClient, version: string): Promise<BrokerPermits> {
  if (!atLeast(version, 4, 0)) return permitsOf(version);
  const list = await client.getOptional<{ name: string; deprecation_phase?: string; state?: string }[]>(`/api/deprecated-features`, [401, 403, 404]);
  return permitsOf(version, Array.isArray(list) ? list : undefined);
}

/**
 * The AMQP user's max-channels (rabbitmqctl set_user_limits), when the management user may read
 * it (an administrator any user's, a user its own); undefined without one.
 */
export async function readUserMaxChannels(client: ManagementClient, user: string): Promise<number | undefined> {
  const limits = await client.getOptional<{ value?: Record<string, number> }[]>(`/api/user-limits/${encodeURIComponent(user)}`, [401, 403, 404]).catch(() => undefined);
  const max = Array.isArray(limits) ? limits[0]?.value?.["max-channels"] : undefined;
  return typeof max === "number" ? max : undefined;
}

/**
 * The AMQP user's topic permissions in the vhost, when the management user may read them (an
 * administrator); undefined otherwise.
 */
export async function readTopicPermissions(client: ManagementClient, vhost: string, user: string): Promise<TopicPermissionOf[] | undefined> {
  const list = await client.getOptional<TopicPermissionOf[]>(`/api/topic-permissions/${vh(vhost)}/${encodeURIComponent(user)}`, [401, 403, 404]);
  return Array.isArray(list) ? list.map((p) => ({ exchange: p.exchange, write: p.write, read: p.read })) : undefined;
}

/**
 * Every user's topic permissions in the vhost, when the management user may read them (an
 * administrator) and the vhost exists; undefined otherwise.
 */
export async function readVhostTopicPermissions(client: ManagementClient, vhost: string): Promise<KeptTopicPermission[] | undefined> {
  const list = await client.list<ApiTopicPermission>(`/api/vhosts/${vh(vhost)}/topic-permissions`, [401, 403, 404], {}, { check: topicPermissionItem(vhost), of: `topic permissions of vhost ${vhost}` });
  return list?.map((p) => ({ user: p.user, exchange: p.exchange, write: p.write, read: p.read }));
}

/**
 * The memory and disk alarms the cluster's nodes have now. The broker's own alarm list (GET
 * /api/health/checks/alarms: 200 "ok", or 503 naming each node's alarms) says which; the nodes'
 * figures (GET /api/nodes: a monitoring or administrator user may read it) are statistics, seconds
 * behind either way: an alarm just cleared still showed (apply refused for about 5 s after
 * rabbitmq-diagnostics alarms said none), and one just raised did not (disk_free_alarm false for
 * 4.7 s: apply unbound a queue, then stopped at its first move). Where the health check cannot be
 * read, the figures alone; where neither can, none is known, and apply finds out by publishing.
 */
export async function readAlarms(client: ManagementClient): Promise<NodeAlarm[]> {
  type ApiNode = { name: string; mem_alarm?: boolean; disk_free_alarm?: boolean; mem_used?: number; mem_limit?: number; disk_free?: number; disk_free_limit?: number };
  const [nodes, now] = await Promise.all([
    client.getOptional<ApiNode[]>(`/api/nodes?columns=name,mem_alarm,disk_free_alarm,mem_used,mem_limit,disk_free,disk_free_limit`, [401, 403, 404]),
    client.request("GET", "/api/health/checks/alarms", undefined, [401, 403, 404, 503], { attempts: 1 }).catch(() => undefined),
  ]);
  const figures = Array.isArray(nodes) ? nodes : [];
  const fromNodes = figures.flatMap((n): NodeAlarm[] => [
    ...(n.disk_free_alarm === true ? [{ node: n.name, kind: "disk" as const, value: n.disk_free, limit: n.disk_free_limit }] : []),
    ...(n.mem_alarm === true ? [{ node: n.name, kind: "memory" as const, value: n.mem_used, limit: n.mem_limit }] : []),
  ]);
  const body = now?.body as { status?: unknown; alarms?: unknown } | undefined;
  if (now?.status === 200 && body?.status === "ok") return [];
  if (now?.status !== 503 || !Array.isArray(body?.alarms)) return fromNodes;
  const listed = body.alarms.flatMap((a: unknown): NodeAlarm[] => {
    const { node, resource } = (typeof a === "object" && a !== null ? a : {}) as { node?: unknown; resource?: unknown };
    const kind = resource === "disk space" || resource === "disk" ? "disk" : resource === "memory" ? "memory" : undefined;
    if (typeof node !== "string" || !kind) return [];
    const n = figures.find((f) => f.name === node);
    return [{ node, kind, value: kind === "disk" ? n?.disk_free : n?.mem_used, limit: kind === "disk" ? n?.disk_free_limit : n?.mem_limit }];
  });
  // A list of alarms topo cannot read (a resource named otherwise in another version) is still an
  // alarm: the flags say which, as before.
  return listed.length ? listed : fromNodes;
}

/**
 * The vhost exists, though its listings answered 404 to a management user who is no administrator
 * (RabbitMQ 4.3 with no permissions on it): the error that says so, naming the fix; undefined
 * where it does not exist, or the management user sees every vhost, or nothing can tell.
 */
async function unseenVhost(target: ClusterTarget, tags: string[] | undefined): Promise<BrokerError | undefined> {
  if (!tags || tags.includes("administrator")) return undefined;
  const found = await vhostFoundOverAmqp(target, { insecure: target.tls.insecure });
  if (found !== "opens" && found !== "refused") return undefined;
  const user = target.management.username;
  const amqpUser = target.amqp.username;
  return new BrokerError(
    target.name,
    `vhost ${target.amqp.vhost} exists (the AMQP user ${amqpUser} ${found === "opens" ? "opened it" : "is refused there, which RabbitMQ says only of a vhost that exists"}), but its listings answer 404 to the management user ${user} (tags ${tags.join(", ") || "none"}): RabbitMQ 4.3 answers so to a user without permissions on the vhost, so topo cannot read it, and would otherwise have planned to create it`,
    {
      hints: [
        noRightsHint(user, target.amqp.vhost),
        "or read it as an administrator",
        // A proxy that decodes %2F answers 404 for such a name whoever asks (clusters.management must reach RabbitMQ itself).
        ...(target.amqp.vhost.includes("/") ? [`if that user has permissions there: something between topo and RabbitMQ may decode the %2F of this vhost's name; point clusters.${target.name}.management at RabbitMQ's management API itself`] : []),
      ],
      code: "permission_denied",
      status: 404,
    },
  );
}

/**
 * Whether /api/vhosts lists the vhost: the list names none in its path (a proxy that decodes %2F
 * cannot change it), and monitoring users may read it (GET /api/vhosts/NAME answers
 * administrators only on 4.x).
 */
export async function vhostListed(client: ManagementClient, vhost: string): Promise<boolean> {
  const all = await client.list<{ name: string }>(`/api/vhosts?columns=name`);
  return all?.some((x) => x.name === vhost) ?? false;
}

/**
 * The vhost's default queue type (RabbitMQ 3.11+): what a durable queue declared without
 * x-queue-type becomes there. An existing vhost reports its own (or the broker's, when it has
 * none); a vhost apply will create takes the broker's, from the overview. "undefined" (a broker
 * default that does not name a type) counts as none.
 */
export async function readDefaultQueueType(client: ManagementClient, target: ClusterTarget, vhostExists: boolean): Promise<string | undefined> {
  // From the listing, not GET /api/vhosts/NAME: RabbitMQ 4.0.5 and 4.3.6 answer that one to
  // administrators only ("Not administrator user"), and so refused the monitoring user a drift
  // check runs as; the listing answers monitoring and management users alike (measured).
  const own = vhostExists
    ? (await client.get<{ name: string; default_queue_type?: string }[]>(`/api/vhosts?columns=name,default_queue_type`)).find((v) => v.name === target.amqp.vhost)
    : undefined;
  const answer = own ?? (await client.get<{ default_queue_type?: string }>(`/api/overview?columns=default_queue_type`));
  const type = answer.default_queue_type;
  return type && type !== "undefined" ? type : undefined;
}

/**
 * The vhost's limits (max-queues, max-connections), when it has any (monitoring and management
 * users may read them); read only for a plan that writes to a vhost that exists.
 */
export async function readVhostLimits(client: ManagementClient, target: ClusterTarget): Promise<Record<string, number> | undefined> {
  const limits = await client.getOptional<{ value?: Record<string, unknown> }[]>(`/api/vhost-limits/${vh(target.amqp.vhost)}`, [401, 403, 404]);
  const value = Array.isArray(limits) ? limits[0]?.value : undefined;
  if (typeof value !== "object" || value === null) return undefined;
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, number] => typeof e[1] === "number"));
}

/**
 * How many connections each of `users` has open on the broker now (any vhost: RabbitMQ closes
 * them all when it deletes the user); undefined when the management user may not list them.
 */
export async function readUserConnections(client: ManagementClient, users: readonly string[]): Promise<Map<string, number> | undefined> {
  const list = await client.list<{ user?: unknown }>(`/api/connections?columns=user`, [401, 403, 404]).catch(() => undefined);
  if (!list) return undefined;
  const wanted = new Set(users);
  const counts = new Map<string, number>();
  for (const c of list) if (typeof c.user === "string" && wanted.has(c.user)) counts.set(c.user, (counts.get(c.user) ?? 0) + 1);
  return counts;
}

/**
 * The management user's tags (GET /api/whoami, which every user of the management API may read);
 * undefined when it cannot be read.
 */
export async function readOwnTags(client: ManagementClient): Promise<string[] | undefined> {
  const me = await client.getOptional<ApiUser>(`/api/whoami`, [401, 403, 404]);
  return me ? tagsOf(me.tags) : undefined;
}

/**
 * A user's permissions on the vhost, as an administrator reads them: "none" where it has none
 * there, undefined where the management user may not read them (only administrators may).
 */
export async function readVhostPermission(client: ManagementClient, target: ClusterTarget, user: string): Promise<{ configure: string; write: string; read: string } | "none" | undefined> {
  const r = await client.request("GET", `/api/permissions/${vh(target.amqp.vhost)}/${encodeURIComponent(user)}`, undefined, [401, 403, 404]);
  if (r.status === 404) return "none";
  const p = r.body as { configure?: unknown; write?: unknown; read?: unknown } | undefined;
  if (r.status !== 200 || typeof p?.configure !== "string" || typeof p.write !== "string" || typeof p.read !== "string") return undefined;
  return { configure: p.configure, write: p.write, read: p.read };
}

/**
 * Message totals of every queue (one request), for plans that delete or replace queues, with the
 * unacknowledged ones apart: a passive declare counts ready messages only, so these statistics
 * are all that sees what a basic.get without ack, or a consumer cancelled on a channel still
 * open, holds, which a delete (if-empty and if-unused included) takes with the queue.
 */
export async function readMessageCounts(client: ManagementClient, target: ClusterTarget, actual: ActualCluster): Promise<void> {
  const { path, qs } = await listTotals(client, target);
  // Each queue the vhost's listing holds is in this one too: one missing would be shown as a
  // queue without a count, like an empty one, under a delete that takes what it holds. Not those
  // that go away by themselves between two reads (auto-delete, exclusive, x-expires: a Celery
  // client's reply queue); the queues topo deletes or replaces are none of them.
  const counted = new Set((qs ?? []).map((q) => q.name));
  const lasting = (r: Resource): r is Queue => r.kind === "queue" && !r.autoDelete && !r.exclusive && r.arguments["x-expires"] === undefined;
  const missing = actual.resources.find((r) => lasting(r) && !counted.has(r.name));
  if (missing?.kind === "queue") {
    throw client.notTheBrokers("GET", path, `it lacks queue ${missing.name}, which the vhost's queue listing holds (deleted while topo read the vhost, or an answer cut short or another's); run the command again`);
  }
  for (const q of qs ?? []) {
    const facts = (actual.queueFacts[q.name] ??= {});
    facts.messages = q.messages;
    facts.unacked = q.messages_unacknowledged;
  }
  actual.messagesCounted = true;
}

type Totals = { name: string; messages?: number; messages_unacknowledged?: number };

/**
 * The vhost's queues with their totals (enable_queue_totals), which the broker asks of each
 * queue's own process (rabbit_amqqueue:collect_info_all), not of the statistics: a classic
 * queue's are its counts at that moment.
 */
async function listTotals(client: ManagementClient, target: ClusterTarget): Promise<{ path: string; qs: Totals[] | undefined }> {
  const path = `/api/queues/${vh(target.amqp.vhost)}?disable_stats=true&enable_queue_totals=true&columns=name,vhost,messages,messages_unacknowledged&${UNSORTED}`;
  const qs = await client.list<Totals>(path, [404], {}, { check: queueCountItem(target.amqp.vhost), of: `queues of vhost ${target.amqp.vhost}` });
  return { path, qs };
}

/** What a classic queue holds now, by its own process: all its messages, and those fetched and not acknowledged. */
export interface HeldNow {
  messages: number;
  unacked: number;
}

/**
 * What the vhost's classic queues hold now, ready and unacknowledged, as each queue's process
 * counts it when asked. The statistics are no such count: a queue emits them every 5 s, the
 * management database takes them in up to 5 s later, so statistics that differ from those read a
 * moment before can still predate what a client fetched (measured on 3.10.8: 3 published and
 * fetched, the listing said 3 unacknowledged at once, the statistics 4 s later; an idle queue's
 * statistics changed, counts 0 and reductions 7,597 to 10,106, a second before a publish, and an
 * apply that took such statistics for ones after the fetch deleted 3 fetched messages).
 * A quorum queue's totals come from its last tick (4 s behind on 3.10.8), so callers take these
 * for classic queues only. A queue the listing holds without counts (its process did not answer)
 * maps to undefined: nobody can say what it holds. A queue not in the map is not listed (gone).
 */
export async function heldNow(client: ManagementClient, target: ClusterTarget): Promise<Map<string, HeldNow | undefined>> {
  const { qs } = await listTotals(client, target);
  const out = new Map<string, HeldNow | undefined>();
  for (const q of qs ?? []) {
    const { messages, messages_unacknowledged: unacked } = q;
    out.set(q.name, typeof messages === "number" && typeof unacked === "number" ? { messages, unacked } : undefined);
  }
  return out;
}

/**
 * What a classic queue holds unacknowledged now (heldNow), for many callers at once (a replace or
 * a delete for each queue, several under way). By default each gets a listing begun after it
 * asked, and callers that ask while one is under way share the next: a replace counts what is
 * held after its move. With `reuseMs`, a caller also takes the last listing if it began at most
 * that long before it asked (or four times as long as the last listing took: a vhost of 25,000
 * queues takes seconds to list, and deletes that each waited for a listing of their own went 64
 * at a time per listing). `unacked` undefined: the broker gave no count; `listed` false: the
 * queue is gone.
 */
export function unackedCounter(client: ManagementClient, target: ClusterTarget, reuseMs = 0): (queue: string) => Promise<{ listed: boolean; unacked?: number }> {
  type Listing = Promise<Map<string, HeldNow | undefined>>;
  // The listing callers join that begins once the one under way ends; the last one begun, and
  // how long the last one took.
  let waiting: Listing | undefined;
  let latest: { began: number; listing: Listing } | undefined;
  let took = 0;
  let under: Promise<unknown> = Promise.resolve();
  const begin = (): Listing => {
    const listing: Listing = under.then(async () => {
      waiting = undefined;
      const began = Date.now();
      latest = { began, listing };
      try {
        return await heldNow(client, target);
      } catch (e) {
        // A failed listing is no count for the callers after it.
        if (latest?.listing === listing) latest = undefined;
        throw e;
      } finally {
        took = Date.now() - began;
      }
    });
    under = listing.catch(() => undefined);
    return listing;
  };
  return async (queue) => {
    const asked = Date.now();
    const recent = reuseMs > 0 && latest !== undefined && asked - latest.began <= Math.max(reuseMs, 4 * took);
    const listing = recent && latest ? latest.listing : (waiting ??= begin());
    const held = await listing;
    return { listed: held.has(queue), unacked: held.get(queue)?.unacked };
  };
}

const STATS_COLUMNS = "name,messages,messages_ready,messages_unacknowledged,consumers,message_bytes,messages_dlx,messages_delayed";
/** What enable_queue_totals gives, statistics or none. */
const TOTALS_COLUMNS = "name,messages,messages_ready,messages_unacknowledged";

/**
 * What the queues a plan replaces hold: ready and unacknowledged messages, consumers and bytes.
 * One request per queue (a replace is rare, a listing with stats costs seconds at 5,000 queues).
 * The figures are the broker's statistics, up to 5 s old; readLiveCounts corrects them.
 */
export async function readQueueStats(client: ManagementClient, target: ClusterTarget, actual: ActualCluster, names: readonly string[]): Promise<void> {
  const quorum = queuesOfType(actual, "quorum");
  await Promise.all(
    names.map(async (name) => {
      const stats = await queueStats(client, target, name, quorum.has(name));
      if (stats) Object.assign((actual.queueFacts[name] ??= {}), stats);
    }),
  );
}

/**
 * One queue's statistics; undefined right after a declare, before they are there. A broker that
 * denies management_metrics_collection (RabbitMQ 4) has none at all, but still gives the queue's
 * totals (ready and unacknowledged, with no consumers or bytes) to enable_queue_totals (measured on
 * 4.3.6): without them, what a client fetched and holds unacknowledged went unseen, and a replace
 * deleted it with the old queue.
 */
async function queueStats(client: ManagementClient, target: ClusterTarget, name: string, quorum: boolean): Promise<QueueFacts | undefined> {
  const path = `/api/queues/${vh(target.amqp.vhost)}/${encodeURIComponent(name)}`;
  let q = await client.getOptional<QueueStats>(`${path}?columns=${STATS_COLUMNS}`);
  const statistics = q?.messages !== undefined;
  if (q && !statistics) q = await client.getOptional<QueueStats>(`${path}?disable_stats=true&enable_queue_totals=true&columns=${TOTALS_COLUMNS}`);
  if (!q || q.messages === undefined) return undefined;
  const waiting = quorum ? deadLettersIn(q) : 0;
  // Which of them are retries RabbitMQ 4.3 delays, not dead letters: its statistics say
  // (messages_delayed; measured on 4.3.6: 3 requeued under a 120 s delay, messages 5, ready 2,
  // messages_delayed 3, messages_dlx 0), its totals do not, and a RabbitMQ before 4.3 delays none.
  const delayed = statistics ? Math.min(waiting, q.messages_delayed ?? 0) : undefined;
  return {
    // What is ready and unacknowledged: a quorum queue's total counts its waiting dead letters
    // too, which are kept apart (else a plan that could not count the queue live, as apply does,
    // would add them twice).
    messages: quorum ? q.messages - notReadyNorUnacked(q) : q.messages,
    ready: q.messages_ready ?? q.messages,
    unacked: q.messages_unacknowledged ?? 0,
    consumers: q.consumers,
    bytes: q.message_bytes,
    ...(waiting > 0 ? { deadLettersWaiting: waiting, ...(delayed !== undefined ? { delayedRetries: delayed } : {}) } : {}),
  };
}

type QueueStats = { messages?: number; messages_ready?: number; messages_unacknowledged?: number; consumers?: number; message_bytes?: number; messages_dlx?: number; messages_delayed?: number };

/**
 * A quorum queue's at-least-once dead letters waiting for their target: neither ready nor
 * unacknowledged, so no passive declare or move counts them. Its `messages` does: the queue
 * reports its total (rabbit_fifo's messages_total, which adds them), ready and unacknowledged
 * messages together, at one moment, to its statistics and its totals alike (so in the source of
 * 3.10.8, 4.0.5 and 4.3.5; measured on 3.10.8: 3 waiting, messages 3, 0 ready, 0 unacknowledged).
 * The statistics' messages_dlx is no count to rely on alone: RabbitMQ 3.10 asks it of the queue
 * apart, and reports 0 when the queue does not answer in time (a busy broker: in CI, a test read 3,
 * and plan then showed the queue's delete as dropping nothing). The total counts as well the
 * retries RabbitMQ 4.3 delays (x-delayed-retry-type; its statistics' messages_delayed), which are
 * as far out of a move's and a passive declare's reach, and as dropped by a delete: they are in
 * this count, and QueueFacts.delayedRetries says how many of it they are.
 */
function deadLettersIn(q: QueueStats): number {
  return Math.max((q.messages_dlx ?? 0) + (q.messages_delayed ?? 0), notReadyNorUnacked(q));
}

/** What a queue's total counts beside its ready and unacknowledged messages (a quorum queue's waiting dead letters). */
function notReadyNorUnacked(q: QueueStats): number {
  return Math.max(0, (q.messages ?? 0) - (q.messages_ready ?? q.messages ?? 0) - (q.messages_unacknowledged ?? 0));
}

/**
 * What quorum queue `name` holds in dead letters waiting for their target (deadLettersIn), by its
 * report read again until it is there (a queue whose leader has not reported yet has none), within
 * a bound; undefined past it.
 */
export async function deadLettersNow(report: QuorumReport, name: string): Promise<number | undefined> {
  let last: QuorumReported | undefined;
  await untilFresh(async () => (last = await report(name)) !== undefined);
  return last?.beside;
}

/**
 * What a quorum queue counts of itself at its last tick (the statistics, or the totals where the
 * broker keeps none): its ready and unacknowledged messages, and its consumers where the figures
 * say (the totals do not). undefined: no report yet.
 */
export type QuorumReport = (queue: string) => Promise<QuorumReported | undefined>;

export interface QuorumReported {
  /** Ready and unacknowledged messages: what a passive declare counts as ready or as consumers' (a quorum queue counts a basic.get holder as a consumer). */
  held: number;
  consumers: number;
  /**
   * Messages neither ready nor unacknowledged, which no passive declare counts and a delete drops:
   * at-least-once dead letters waiting for their target (deadLettersIn), and on RabbitMQ 4.3 the
   * retries it delays (x-delayed-retry-type; measured on 4.3.6: 3 requeued under a 120 s delay,
   * passive declare 0 messages, totals 3 messages, 0 ready, 0 unacknowledged, and a delete-ok
   * that counted 0 took them).
   */
  beside: number;
}

/** The QuorumReport of the target's queues (queueStats, one request or two per call). */
export function quorumReport(client: ManagementClient, target: ClusterTarget): QuorumReport {
  return async (queue) => {
    const facts = await queueStats(client, target, queue, true);
    if (!facts) return undefined;
    // A quorum queue's facts hold its dead letters apart from its messages (queueStats).
    return { held: facts.messages ?? 0, consumers: facts.consumers ?? 0, beside: facts.deadLettersWaiting ?? 0 };
  };
}

/**
 * A quorum queue's passive declare, not taken at its word when it says the queue is empty and
 * unused: RabbitMQ answers 0 messages and 0 consumers also when the queue's leader did not answer
 * within 250 ms, or it has none (rabbit_quorum_queue:stat/1 maps the timeout or the error to
 * {ok, 0, 0}, in the source of 3.10.8, 4.0.5 and 4.3.5), as a busy broker does. Through a proxy
 * that answered so, apply deleted a quorum queue holding 3 messages without --allow-data-loss, and
 * plan showed the delete as dropping nothing. Such an answer stands once the queue's own report
 * (QuorumReport, from its tick, which asks no one) counts nothing either, or a passive declare
 * counts something after all. The report lags the queue by up to 5 s (10 s through 3.10's
 * statistics), so a queue emptied a moment ago is waited for, within a bound; past it, what the
 * report still counts is returned as `reported`, for the caller to take as held, and the report
 * read last as `last` (what no passive declare counts is its `beside`). No report yet
 * (a queue declared a moment ago, or RabbitMQ 4 before the queue's first tick, whose totals say
 * 0): the passive declare stands, as nothing else counts the queue.
 */
export async function quorumCount(check: () => Promise<LiveCount>, report: QuorumReport, queue: string, first?: LiveCount): Promise<LiveCount & { reported?: QuorumReported; last?: QuorumReported }> {
  let live = first ?? (await check());
  let last: QuorumReported | undefined;
  const idle = (c: LiveCount) => c.messageCount === 0 && c.consumerCount === 0;
  const disagrees = (r: QuorumReported | undefined) => r !== undefined && (r.held > 0 || r.consumers > 0);
  await untilFresh(async (again) => {
    if (again) live = await check();
    if (!idle(live)) return true;
    last = await report(queue);
    return !disagrees(last);
  });
  // The last report read, while the declare counts nothing (none read: the declare counted something).
  if (!idle(live) || !last) return live;
  return disagrees(last) ? { ...live, reported: last, last } : { ...live, last };
}

/** How long apply waits for statistics that caught up with the live counts (emitted every 5 s by default). */
const FRESH_STATS_MS = 15_000;
const FRESH_STATS_POLL_MS = 1_000;

export interface LiveCount {
  messageCount: number;
  consumerCount: number;
}

/** A queue's type as the live counts need it: a stream has no live count, a classic queue's process counts what it holds. */
interface QueueKind {
  stream: boolean;
  classic: boolean;
}

/**
 * Whether a queue's statistics may predate what its live count shows, so that their count of
 * unacknowledged messages cannot be trusted either way: no consumer is attached now, and the
 * statistics still count one, unacknowledged messages, or ready messages the queue no longer has.
 * Messages that left a queue with no consumer may be back in it (a worker's channel closed), acked,
 * or still held unacknowledged: a consumer cancelled on a channel still open (a worker's warm
 * shutdown keeps its reserved messages until it exits) or a basic.get without ack. The broker
 * deletes those with the queue, if-empty and if-unused included. The statistics count consumers
 * before unacknowledged messages (measured on 3.10: a worker's exit showed as 0 consumers with 4
 * unacknowledged, and 0 unacknowledged 1.6 s later), so no single figure says they caught up.
 */
function statsBehind(stats: QueueFacts, live: LiveCount, kind: QueueKind): boolean {
  // A classic queue's unacknowledged messages are counted by its process (countHeld): with no
  // consumer, its statistics are not waited for while they count what a client fetched (a
  // basic.get holder kept a replace's read waiting 15 s), only while they count more ready
  // messages than it has. (Fewer, while a publisher sends, would never catch up.)
  if (kind.classic && live.consumerCount === 0) return (stats.ready ?? 0) > live.messageCount;
  const { stream } = kind;
  // With a consumer attached, what it holds unacknowledged is counted by the statistics alone:
  // they count it as it is now only once they count the consumers and the ready messages the
  // passive declare counts (measured on 4.0.5: statistics from before a consumer took 3 of 5
  // messages counted 0 unacknowledged, and apply said the queue held 2).
  if (live.consumerCount > 0) return stats.consumers !== live.consumerCount || (!stream && stats.ready !== live.messageCount);
  return (stats.consumers ?? 0) > 0 || (stats.unacked ?? 0) > 0 || (!stream && (stats.ready ?? 0) > live.messageCount);
}

/**
 * The broker's counts now, from a passive declare: ready messages and consumers. Apply judges a
 * replace on these, not on statistics that lag by up to 5 s. The statistics (bytes, and a quorum
 * queue's unacknowledged messages) are read again until they caught up with the live count
 * (statsBehind), within a bound: past it their figure stands, and a replace that figure puts at
 * risk is refused. A classic queue's unacknowledged messages are then counted by its process
 * (heldNow).
 */
export async function readLiveCounts(
  session: AmqpSession,
  client: ManagementClient,
  target: ClusterTarget,
  actual: ActualCluster,
  queues: readonly { name: string; stream: boolean }[],
): Promise<void> {
  const types = queueTypes(actual);
  let todo = queues;
  await untilFresh(async (again) => {
    if (again) await readQueueStats(client, target, actual, todo.map((q) => q.name));
    // Without `each`, a failure is thrown: no count is an Error.
    todo = countsInto(actual, types, todo, (await passiveCounts(session, todo)) as (LiveCount | undefined)[]);
    return todo.length === 0;
  });
  // Past the bound, a consumer's unacknowledged messages have no count topo can trust: said so,
  // rather than a count of the ready ones that looks whole.
  for (const q of todo) unackedUnknown(actual, q.name);
  await countHeld(client, target, actual, types.classic, queues);
}

/**
 * The queues the read found classic (each one's process counts what it holds: heldNow) and
 * quorum (whose passive declare's 0 may be no answer: quorumCount), found once for all the queues
 * counted: looked for again for each one, a plan that deletes 4,000 queues of 5,000 services spent
 * 15 s of CPU on it.
 */
interface QueueTypes {
  classic: ReadonlySet<string>;
  quorum: ReadonlySet<string>;
}

function queueTypes(actual: ActualCluster): QueueTypes {
  return { classic: queuesOfType(actual, "classic"), quorum: queuesOfType(actual, "quorum") };
}

function queuesOfType(actual: ActualCluster, type: Queue["type"]): ReadonlySet<string> {
  return new Set(actual.resources.flatMap((r) => (r.kind === "queue" && r.type === type ? [r.name] : [])));
}

/**
 * Marks what the consumers of queue `name` hold unacknowledged as unknown, when it has consumers
 * and its statistics are behind them: its messages are then its ready ones, and more.
 */
function unackedUnknown(actual: ActualCluster, name: string): void {
  const facts = actual.queueFacts[name];
  if (facts && (facts.consumers ?? 0) > 0) Object.assign(facts, { unacked: 0, unackedUnknown: true, messages: facts.ready ?? 0 });
}

/**
 * What the classic ones of `queues` hold unacknowledged, by consumers or by a client that fetched
 * with basic.get a moment ago, into the facts, as each queue's process counts it (heldNow):
 * statistics that look caught up may predate it. After the passive declares (passiveCounts), so
 * what was fetched before them is counted.
 */
async function countHeld(client: ManagementClient, target: ClusterTarget, actual: ActualCluster, classic: ReadonlySet<string>, queues: readonly { name: string }[]): Promise<void> {
  const counted = queues.filter((q) => classic.has(q.name));
  if (counted.length === 0) return;
  const held = await heldNow(client, target);
  for (const q of counted) {
    const facts = actual.queueFacts[q.name];
    const now = held.get(q.name);
    if (!facts || !now) continue;
    delete facts.unackedUnknown;
    facts.unacked = now.unacked;
    facts.messages = (facts.ready ?? 0) + now.unacked;
  }
}

/**
 * The queues' ready messages and consumers as the broker counts them now (a passive declare each),
 * once, through a session `open` makes and this closes: for plan, whose statistics may lag. What is
 * held unacknowledged a classic queue's process counts (countHeld); a quorum queue's keeps its
 * statistics' count. A session that cannot be had leaves the statistics' figures: plan's login
 * check reports why.
 */
export async function peekLiveCounts(
  open: () => Promise<AmqpSession>,
  client: ManagementClient,
  target: ClusterTarget,
  actual: ActualCluster,
  queues: readonly { name: string; stream: boolean }[],
): Promise<void> {
  const session = await open().catch(() => undefined);
  if (!session) return;
  const types = queueTypes(actual);
  try {
    // A queue another client holds exclusive (405) or a refusal leaves its statistics' figures,
    // and the others are still counted (a passive declare needs no right).
    const counts = await passiveCounts(session, queues, { each: true });
    const counted = queues.filter((_, i) => !(counts[i] instanceof Error));
    const behind = countsInto(actual, types, counted, counts.filter((n) => !(n instanceof Error)) as (LiveCount | undefined)[]);
    // Plan does not wait for them: what the consumers of a quorum queue hold is unknown while
    // its statistics are behind (2 ready shown as all a queue held, whose client had fetched 3).
    for (const q of behind) unackedUnknown(actual, q.name);
  } finally {
    await session.close().catch(() => undefined);
  }
  await countHeld(client, target, actual, types.classic, queues);
}

/** `attempt` again, a poll interval apart, until it says the statistics caught up or `ms` have passed. */
async function untilFresh(attempt: (again: boolean) => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + FRESH_STATS_MS;
  for (let again = false; !(await attempt(again)) && Date.now() < deadline; again = true) await sleep(FRESH_STATS_POLL_MS);
}

/**
 * Passive declares at once per cluster, each on a channel of its own. A plan that deletes 4
 * services of 5 counts thousands of queues: one after another, on a channel opened and closed
 * for each, they took about 2.4 ms a queue.
 */
const COUNTERS = 8;

/**
 * The live count of each queue (undefined: the queue is gone, so it holds nothing), COUNTERS at a
 * time, within the channels the session may open (runLimited: after a failure nothing new starts,
 * the counts under way finish, and the first failure is thrown; with `each`, a queue's failure is
 * its count instead, and the others are still counted). A channel is kept for the next queue until
 * a refusal (404, 405, 403) closes it, the broker's doing; none goes back to the session's pool,
 * and those kept are closed at the end.
 */
async function passiveCounts(session: AmqpSession, queues: readonly { name: string }[], o: { each?: boolean } = {}): Promise<(LiveCount | undefined | Error)[]> {
  const counts: (LiveCount | undefined | Error)[] = new Array(queues.length);
  const kept: Channel[] = [];
  try {
    await runLimited([...queues.keys()], session.writers(COUNTERS), async (i) => {
      const name = (queues[i] as { name: string }).name;
      try {
        const ch = kept.pop() ?? (await session.channel());
        session.rpcs++;
        counts[i] = await ch.checkQueue(name);
        kept.push(ch);
      } catch (e) {
        // 404: the queue is gone, so it holds nothing.
        if ((e as { code?: number }).code === 404) return;
        const err = amqpError(session.cluster, `count messages of queue ${name}`, e as Error, session.lost);
        if (!o.each) throw err;
        counts[i] = err;
      }
    });
  } finally {
    await Promise.all(kept.map(closeChannel));
  }
  return counts;
}

/** Each queue's live count (`counts`, in the same order) into the facts; returns the queues whose statistics are behind them. */
function countsInto(
  actual: ActualCluster,
  { classic, quorum }: QueueTypes,
  queues: readonly { name: string; stream: boolean }[],
  counts: readonly (LiveCount | undefined)[],
): { name: string; stream: boolean }[] {
  const behind: { name: string; stream: boolean }[] = [];
  for (const [i, q] of queues.entries()) {
    const live = counts[i];
    const facts = (actual.queueFacts[q.name] ??= {});
    if (!live) {
      Object.assign(facts, { ready: 0, unacked: 0, messages: 0, consumers: 0, bytes: 0 });
      continue;
    }
    if (statsBehind(facts, live, { stream: q.stream, classic: classic.has(q.name) })) behind.push(q);
    // A quorum queue's 0 messages and 0 consumers is also the broker's answer when its leader did
    // not answer in time (quorumCount): statistics that count more stand until they catch up.
    if (quorum.has(q.name) && live.messageCount === 0 && live.consumerCount === 0 && ((facts.ready ?? 0) > 0 || (facts.unacked ?? 0) > 0 || (facts.consumers ?? 0) > 0)) {
      if (!behind.includes(q)) behind.push(q);
      continue;
    }
    facts.consumers = live.consumerCount;
    // A stream's passive declare always says 0 messages; its statistics are the only count.
    if (!q.stream) {
      const stats = facts.ready;
      facts.ready = live.messageCount;
      // Bytes have no live count. Statistics that counted other messages say nothing of these:
      // an average per message hid ten 100 KB messages behind ten small ones, and a byte limit
      // was judged met when it was not. So the bytes are unknown, and a byte limit cannot be judged.
      if (stats !== facts.ready) facts.bytes = facts.ready === 0 ? 0 : undefined;
    }
    facts.ready ??= 0;
    facts.unacked ??= 0;
    facts.messages = facts.ready + facts.unacked;
  }
  return behind;
}

/**
 * What a queue's consumers hold unacknowledged, by its statistics once they caught up with its live
 * count (statsBehind), within a bound, and whether they did: past it, their last figure is no
 * count of what a consumer attached now holds. undefined: no statistics yet.
 */
export async function unackedNow(client: ManagementClient, target: ClusterTarget, name: string, live: LiveCount): Promise<{ unacked?: number; fresh: boolean }> {
  let facts: QueueFacts | undefined;
  let fresh = false;
  await untilFresh(async () => {
    facts = await queueStats(client, target, name, true);
    fresh = facts !== undefined && !statsBehind(facts, live, { stream: false, classic: false });
    // No statistics yet (a queue declared a moment ago): with a consumer attached, they are the
    // only count of what it holds, so they are waited for.
    return fresh || (!facts && live.consumerCount === 0);
  });
  return { unacked: facts?.unacked, fresh };
}
