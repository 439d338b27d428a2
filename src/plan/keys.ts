import type { ArgValue, Resource } from "../model.js";

/** JSON with object keys sorted at every depth, so equal values always give equal strings. */
export function stableJson(value: ArgValue | undefined): string {
  if (value === undefined) return "undefined";
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(value[k])}`).join(",")}}`;
}

/**
 * The one identity function. A binding is identified by everything RabbitMQ uses to tell two
 * bindings apart: both ends, the routing key and the arguments (the broker's properties_key
 * encodes the same).
 */
export function keyOf(r: Resource): string {
  switch (r.kind) {
    case "vhost":
    case "exchange":
    case "queue":
    case "policy":
      return `${r.kind}|${r.name}`;
    case "binding":
      return `binding|${r.source}|${r.destinationType}|${r.destination}|${r.routingKey}|${stableJson(r.arguments)}`;
  }
}

/** A short human name for an object, as plan prints it. */
export function describe(r: Resource): string {
  switch (r.kind) {
    case "vhost":
    case "exchange":
    case "queue":
    case "policy":
      return r.name;
    case "binding": {
      const args = Object.keys(r.arguments).length ? ` ${stableJson(r.arguments)}` : "";
      const dest = r.destinationType === "exchange" ? `exchange ${r.destination}` : r.destination;
      return `${r.source || "(default)"} -> ${dest} [${r.routingKey}]${args}`;
    }
  }
}
