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
});
