// Pure: one cluster's desired state as RabbitMQ definitions JSON, the format of
// `rabbitmqctl export_definitions` / `import_definitions` and GET/POST /api/definitions.

import type { Binding, DesiredCluster, Exchange, Policy, Queue } from "../model.js";
import { queueDeclareArgs } from "../model.js";
import { applyMarkName } from "../core/naming.js";
import { names, plural, quorumDefaultsExample } from "../core/words.js";

export interface Definitions {
  vhosts: { name: string }[];
  exchanges: Record<string, unknown>[];
  queues: Record<string, unknown>[];
  bindings: Record<string, unknown>[];
  policies: Record<string, unknown>[];
  /** Only when the file has a users section. Hashes freshly salted: the file's passwords never appear. */
  users?: Record<string, unknown>[];
  /** The cluster's AMQP user's rights on the vhost, as apply grants them; and the file's users'. */
  permissions: Record<string, unknown>[];
  topic_permissions?: Record<string, unknown>[];
}

/**
 * Every object carries its vhost, so the file imports as it is with rabbitmqctl import_definitions
 * (whole broker); POST /api/definitions/{vhost} puts the objects in that vhost whatever they say.
 * Queues carry the same arguments topo declares (x-queue-type only for non-classic queues, as a
 * kombu worker declares them), so an import and a worker's redeclare agree.
 */
export function definitionsOf(c: DesiredCluster, prefix?: string): Definitions {
  const vhost = c.target.amqp.vhost;
  // apply grants the cluster's AMQP user every right on a vhost it creates (its declares and its
  // lock need them); an import creates the vhost, so it grants them too, unless the file's users
  // section says what that user may do there. Without them no client of that user could connect.
  const user = c.target.amqp.username;
  const given = c.resources.some((r) => r.kind === "permission" && r.user === user);
  const permissions = given ? [] : [{ user, vhost, configure: ".*", write: ".*", read: ".*" }];
  const out: Definitions = { vhosts: [{ name: vhost }], exchanges: [], queues: [], bindings: [], policies: [], permissions };
  const users = c.users;
  if (users) Object.assign(out, { users: [], topic_permissions: [] });
  for (const r of c.resources) {
    switch (r.kind) {
      case "vhost":
        break;
      case "exchange":
        out.exchanges.push(exchangeDef(r, vhost));
        break;
      case "queue":
        out.queues.push(queueDef(r, vhost));
        break;
      case "binding":
        out.bindings.push(bindingDef(r, vhost));
        break;
      case "policy":
        out.policies.push(policyDef(r, vhost));
        break;
      // A definitions import (rabbitmqctl import_definitions) creates users from their hash.
      case "user":
        out.users?.push({ name: r.name, ...users?.credentials.hashFor(r.name), tags: r.tags.join(","), limits: {} });
        break;
      case "permission":
        out.permissions.push({ user: r.user, vhost, configure: r.configure, write: r.write, read: r.read });
        break;
      case "topic-permission":
        out.topic_permissions?.push({ user: r.user, vhost, exchange: r.exchange, write: r.write, read: r.read });
        break;
    }
  }
  // The prefix's apply mark, as an apply leaves it: without it, a file of a shorter prefix on
  // this vhost (mp, for this file's mpx) took the imported services for its own and deleted
  // them, and this file's plan would list the mark to make.
  if (prefix !== undefined && (out.exchanges.length || out.queues.length)) {
    out.exchanges.push({ name: applyMarkName(prefix), vhost, type: "fanout", durable: true, auto_delete: false, internal: true, arguments: { "x-topo-generation": "definitions" } });
  }
  return out;
}

/**
 * What an import of these definitions would meet that the export, which reads no broker, cannot
 * check. A mirror policy (ha-mode) is refused by RabbitMQ 4, which has no classic mirroring, and
 * the refusal ends the import part-way: measured on 4.0.5, POST /api/definitions/VHOST of a
 * mirrored file answered 400 "[ha-mode, ha-sync-mode] are not recognised policy settings", after
 * creating the exchanges and before any queue. topo plan and apply refuse such a file on
 * RabbitMQ 4 before writing anything (plan/compat.ts); the export says so here.
 */
export function definitionsWarnings(c: DesiredCluster): string[] {
  return [...mirrorPolicyWarnings(c), ...usersWarnings(c)];
}

/**
 * RabbitMQ's import takes a user of the same name over, whoever made it: its password (the hash
 * the definitions carry) and its tags (topo's, which mark it as this topology's for every later
 * apply). Apply refuses such a user (user_conflict) and the export reads no broker, so it says so.
 * Measured on 3.10.8: a user with the management tag, and another topology's, both imported
 * with tags topo.<prefix> and the new password; their old passwords no longer logged in.
 */
function usersWarnings(c: DesiredCluster): string[] {
  const users = c.resources.flatMap((r) => (r.kind === "user" ? [r.name] : []));
  if (!users.length) return [];
  return [
    `the definitions carry ${plural(users.length, "user")} (${names(users)}): RabbitMQ's import replaces a user of the same name that exists, whoever made it, with this password and topo's tags, where topo apply refuses a user that exists without its tag or is another topology's (user_conflict); this export reads no broker, so run topo plan against the broker you import into first: it names each such user`,
  ];
}

function mirrorPolicyWarnings(c: DesiredCluster): string[] {
  const specs = c.queues.filter((q) => q.mirrored);
  const mirrored = specs.map((q) => q.queue.name);
  const policies = c.resources.filter((r): r is Policy => r.kind === "policy" && "ha-mode" in r.definition).map((p) => p.name);
  if (!policies.length) return [];
  return [
    `the definitions carry topo's mirror ${policies.length === 1 ? "policy" : "policies"} ${names(policies)} (ha-mode: all) for ${plural(mirrored.length, "mirrored classic queue")} (${names(mirrored)}): RabbitMQ 4 has no classic queue mirroring, and an import there fails part-way with 400 "... are not recognised policy settings", after creating the exchanges and before any queue; they import on RabbitMQ 3.x only. For RabbitMQ 4, give the queues type: quorum in the file (e.g. ${quorumDefaultsExample(specs.map((q) => q.traffic))}), or mirrored: false, and export again (docs/rabbitmq-versions.md)`,
  ];
}

function exchangeDef(e: Exchange, vhost: string): Record<string, unknown> {
  return { name: e.name, vhost, type: e.type, durable: e.durable, auto_delete: e.autoDelete, internal: e.internal, arguments: e.arguments };
}

function queueDef(q: Queue, vhost: string): Record<string, unknown> {
  return { name: q.name, vhost, durable: q.durable, auto_delete: q.autoDelete, arguments: queueDeclareArgs(q) };
}

function bindingDef(b: Binding, vhost: string): Record<string, unknown> {
  return { source: b.source, vhost, destination: b.destination, destination_type: b.destinationType, routing_key: b.routingKey, arguments: b.arguments };
}

function policyDef(p: Policy, vhost: string): Record<string, unknown> {
  return { vhost, name: p.name, pattern: p.pattern, "apply-to": p.applyTo, definition: p.definition, priority: p.priority };
}
