// Builders for unit tests of the pure core: plain objects with the defaults topo uses.

import { expect } from "vitest";
import { normalize, type RawConfig } from "../../src/config/normalize.js";
import type { ActualCluster, Binding, DesiredCluster, Exchange, Traffic, Policy, Queue, Resource } from "../../src/model.js";
import type { Chosen, Found, ImportSource, Wanted } from "../../src/import/types.js";

export const queue = (o: Partial<Queue> & { name: string }): Queue => ({ kind: "queue", type: "classic", durable: true, autoDelete: false, exclusive: false, arguments: {}, ...o });
export const exchange = (o: Partial<Exchange> & { name: string }): Exchange => ({ kind: "exchange", type: "topic", durable: true, autoDelete: false, internal: false, arguments: {}, ...o });
export const binding = (o: Partial<Binding> & { source: string; destination: string }): Binding => ({ kind: "binding", destinationType: "queue", routingKey: `${o.destination}.#`, arguments: {}, ...o });
export const policy = (o: Partial<Policy> & { name: string }): Policy => ({ kind: "policy", pattern: ".*", applyTo: "queues", priority: 0, definition: { "ha-mode": "all", "ha-sync-mode": "automatic" }, ...o });
export const raw = (o: Partial<RawConfig> = {}): RawConfig => ({
  version: 1,
  clusters: { sync: { url: "amqp://u:p@h:5672/s" }, async: { url: "amqp://u:p@h:5672/a" } },
  services: ["mplogin"],
  ...o,
});
export const actual = (resources: Resource[], o: Partial<ActualCluster> = {}): ActualCluster => ({ vhostExists: true, version: "3.10.8", nodes: [], resources, queueFacts: {}, ...o });

/** A cluster as import reads it: named like its vhost, holding the vhost and `resources`. */
export const importSource = (name: string, resources: Resource[], o: Partial<ActualCluster> = {}): ImportSource => ({
  name,
  vhost: name,
  actual: actual([{ kind: "vhost", name }, ...resources], o),
});

/** A queue `<service>.<kind>` as import finds it on `source`. */
export const found = (source: ImportSource, q: Queue, order = 0): Found => {
  const dot = q.name.lastIndexOf(".");
  return { source, order, service: q.name.slice(0, dot), kind: q.name.slice(dot + 1) as Traffic, queue: q };
};
export const wanted = (o: Partial<Wanted> = {}): Wanted => ({ cluster: "sync", type: "classic", durable: true, mirrored: false, arguments: {}, ...o });
/** A queue the file describes as the broker holds it, unless `o` says otherwise. */
export const chosen = (source: ImportSource, q: Queue, o: Partial<Wanted> = {}): Chosen => ({
  ...found(source, q),
  wanted: wanted({ cluster: source.name, type: q.type, durable: q.durable, arguments: q.arguments, ...o }),
});

/** A service as topo makes it: its topic exchange, its queue and the binding between them. */
export const service = (name: string, kind: "sync" | "async", q: Partial<Queue> = {}): Resource[] => [
  exchange({ name }),
  queue({ name: `${name}.${kind}`, ...q }),
  binding({ source: name, destination: `${name}.${kind}` }),
];

export function desiredOf(r: RawConfig, cluster: string): DesiredCluster {
  const { desired, problems } = normalize(r);
  expect(problems).toEqual([]);
  return desired.clusters.find((c) => c.target.name === cluster)!;
}
