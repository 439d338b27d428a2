// The AMQP writes of one object each: what apply and a lossless replace both declare, bind and
// unbind, in the one form the broker and kombu agree on (classic queues without x-queue-type).

import type { Channel } from "amqplib";
import type { Binding, Exchange, Queue } from "../model.js";
import { queueDeclareArgs } from "../model.js";

export function declareQueue(ch: Channel, q: Queue): Promise<unknown> {
  return ch.assertQueue(q.name, { durable: q.durable, autoDelete: q.autoDelete, exclusive: q.exclusive, arguments: queueDeclareArgs(q) });
}

export function declareExchange(ch: Channel, e: Exchange): Promise<unknown> {
  return ch.assertExchange(e.name, e.type, { durable: e.durable, autoDelete: e.autoDelete, internal: e.internal, arguments: e.arguments });
}

export function bind(ch: Channel, b: Binding): Promise<unknown> {
  return b.destinationType === "queue"
    ? ch.bindQueue(b.destination, b.source, b.routingKey, b.arguments)
    : ch.bindExchange(b.destination, b.source, b.routingKey, b.arguments);
}

export function unbind(ch: Channel, b: Binding): Promise<unknown> {
  return b.destinationType === "queue"
    ? ch.unbindQueue(b.destination, b.source, b.routingKey, b.arguments)
    : ch.unbindExchange(b.destination, b.source, b.routingKey, b.arguments);
}
