// A JSON topology is read by JSON.parse (fromJson), and by the YAML path as soon as anything is
// wrong with it. Both must read every file the same way: the same state when it loads, the same
// problems when it does not, and every problem at its line and column of the JSON text.

import { readFileSync } from "node:fs";
import { parseDocument, stringify } from "yaml";
import { describe, expect, it } from "vitest";
import { fromJson, parseConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import { Redactor } from "../../src/redact.js";
import { cases } from "../helpers/fuzz.js";

const EXAMPLE = readFileSync(new URL("../../topology.yaml", import.meta.url), "utf8");
const ENV = { RABBITMQ_PASSWORD: "pw" };

/** The data a YAML text means (aliases and merge keys resolved, ${VAR} left as written), as JSON. */
function asJson(yamlText: string, space?: number): string | undefined {
  const doc = parseDocument(yamlText, { merge: true, uniqueKeys: true });
  if (doc.errors.length) return undefined;
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  return typeof data === "object" && data !== null && !Array.isArray(data) ? JSON.stringify(data, null, space) : undefined;
}

type Outcome = { loaded: unknown } | { refused: string[] };

function outcome(text: string, file: string): Outcome {
  try {
    return { loaded: parseConfig(text, file, ENV) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { refused: e.problems.map((p) => p.message).sort() };
  }
}

/** The example's data with one change made to it, as JSON (or as YAML). */
function exampleWith(change: (d: Record<string, any>) => void, format: "json" | "yaml" = "json"): string {
  const d = JSON.parse(asJson(EXAMPLE) as string) as Record<string, any>;
  change(d);
  return format === "json" ? JSON.stringify(d, null, 2) : stringify(d);
}

describe("a JSON topology", () => {
  it("is read without the YAML parser when nothing is wrong with it", () => {
    const json = asJson(EXAMPLE) as string;
    const fast = fromJson(json, "topology.json", ENV, undefined);
    expect(fast).toBeDefined();
    expect(fast).toEqual(parseConfig(EXAMPLE, "topology.yaml", ENV));
  });

  it("loads to the same state as the YAML it was made from, or is refused with the same problems (fuzzed files)", () => {
    let compared = 0;
    let loaded = 0;
    for (const [i, text] of [EXAMPLE, ...cases()].entries()) {
      const json = asJson(text, i % 2 ? 2 : undefined);
      if (json === undefined) continue;
      compared++;
      const a = outcome(text, "t.yaml");
      const b = outcome(json, "t.json");
      expect(b, `case ${i}\n${text}`).toEqual(a);
      if ("loaded" in a) loaded++;
    }
    // Both kinds of outcome must be met, or the comparison proves little.
    expect(compared).toBeGreaterThan(50);
    expect(loaded).toBeGreaterThan(10);
    expect(compared - loaded).toBeGreaterThan(10);
  });

  it("reports a problem at its line and column of the JSON text", () => {
    const text = exampleWith((d) => {
      d.services[2].async.arguments["x-max-length"] = "lots";
    });
    expect(fromJson(text, "t.json", ENV, undefined)).toBeUndefined();
    const e = (() => {
      try {
        parseConfig(text, "t.json", ENV);
      } catch (x) {
        return x as ConfigError;
      }
      throw new Error("loaded");
    })();
    const line = text.split("\n").findIndex((l) => l.includes('"lots"')) + 1;
    expect(e.problems).toHaveLength(1);
    expect(e.problems[0]).toMatchObject({ file: "t.json", line, message: expect.stringMatching(/x-max-length/) });
  });

  it("refuses a key given twice, which JSON.parse alone would let pass, at the second one", () => {
    const good = asJson(EXAMPLE) as string;
    const twice = good.replace('"prefix":"mp"', '"prefix":"mp",\n"prefix":"other"');
    expect(twice).not.toBe(good);
    expect(fromJson(twice, "t.json", ENV, undefined)).toBeUndefined();
    // With what the later value makes of the rest (services outside prefix "other"), in the same run.
    expect(() => parseConfig(twice, "t.json", ENV)).toThrow(expect.objectContaining({ problems: expect.arrayContaining([expect.objectContaining({ line: 2, message: expect.stringMatching(/the key "prefix" is given twice/) })]) }));
    // The same key written with an escape is the same key.
    const escaped = good.replace('"prefix":"mp"', '"prefix":"mp","\\u0070refix":"other"');
    expect(fromJson(escaped, "t.json", ENV, undefined)).toBeUndefined();
    expect(() => parseConfig(escaped, "t.json", ENV)).toThrow(ConfigError);
  });

  it("reads a key \"__proto__\" as the YAML path does (refused), never as an object's prototype", () => {
    const yamlText = `version: 1
clusters: { sync: { url: "amqp://u:p@h/s" }, async: { url: "amqp://u:p@h/a" } }
services:
  - name: mpa
    async: { arguments: { __proto__: { x: 1 } } }
`;
    const yamlOutcome = outcome(yamlText, "t.yaml");
    expect(yamlOutcome).toMatchObject({ refused: [expect.stringMatching(/unknown queue argument "__proto__"/)] });
    for (const key of ['"__proto__"', '"\\u005f_proto__"']) {
      const text = `{"version":1,"clusters":{"sync":{"url":"amqp://u:p@h/s"},"async":{"url":"amqp://u:p@h/a"}},"services":[{"name":"mpa","async":{"arguments":{${key}:{"x":1}}}}]}`;
      expect(fromJson(text, "t.json", ENV, undefined), key).toBeUndefined();
      expect(outcome(text, "t.json"), key).toEqual(yamlOutcome);
    }
  });

  it("refuses \"__proto__\" as a key of every mapping of the file, at its line, by both paths", () => {
    // Each mapping a file has: the top level, clusters, a cluster, defaults, a service, users, a
    // user. A key "__proto__" that became an object's prototype would pass the schema unseen (and
    // a cluster or user by that name would be looked up as Object.prototype's members).
    const places: Array<[string, (d: Record<string, any>) => Record<string, unknown>, RegExp]> = [
      ["the top level", (d) => d, /unknown key "__proto__"/],
      ["clusters", (d) => d.clusters, /name "__proto__" must be/],
      ["a cluster", (d) => d.clusters.sync, /unknown key "__proto__"/],
      ["defaults", (d) => (d.defaults ??= {}), /unknown key "__proto__"/],
      ["a service", (d) => (d.services[0] = { name: d.services[0] }), /unknown key "__proto__"/],
      ["users", (d) => (d.users = {}), /user name "__proto__" must be/],
      ["a user", (d) => ((d.users = { edge: { password: "x-1", publishes: "all" } }), d.users.edge), /unknown key "__proto__"/],
    ];
    for (const [where, at, message] of places) {
      const json = JSON.parse(asJson(EXAMPLE) as string) as Record<string, any>;
      // defineProperty: an assignment to "__proto__" would set the prototype, not add the key.
      Object.defineProperty(at(json), "__proto__", { value: { prefix: "zz" }, enumerable: true, writable: true, configurable: true });
      const text = JSON.stringify(json, null, 2);
      expect(text, where).toContain('"__proto__"');
      const line = text.split("\n").findIndex((l) => l.includes('"__proto__"')) + 1;
      for (const [file, source] of [
        ["t.json", text],
        ["t.yaml", stringify(parseDocument(text).toJS())],
      ] as const) {
        expect(source, `${where} ${file}`).toContain("__proto__");
        const refused = (() => {
          try {
            parseConfig(source, file, ENV);
          } catch (e) {
            if (e instanceof ConfigError) return e.problems;
            throw e;
          }
          return [];
        })();
        const problem = refused.find((p) => message.test(p.message));
        expect(problem, `${where} ${file}: ${JSON.stringify(refused.map((p) => p.message))}`).toBeDefined();
        if (file === "t.json") expect(problem?.line, `${where} ${file}`).toBe(line);
        else expect(source.split("\n")[(problem?.line ?? 0) - 1], `${where} ${file}`).toContain("__proto__");
      }
    }
  });

  it("counts colons and quotes inside strings as text, not as structure", () => {
    const add = (d: Record<string, any>) => d.services.push({ name: "mpcolon", async: { arguments: { "x-dead-letter-exchange": 'a:"b":\\c:{' } } });
    // Loads by the JSON path, to what the YAML path reads from the same data.
    const fast = fromJson(exampleWith(add), "t.json", ENV, undefined);
    expect(fast).toBeDefined();
    expect(fast).toEqual(parseConfig(exampleWith(add, "yaml"), "t.yaml", ENV));
    expect(JSON.stringify(fast)).toContain('a:\\"b\\":\\\\c:{');
  });

  it("interpolates ${VAR} in values only, typed where the schema wants a number", () => {
    const text = exampleWith((d) => {
      d.services[2].async.arguments["x-max-length"] = "${LEN}";
    });
    const fast = fromJson(text, "t.json", { ...ENV, LEN: "7" }, undefined);
    const q = fast?.clusters.find((c) => c.target.name === "async")?.resources.find((r) => r.kind === "queue" && r.name === "mppayment.async");
    expect(q).toMatchObject({ arguments: { "x-max-length": 7 } });
    // Unset: the YAML path says which variable, where.
    expect(fromJson(text, "t.json", ENV, undefined)).toBeUndefined();
    expect(() => parseConfig(text, "t.json", ENV)).toThrow(expect.objectContaining({ problems: [expect.objectContaining({ message: expect.stringMatching(/LEN is not set/) })] }));
  });

  it("teaches the redactor the file's passwords on either path", () => {
    const secret = "s3cr/t+pw";
    // From the environment: a password written in the file is warned about, at its place, on the YAML path.
    const text = asJson(EXAMPLE.replaceAll("guest:${RABBITMQ_PASSWORD:-guest}", "topo:${PW}")) as string;
    const r = new Redactor();
    expect(fromJson(text, "t.json", { PW: encodeURIComponent(secret) }, r)).toBeDefined();
    expect(r.text(`amqp://guest:${secret}@host and ${encodeURIComponent(secret)}`)).not.toContain("s3cr");
  });

  it("masks the password of a URL that does not parse, where the same ${VAR} is shown in another value's problem", () => {
    // An unencoded "/" or "#", or a bad port: the URL gives its cluster no password to learn, and
    // the variable's value was shown in the problem of x-max-length (or prefix, or a type).
    const text = EXAMPLE.replaceAll("${RABBITMQ_PASSWORD:-guest}", "${PW}").replace("x-max-length: 100000", 'x-max-length: "${PW}"');
    for (const pw of ["Tr0ub4dor/3", "Qq7#Secret/9", "S3cr%2Ft%40pw%3Ax%25y", "Tr0ub4dor%2F3x"]) {
      const source = pw.endsWith("x") ? text.replace("localhost:5672/async", "localhost:99999/async").replace("localhost:5672/sync", "localhost:99999/sync") : text;
      const r = new Redactor();
      let shown = "";
      try {
        parseConfig(source, "t.yaml", { PW: pw }, r);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        shown = r.text(e.message);
      }
      expect(shown, pw).toMatch(/x-max-length: \$\{PW\} is "\*\*\*", not an integer/);
      expect(shown, pw).not.toContain(pw);
      expect(shown, pw).not.toContain(decodeURIComponent(pw));
    }
  });

  it("takes the YAML path for nesting deeper than the limit, and refuses it there", () => {
    const deep = exampleWith((d) => {
      let node: Record<string, unknown> = {};
      d.services[2].async.arguments["x-deep"] = node;
      for (let i = 0; i < 80; i++) node = node.x = {};
    });
    expect(fromJson(deep, "t.json", ENV, undefined)).toBeUndefined();
    expect(() => parseConfig(deep, "t.json", ENV)).toThrow(expect.objectContaining({ problems: [expect.objectContaining({ message: expect.stringMatching(/nesting deeper/) })] }));
  });
});
