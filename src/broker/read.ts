// Read one cluster's state through the management API: a constant number of requests whatever the
// number of services (never one request per object). Stats are off: they cost ten times the bytes
// and topo needs only message totals.

import type { ActualCluster, ClusterTarget } from "../model.js";
import type { ManagementClient } from "./http.js";
import { vh } from "./http.js";
import type { ApiBinding, ApiExchange, ApiPolicy, ApiQueue } from "./state.js";
import { actualFrom } from "./state.js";

export async function readCluster(client: ManagementClient, target: ClusterTarget): Promise<ActualCluster> {
  const v = vh(target.amqp.vhost);
  const [overview, nodes, exchanges, queues, bindings, policies] = await Promise.all([
    client.get<{ rabbitmq_version?: string }>(`/api/overview?columns=rabbitmq_version`),
    // Which nodes run decides where mirrors must be. Only monitoring and administrator users may
    // list nodes; for others the mirror check is skipped rather than failing the plan.
    client.getOptional<{ name: string; running: boolean }[]>(`/api/nodes?columns=name,running`, [401, 403]),
    // A missing vhost answers 404 here: that is how topo learns it must create it.
    client.getOptional<ApiExchange[]>(`/api/exchanges/${v}?disable_stats=true`),
    client.getOptional<ApiQueue[]>(`/api/queues/${v}?disable_stats=true&enable_queue_totals=true`),
    client.getOptional<ApiBinding[]>(`/api/bindings/${v}`),
    client.getOptional<ApiPolicy[]>(`/api/policies/${v}`),
  ]);
  const exists = exchanges !== undefined;
  return actualFrom({
    version: overview.rabbitmq_version ?? "",
    nodes: (nodes ?? []).filter((n) => n.running).map((n) => n.name),
    downNodes: (nodes ?? []).filter((n) => !n.running).map((n) => n.name),
    vhost: exists ? target.amqp.vhost : undefined,
    exchanges: exchanges ?? [],
    queues: exists ? (queues ?? []) : [],
    bindings: exists ? (bindings ?? []) : [],
    policies: exists ? (policies ?? []) : [],
  });
}
