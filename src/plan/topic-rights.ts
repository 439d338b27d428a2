// Pure: will the AMQP user's topic permissions let apply bind and unbind what the plan says?
// RabbitMQ checks the routing key of every queue.bind and queue.unbind from a topic exchange
// against the read pattern of the user's topic permission for that exchange (3.10: "access to
// topic 'k' in exchange 'x' in vhost 'v' refused for user 'u'"). A replace binds its holding
// queue before anything else, so apply stopped there with the holding queue made and a hint that
// blamed the vhost permissions; a plain binding stopped with the exchanges and queues made and
// their bindings missing. Publishing is not concerned: a replace moves messages through the default
// exchange, a direct one, which topic permissions never apply to (measured).

import type { ActualCluster, Binding, ClusterPlan } from "../model.js";
import { names, shellWord } from "../core/words.js";
import { policyRegExp } from "../core/policy-pattern.js";
import { pushTo } from "../core/collections.js";

/** One of the user's topic permissions in the vhost, as GET /api/topic-permissions/VHOST/USER gives it. */
export interface TopicPermissionOf {
  exchange: string;
  write: string;
  read: string;
}

export interface TopicRefusal {
  exchange: string;
  routingKey: string;
  read: string;
}

/** Every binding the plan binds or unbinds, a replace's re-binds included (each through its holding queue too). */
function touchedBindings(plan: ClusterPlan): Binding[] {
  return plan.actions.flatMap((a): Binding[] => {
    if (a.op === "replace") return [...a.rebind, ...(a.resume?.holdBindings ?? [])];
    const r = a.op === "delete" ? a.before : a.after;
    return r.kind === "binding" ? [r] : [];
  });
}

/**
 * A test of whether RabbitMQ's check lets a key through `pattern`: an unanchored regular
 * expression, after {username} and {vhost} are replaced (rabbit_auth_backend_internal). It answers
 * undefined when topo cannot tell: a {client_id} it does not know, or a pattern JavaScript does
 * not read as Erlang does.
 */
function matcher(pattern: string, user: string, vhost: string): (key: string) => boolean | undefined {
  if (pattern.includes("{client_id}")) return () => undefined;
  const re = policyRegExp(pattern.replaceAll("{username}", user).replaceAll("{vhost}", vhost), { unicode: true });
  return (key) => re?.test(key);
}

/** The bindings the user's topic permissions refuse, one per exchange and key. */
export function topicRefusals(plan: ClusterPlan, actual: ActualCluster, perms: readonly TopicPermissionOf[], user: string, vhost: string): TopicRefusal[] {
  if (!perms.length) return [];
  const types = new Map<string, string>();
  for (const r of actual.resources) if (r.kind === "exchange") types.set(r.name, r.type);
  for (const a of plan.actions) if (a.op !== "delete" && a.after.kind === "exchange") types.set(a.after.name, a.after.type);
  // Each exchange's permission found, and its pattern compiled, once: not once per binding.
  const permOf = new Map<string, { perm: TopicPermissionOf; reads: (key: string) => boolean | undefined }>();
  for (const p of perms) if (!permOf.has(p.exchange)) permOf.set(p.exchange, { perm: p, reads: matcher(p.read, user, vhost) });
  const found = new Map<string, TopicRefusal>();
  for (const b of touchedBindings(plan)) {
    if (types.get(b.source) !== "topic") continue;
    const of = permOf.get(b.source);
    if (!of || of.reads(b.routingKey) !== false) continue;
    const { perm } = of;
    found.set(`${b.source}\0${b.routingKey}`, { exchange: b.source, routingKey: b.routingKey, read: perm.read });
  }
  return [...found.values()];
}

/** Why apply would stop part-way, and what to do; undefined when nothing is refused. */
export function topicProblem(refused: readonly TopicRefusal[], user: string, vhost: string): { cause: string; hints: string[] } | undefined {
  if (!refused.length) return undefined;
  const byExchange = new Map<string, TopicRefusal[]>();
  for (const r of refused) pushTo(byExchange, r.exchange, r);
  const parts = [...byExchange.entries()].map(
    ([x, rs]) => `on topic exchange ${x} its read pattern ${rs[0]!.read} refuses routing key${rs.length === 1 ? "" : "s"} ${names(rs.map((r) => r.routingKey))}`,
  );
  return {
    cause: `user "${user}"'s topic permissions in vhost "${vhost}" refuse bindings this plan makes or removes (RabbitMQ checks a binding's routing key on a topic exchange against the read pattern): ${parts.join("; ")}; apply would stop part-way`,
    hints: [
      `let the read pattern match those keys: rabbitmqctl set_topic_permissions -p ${shellWord(vhost)} ${shellWord(user)} EXCHANGE WRITE READ (rabbitmqctl list_user_topic_permissions ${shellWord(user)} shows them), or apply as a user without topic permissions on these exchanges`,
    ],
  };
}
