// Pure: the topic permissions an exchange replace must put back. RabbitMQ 4 deletes every user's
// topic permission on an exchange with the exchange (3.10 keeps them; measured on 3.10.8 and
// 4.3.6, over HTTP and AMQP alike). A replace re-declares the exchange at once, and a user who may
// write to it was then free to publish any routing key there: its restriction was gone, a user
// topo does not manage had lost it for good, and a managed user's showed only as apply's
// read-back failing.

import type { ClusterPlan, KeptTopicPermission } from "../model.js";
import { atLeast } from "./broker-rules.js";
import { names } from "../core/words.js";

/** Whether deleting an exchange deletes its topic permissions on this broker. */
export function dropsTopicsWithExchange(version: string): boolean {
  return atLeast(version, 4, 0);
}

/** The exchanges the plan replaces (deletes and declares again). */
export function replacedExchanges(plan: ClusterPlan): string[] {
  return plan.actions.flatMap((a) => (a.op === "replace" && a.after.kind === "exchange" ? [a.after.name] : []));
}

/**
 * Give each exchange replace the topic permissions it must put back: `vhostTopics` is every
 * user's in the vhost, or a reason when they could not be read.
 */
export function keepTopics(plan: ClusterPlan, vhostTopics: readonly KeptTopicPermission[] | { unread: string }): void {
  for (const a of plan.actions) {
    if (a.op !== "replace" || a.after.kind !== "exchange") continue;
    const name = a.after.name;
    if ("unread" in vhostTopics) a.topicsUnread = vhostTopics.unread;
    else {
      const on = vhostTopics.filter((t) => t.exchange === name);
      if (on.length) a.topics = on.map((t) => ({ user: t.user, exchange: t.exchange, write: t.write, read: t.read }));
    }
  }
}

/** The plan's line under a replace that puts topic permissions back. */
export function keptTopicsLine(topics: readonly KeptTopicPermission[]): string {
  const users = [...new Set(topics.map((t) => t.user))];
  return `then puts back the topic permission${users.length === 1 ? "" : "s"} of ${users.length === 1 ? "user" : "users"} ${names(users)} on it (RabbitMQ 4 deletes them with the exchange)`;
}

/** Why apply refuses an exchange replace whose topic permissions it could not read. */
export const UNREAD_TOPICS = "RabbitMQ 4 deletes every user's topic permission on an exchange with it, and topo could not read them to put them back";

/** Exchange replaces apply must refuse: their topic permissions are unknown. */
export function unkeptTopics(plan: ClusterPlan): { exchanges: string[]; why: string } | undefined {
  const unread = plan.actions.flatMap((a) => (a.op === "replace" && a.topicsUnread ? [{ name: a.after.kind === "exchange" ? a.after.name : "", why: a.topicsUnread }] : []));
  if (!unread.length) return undefined;
  return { exchanges: unread.map((u) => u.name), why: unread[0]!.why };
}
