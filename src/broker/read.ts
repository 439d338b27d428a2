// Read one cluster's state through the management API: a constant number of requests whatever the
// number of services (never one request per object), stats off and only the columns topo uses.

import type { ActualCluster, ClusterTarget } from "../model.js";
import type { ManagementClient } from "./http.js";
import { vh } from "./http.js";
import type { ApiBinding, ApiExchange, ApiPolicy, ApiQueue } from "./state.js";
import { actualFrom } from "./state.js";

const EXCHANGE_COLUMNS = "name,type,durable,auto_delete,internal,arguments";
// With stats off, 3.x still reports the mirror fields; message totals cost twice the time of the
// whole listing, so they are read only when a plan needs them (see readMessageCounts).
const QUEUE_COLUMNS = "name,type,durable,auto_delete,exclusive,arguments,node,state,policy,slave_nodes,synchronised_slave_nodes";
const BINDING_COLUMNS = "source,destination,destination_type,routing_key,arguments";

interface ApiNode {
  name: string;
  running: boolean;
  applications?: { name: string; version: string }[];
}

export async function readCluster(client: ManagementClient, target: ClusterTarget): Promise<ActualCluster> {
  const v = vh(target.amqp.vhost);
  const [nodes, exchanges, queues, bindings, policies] = await Promise.all([
    // Which nodes run decides where mirrors must be, and the rabbit application gives the
    // version (cheaper than /api/overview). Only monitoring and administrator users may list
    // nodes; for others the version comes from the overview and the mirror check is skipped.
    client.getOptional<ApiNode[]>(`/api/nodes?columns=name,running,applications`, [401, 403]),
    // A missing vhost answers 404 here: that is how topo learns it must create it.
    client.getOptional<ApiExchange[]>(`/api/exchanges/${v}?disable_stats=true&columns=${EXCHANGE_COLUMNS}`),
    client.getOptional<ApiQueue[]>(`/api/queues/${v}?disable_stats=true&columns=${QUEUE_COLUMNS}`),
    client.getOptional<ApiBinding[]>(`/api/bindings/${v}?columns=${BINDING_COLUMNS}`),
    client.getOptional<ApiPolicy[]>(`/api/policies/${v}`),
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
  });
}

/** Message totals of every queue (one request), for plans that delete or replace queues. */
export async function readMessageCounts(client: ManagementClient, target: ClusterTarget, actual: ActualCluster): Promise<void> {
  const qs = await client.getOptional<{ name: string; messages?: number }[]>(
    `/api/queues/${vh(target.amqp.vhost)}?disable_stats=true&enable_queue_totals=true&columns=name,messages`,
  );
  for (const q of qs ?? []) {
    const facts = (actual.queueFacts[q.name] ??= {});
    facts.messages = q.messages;
  }
}
