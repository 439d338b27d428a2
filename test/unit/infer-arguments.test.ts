// Which x-arguments the written file can hold: the schema's fragments, then config's argument rule.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { argumentRuleProblem } from "../../src/import/argument-rule.js";
import { argumentChecker, type ArgumentProblem } from "../../src/import/arguments.js";

const SCHEMA = JSON.parse(readFileSync(join(import.meta.dirname, "../../schemas/topology.schema.json"), "utf8"));
const ARG_SCHEMAS = SCHEMA.definitions.arguments.properties;

describe("argumentRuleProblem", () => {
  it("accepts an argument the queue type takes", () => {
    expect(argumentRuleProblem("async", "classic", "x-max-length", 5)).toBeUndefined();
    expect(argumentRuleProblem("sync", "quorum", "x-delivery-limit", 5)).toBeUndefined();
    expect(argumentRuleProblem("async", "stream", "x-max-age", "7D")).toBeUndefined();
  });

  it("says, in config's words, why a queue type refuses an argument", () => {
    expect(argumentRuleProblem("async", "stream", "x-max-length", 5)).toBe("argument x-max-length does not apply to stream queues");
    expect(argumentRuleProblem("sync", "classic", "x-delivery-limit", 5)).toBe("argument x-delivery-limit does not apply to classic queues");
    expect(argumentRuleProblem("sync", "quorum", "x-overflow", "reject-publish-dlx")).toMatch(/reject-publish-dlx is not supported by quorum queues/);
  });

  it("does not know an argument named as an object's member (a broker's queue may carry one)", () => {
    for (const name of ["constructor", "toString", "__proto__"]) {
      expect(argumentRuleProblem("async", "classic", name, 1)).toBe(`argument ${name} does not apply to classic queues`);
      expect(argumentChecker(ARG_SCHEMAS)("async", "classic", name, 1)).toBe(`topo does not know argument ${name}`);
    }
  });

  it("answers the same for either kind", () => {
    for (const [type, name, value] of [["classic", "x-max-priority", 5], ["quorum", "x-max-priority", 5], ["stream", "x-max-age", "1D"]] as const) {
      expect(argumentRuleProblem("sync", type, name, value)).toBe(argumentRuleProblem("async", type, name, value));
    }
  });
});

describe("argumentChecker", () => {
  it("asks the schema first: an argument it does not know, or a value it refuses", () => {
    const check = argumentChecker(ARG_SCHEMAS, () => "the rule");
    expect(check("async", "classic", "x-custom", "k")).toBe("topo does not know argument x-custom");
    expect(check("async", "classic", "x-consumer-timeout", "60000")).toBe('x-consumer-timeout "60000" is not an integer');
    expect(check("async", "classic", "x-max-length", 5)).toBe("the rule");
  });

  it("without the schema asks only the rule", () => {
    expect(argumentChecker(undefined)("async", "classic", "x-custom", "k")).toBe("argument x-custom does not apply to classic queues");
    expect(argumentChecker(undefined)("async", "classic", "x-consumer-timeout", "60000")).toBeUndefined();
  });

  it("asks the rule once per question", () => {
    const asked: string[] = [];
    const rule: ArgumentProblem = (kind, type, name, value) => {
      asked.push(`${kind} ${type} ${name} ${JSON.stringify(value)}`);
      return undefined;
    };
    const check = argumentChecker(undefined, rule);
    for (let i = 0; i < 3; i++) check("async", "classic", "x-max-length", 5);
    check("async", "classic", "x-max-length", "5");
    check("sync", "classic", "x-max-length", 5);
    expect(asked).toEqual(["async classic x-max-length 5", 'async classic x-max-length "5"', "sync classic x-max-length 5"]);
  });
});
