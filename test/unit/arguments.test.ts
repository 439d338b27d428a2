// The queue-argument table: the schema is generated from it, and the rules a schema cannot see
// (queue type, arguments merged from defaults and the service) are checked on plain objects.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ARGUMENTS, argumentValueMessage, checkArguments, MAX_EXACT, type ArgumentLayer } from "../../src/config/arguments.js";
import { SCHEMA_PATH, withArguments } from "../../scripts/schema-arguments.js";

const svc = (i: number, kind = "async") => ["services", i, kind];

describe("the argument table", () => {
  it("is what the schema holds (else run: npx vite-node scripts/schema-arguments.ts -- --write)", () => {
    const text = readFileSync(SCHEMA_PATH, "utf8");
    expect(withArguments(text) === text).toBe(true);
  });

  it("never lets an integer past what YAML reads exactly", () => {
    for (const [name, rule] of Object.entries(ARGUMENTS)) {
      if (rule.value.kind !== "integer") continue;
      expect(rule.value.max, name).toBeLessThanOrEqual(MAX_EXACT);
      // x-delivery-limit -1 is RabbitMQ 4's "no limit"; no other argument takes a negative number.
      expect(rule.value.min, name).toBeGreaterThanOrEqual(name === "x-delivery-limit" ? -1 : 0);
    }
  });

  it("words a refused maximum and duration with the broker's rule and the fix", () => {
    expect(argumentValueMessage("x-message-ttl", "maximum", 315360000001)).toBe(
      "must be at most 315360000000: RabbitMQ refuses more (value_too_large), 10 years in milliseconds; write a smaller number",
    );
    expect(argumentValueMessage("x-max-length", "maximum", 1e19)).toMatch(/^must be at most 9007199254740991: larger numbers \(above 2\^53-1\) lose precision/);
    expect(argumentValueMessage("x-max-age", "pattern", "0s")).toMatch(/^"0s" is not a duration RabbitMQ accepts; write a whole number above 0/);
    expect(argumentValueMessage("x-max-length", "minimum", -1)).toBeUndefined();
    expect(argumentValueMessage("x-nope", "maximum", 1)).toBeUndefined();
  });
});

describe("checkArguments", () => {
  it("refuses x-dead-letter-routing-key without x-dead-letter-exchange, at the key", () => {
    const ps = checkArguments("classic", { "x-dead-letter-routing-key": "k" }, [{ path: svc(0), arguments: { "x-dead-letter-routing-key": "k" } }]);
    expect(ps).toEqual([
      {
        path: [...svc(0), "arguments", "x-dead-letter-routing-key"],
        atKey: true,
        message: expect.stringMatching(/^x-dead-letter-routing-key needs x-dead-letter-exchange: RabbitMQ refuses .*; add x-dead-letter-exchange/),
      },
    ]);
  });

  it("accepts the two when they come from different layers, and an empty exchange name", () => {
    const layers: ArgumentLayer[] = [
      { path: ["defaults", "async"], arguments: { "x-dead-letter-exchange": "" } },
      { path: svc(0), arguments: { "x-dead-letter-routing-key": "k" } },
    ];
    expect(checkArguments("quorum", { "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "k" }, layers)).toEqual([]);
  });

  it("refuses arguments the queue type does not take, at the most specific layer", () => {
    const layers: ArgumentLayer[] = [
      { path: ["defaults", "async"], arguments: { "x-max-priority": 5 } },
      { path: svc(1), arguments: { "x-max-priority": 9 } },
    ];
    expect(checkArguments("quorum", { "x-max-priority": 9 }, layers)).toEqual([
      { path: [...svc(1), "arguments", "x-max-priority"], atKey: true, message: "argument x-max-priority does not apply to quorum queues" },
    ]);
    expect(checkArguments("stream", { "x-overflow": "drop-head" }, [{ path: svc(0), arguments: { "x-overflow": "drop-head" } }])[0]?.message).toBe(
      "argument x-overflow does not apply to stream queues",
    );
  });

  it("refuses a value refused on one queue type only", () => {
    const layers = [{ path: svc(0), arguments: { "x-overflow": "reject-publish-dlx" } }];
    expect(checkArguments("classic", { "x-overflow": "reject-publish-dlx" }, layers)).toEqual([]);
    expect(checkArguments("quorum", { "x-overflow": "reject-publish-dlx" }, layers)).toEqual([
      { path: [...svc(0), "arguments", "x-overflow"], message: "x-overflow: reject-publish-dlx is not supported by quorum queues; use drop-head or reject-publish" },
    ]);
  });

  // RabbitMQ 4.3.6 takes any of them on a quorum queue's declare, and delays nothing unless the set
  // is whole (rabbit_quorum_queue:get_delayed_retry_config/1): a file that reads as "retries wait
  // 5 s" would have had none.
  it("refuses a delayed retry that RabbitMQ 4.3 would take and ignore: a type without a minimum, a minimum or maximum alone, a maximum below the minimum", () => {
    const check = (args: Record<string, string | number>) => checkArguments("quorum", args, [{ path: svc(0), arguments: args }]).map((p) => `${p.path.at(-1)}: ${p.message}`);
    expect(check({ "x-delayed-retry-type": "all", "x-delayed-retry-min": 5000 })).toEqual([]);
    expect(check({ "x-delayed-retry-type": "failed", "x-delayed-retry-min": 5000, "x-delayed-retry-max": 60000 })).toEqual([]);
    expect(check({ "x-delayed-retry-type": "returned", "x-delayed-retry-min": 5000, "x-delayed-retry-max": 5000 })).toEqual([]);
    // "disabled" is the queue's default, and needs nothing.
    expect(check({ "x-delayed-retry-type": "disabled" })).toEqual([]);
    expect(check({ "x-delayed-retry-type": "all" })).toEqual([
      "x-delayed-retry-type: x-delayed-retry-type needs x-delayed-retry-min: RabbitMQ 4.3 delays no retry without a minimum delay, and says nothing (the queue reports delayed_retry: disabled); add x-delayed-retry-min (milliseconds, above 0) or drop x-delayed-retry-type",
    ]);
    expect(check({ "x-delayed-retry-min": 5000 })).toEqual([
      "x-delayed-retry-min: x-delayed-retry-min needs x-delayed-retry-type: RabbitMQ 4.3 delays retries only for a type of them, and ignores a minimum alone; add x-delayed-retry-type (all, failed or returned) or drop x-delayed-retry-min",
    ]);
    expect(check({ "x-delayed-retry-type": "all", "x-delayed-retry-max": 5000 })).toHaveLength(2);
    expect(check({ "x-delayed-retry-type": "all", "x-delayed-retry-min": 5000, "x-delayed-retry-max": 1000 })).toEqual([
      "x-delayed-retry-max: x-delayed-retry-max 1000 is below x-delayed-retry-min 5000: RabbitMQ 4.3 refuses a policy whose delayed-retry-max is smaller than its delayed-retry-min, and a queue's declare does not check; write x-delayed-retry-max 5000 or more",
    ]);
    // Quorum queues only (4.3.6 refuses them on classic queues and streams; 3.10.8 and 4.0.5 accept and ignore them).
    for (const type of ["classic", "stream"] as const) {
      expect(checkArguments(type, { "x-consumer-disconnected-timeout": 1000 }, [{ path: svc(0), arguments: { "x-consumer-disconnected-timeout": 1000 } }]).map((p) => p.message)).toEqual([
        `argument x-consumer-disconnected-timeout does not apply to ${type} queues`,
      ]);
    }
    expect(check({ "x-consumer-disconnected-timeout": 0 })).toEqual([]);
  });
});
