// The only exchange and binding a topology file can describe: a service's durable topic exchange,
// and the binding of each of its queues to it with `<queue>.#`. normalize makes these too; import
// needs them to say why what a broker holds is not them.

import type { Binding, Exchange } from "../model.js";

export function modelExchange(name: string): Exchange {
  return { kind: "exchange", name, type: "topic", durable: true, autoDelete: false, internal: false, arguments: {} };
}

export function modelBinding(service: string, queue: string): Binding {
  return { kind: "binding", source: service, destination: queue, destinationType: "queue", routingKey: `${queue}.#`, arguments: {} };
}
