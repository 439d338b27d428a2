import { describe, expect, it } from "vitest";
import { bindingItem, exchangeItem, namedItem, policiesUnlisted, policyItem, queueCountItem, queueItem } from "../../src/broker/answers.js";

// Items as RabbitMQ 3.10.8 answers them with the columns topo asks for.
const exchange = { arguments: {}, auto_delete: false, durable: true, internal: false, name: "mplogin", type: "topic", vhost: "v" };
const queue = { arguments: { "x-max-priority": 5 }, auto_delete: false, durable: true, exclusive: false, name: "mplogin.async", node: "rabbit@h", state: "live", type: "classic", vhost: "v" };
const binding = { source: "mplogin", vhost: "v", destination: "mplogin.async", destination_type: "queue", routing_key: "mplogin.async.#", arguments: {}, properties_key: "mplogin.async.%23" };
const policy = { vhost: "v", name: "cap", pattern: "^mplogin", "apply-to": "queues", definition: { "max-length": 10 }, priority: 5 };

const without = (o: Record<string, unknown>, field: string) => Object.fromEntries(Object.entries(o).filter(([k]) => k !== field));

describe("an item of a listing is the broker's only with every field of its kind that topo compares", () => {
  it("takes the broker's own items", () => {
    expect(exchangeItem("v")(exchange)).toBeUndefined();
    expect(queueItem("v")(queue)).toBeUndefined();
    expect(queueItem("v")({ ...queue, policy: "cap" })).toBeUndefined();
    expect(bindingItem("v")(binding)).toBeUndefined();
    expect(policyItem("v")(policy)).toBeUndefined();
    expect(queueCountItem("v")({ name: "q", vhost: "v", messages: 3, messages_unacknowledged: 0 })).toBeUndefined();
    expect(queueCountItem("v")({ name: "q", vhost: "v" })).toBeUndefined();
  });

  // Read as "no arguments" or "internal: undefined", a missing field was drift hidden (No changes.)
  // or drift made up (a replace apply carried out).
  it.each([
    ["exchange", exchangeItem("v"), exchange, ["arguments", "internal", "durable", "auto_delete", "type", "name"]],
    ["queue", queueItem("v"), queue, ["arguments", "durable", "auto_delete", "name"]],
    ["binding", bindingItem("v"), binding, ["arguments", "properties_key", "routing_key", "source", "destination", "destination_type"]],
    ["policy", policyItem("v"), policy, ["definition", "pattern", "apply-to", "priority"]],
  ] as const)("refuses a %s without any one of them, naming it", (_, check, item, fields) => {
    for (const field of fields) expect(check(without(item, field)), field).toBe(`lacks ${field}`);
  });

  it("refuses a field of the wrong type, and names what it should be", () => {
    expect(exchangeItem("v")({ ...exchange, internal: "false" })).toBe("has internal that is not true or false");
    expect(queueItem("v")({ ...queue, arguments: null })).toBe("has arguments that is not an object");
    expect(queueItem("v")({ ...queue, arguments: [] })).toBe("has arguments that is not an object");
    expect(queueItem("v")({ ...queue, exclusive: 1 })).toBe("has exclusive that is not true or false");
    expect(policyItem("v")({ ...policy, priority: "5" })).toBe("has priority that is not a number");
    expect(bindingItem("v")({ ...binding, destination_type: "topic" })).toBe("has a destination_type that is neither queue nor exchange");
  });

  it("refuses another vhost's item, and an item that is no object", () => {
    expect(exchangeItem("v")({ ...exchange, vhost: "w" })).toBe("is of vhost w");
    expect(exchangeItem("v")(without(exchange, "vhost"))).toBe("names no vhost");
    expect(queueItem("v")(null)).toBe("is no object");
    expect(queueItem("v")([queue])).toBe("is no object");
    expect(queueItem("v")({ ...exchange, name: "" })).toMatch(/^is named ""/);
  });

  it("a GET of one object: that object, and of its kind where asked", () => {
    expect(namedItem("v", "mplogin")(exchange)).toBeUndefined();
    expect(namedItem("v", "other")(exchange)).toBe('is "mplogin", not "other"');
    expect(namedItem("v", "mplogin", exchangeItem("v"))(without(exchange, "internal"))).toBe("lacks internal");
  });
});

describe("the queues and policies of one read agree", () => {
  it("names each queue whose listed policy the policy list lacks", () => {
    const queues = [{ name: "a" }, { name: "b", policy: "cap" }, { name: "c", policy: "gone" }, { name: "d", policy: "" }];
    expect([...policiesUnlisted(queues, [{ name: "cap" }])]).toEqual([["c", "gone"]]);
    expect(policiesUnlisted(queues, [{ name: "cap" }, { name: "gone" }]).size).toBe(0);
  });
});
