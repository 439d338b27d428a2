// May the management user remove the bindings apply removes through the management API? RabbitMQ
// checks that user's own permissions there (broker/remove-binding.ts), not the AMQP user's. An
// administrator's can be read, and plan checks them (plan/rights.ts); any other management user
// may not read permissions, and apply learnt of a refusal at the unbind itself: after its other
// writes, and in a replace with the holding queue already bound beside the queue.
//
// The management API removes a binding with the AMQP unbind method, through the broker's own
// connection as the management user, so the same unbind asked over AMQP as that user meets the
// same checks, in the same order: write on the destination, read on the source, and on a topic
// exchange read of the routing key. Each comes before the broker looks for the binding, and an
// unbind that matches no binding is answered unbind-ok. So topo asks with each binding's own
// source, destination and routing key, and arguments that no binding has (a key of topo's and a
// random value): only a 403 is an answer, and nothing is removed. Measured on RabbitMQ 3.10.8,
// 4.0.5 and 4.3.6, against the management API's DELETE of the same binding as the same user: both
// refused with write on the queue missing, with read on the exchange missing, and with a topic
// permission whose read refuses the key; both let through with write ^q$, read ^exchange$ and no
// configure; the binding asked about, and its twin without arguments, still there after each ask.

import { randomBytes } from "node:crypto";
import type { Channel } from "amqplib";
import type { Binding, ClusterTarget } from "../model.js";
import type { RefusedUnbind } from "../plan/rights.js";
import { AmqpSession, replyText, type AmqpOptions } from "./amqp.js";

/** The cluster's AMQP endpoint, logged in as the cluster's management user. */
export function asManagementUser(target: ClusterTarget): ClusterTarget {
  const { username, password } = target.management;
  return { ...target, amqp: { ...target.amqp, username, password } };
}

/**
 * Ask, as the management user, the unbind of each binding with arguments no binding has. The
 * refusals, one per binding the user may not remove; undefined where no answer could be had (the
 * management user cannot log in over AMQP, the connection failed) or was not asked (the management
 * API is https and AMQP is not amqps): apply goes on as it did, and meets what it meets at the
 * unbind.
 */
export async function unbindsRefused(target: ClusterTarget, bindings: readonly Binding[], opts: AmqpOptions = {}): Promise<RefusedUnbind[] | undefined> {
  // The management user's password goes where the file sends it over TLS only: never in clear text
  // over a plain AMQP port when the management API is https.
  if (target.management.baseUrl.startsWith("https:") && target.amqp.protocol !== "amqps") return undefined;
  const distinct = new Map<string, Binding>();
  for (const b of bindings) distinct.set(JSON.stringify([b.source, b.destinationType, b.destination, b.routingKey]), b);
  if (!distinct.size) return [];
  let session: AmqpSession;
  try {
    session = await AmqpSession.open(asManagementUser(target), { ...opts, connectAttempts: 1 });
  } catch {
    return undefined;
  }
  const nothing = { "x-topo-unbind-check": randomBytes(12).toString("hex") };
  const refused: RefusedUnbind[] = [];
  try {
    let ch: Channel | undefined;
    for (const b of distinct.values()) {
      ch ??= await session.channel();
      try {
        if (b.destinationType === "queue") await ch.unbindQueue(b.destination, b.source, b.routingKey, nothing);
        else await ch.unbindExchange(b.destination, b.source, b.routingKey, nothing);
      } catch (e) {
        // Any error closes the channel. 404 (the source or the destination is not there yet: a
        // replace's holding queue) comes after the permission checks, so those passed.
        ch = undefined;
        const reply = replyText(e as Error & { code?: unknown });
        if (reply.code === 403) refused.push({ binding: b, reply: reply.text });
        else if (reply.code !== 404) return undefined;
      }
    }
    return refused;
  } catch {
    return undefined;
  } finally {
    await session.close().catch(() => undefined);
  }
}
