// A binding's arguments with the AMQP types the broker holds: RabbitMQ's management API shows them
// without types, and names the binding by a hash of them with their types (properties_key). The
// hashes and keys below were read from RabbitMQ 3.10.8 (Erlang 25): `rabbitmqctl eval
// 'erlang:phash2(Args, 1 bsl 32).'` and GET /api/bindings. Pure: no broker.

import { describe, expect, it } from "vitest";
import { phash2, type Term } from "../../src/core/phash2.js";
import { exactArgs } from "../../src/broker/exact-args.js";
import { bindingFrom } from "../../src/broker/state.js";
import { bindingArgs } from "../../src/broker/declare.js";
import { UnsafePlanError } from "../../src/errors.js";
import type { Action, Binding, ClusterPlan } from "../../src/model.js";
import { guardPlans } from "../../src/plan/guards.js";
import { planJson, renderText } from "../../src/plan/render.js";
import { binding, exchange } from "../helpers/builders.js";

const b = (s: string | number[]): Term => ({ t: "bin", v: typeof s === "string" ? new TextEncoder().encode(s) : Uint8Array.from(s) });
const a = (v: string): Term => ({ t: "atom", v });
const i = (v: number): Term => ({ t: "int", v });
const f = (v: number): Term => ({ t: "float", v });
const l = (...v: Term[]): Term => ({ t: "list", v });
const tu = (...v: Term[]): Term => ({ t: "tuple", v });
const UUID = [0x9f, 0x00, 0xc3, 0xa1, 0xe2, 0xb7, 0x4d, 0x5e, 0x8f, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70];

describe("phash2 is Erlang's", () => {
  it.each([
    ["a long", l(tu(b("x-a"), a("long"), i(1))), 1688735078],
    ["a byte", l(tu(b("x-a"), a("byte"), i(1))), 3209692400],
    ["a string and a byte", l(tu(b("aa"), a("longstr"), b("x")), tu(b("zz"), a("byte"), i(1))), 936967796],
    ["an integer of 53 bits", l(tu(b("tenant"), a("long"), i(9007199254740991))), 3091818270],
    ["a negative one", l(tu(b("x-match"), a("longstr"), b("all")), tu(b("tenant"), a("long"), i(-9007199254740991))), 2574486100],
    ["28-bit edges", l(tu(b("k"), a("signedint"), i(134217728)), tu(b("m"), a("short"), i(-134217729)), tu(b("x-match"), a("longstr"), b("all"))), 831918200],
    ["a byte array and an empty string", l(tu(b("uuid"), a("binary"), b(UUID)), tu(b("e"), a("longstr"), b(""))), 3870917509],
    ["an empty array and -0.0", l(tu(b("abcdefghijk"), a("array"), l()), tu(b("z"), a("float"), f(-0.0))), 161413815],
    [
      "every kind of value",
      l(
        tu(b("d"), a("decimal"), tu(i(2), i(123))),
        tu(b("f"), a("double"), f(2.5)),
        tu(b("g"), a("double"), f(2.0)),
        tu(b("t"), a("array"), l(tu(a("byte"), i(1)), tu(a("longstr"), b("a")))),
        tu(b("tb"), a("table"), l(tu(b("k"), a("bool"), a("true")))),
        tu(b("u"), a("binary"), b([255, 1])),
        tu(b("v"), a("void"), a("undefined")),
      ),
      3596754833,
    ],
  ])("%s", (_, term, hash) => {
    expect(phash2(term)).toBe(hash);
  });
});

describe("exactArgs finds the types the broker holds", () => {
  it("tells a long 1 from a byte 1, which JSON shows alike", () => {
    expect(exactArgs({ "x-a": 1 }, "rk~ZKgNZg")).toEqual({ exact: [{ key: "x-a", value: { type: "long", value: 1 } }] });
    expect(exactArgs({ "x-a": 1 }, "rk~v1AE8A")).toEqual({ exact: [{ key: "x-a", value: { type: "byte", value: 1 } }] });
  });

  it("finds a Java client's int", () => {
    expect(exactArgs({ tenant: 42, "x-match": "all" }, "p1~LfsjYg")).toEqual({
      exact: [
        { key: "tenant", value: { type: "signedint", value: 42 } },
        { key: "x-match", value: { type: "longstr", value: "all" } },
      ],
    });
  });

  it("finds a byte array shown as base64, and a double shown as an integer", () => {
    const args = { uuid: "Not UTF-8, base64 is: nwDDoeK3TV6PGis8TV5vcA==", w: 2, "x-match": "any" };
    expect(exactArgs(args, "p2~c5dWGQ")).toEqual({
      exact: [
        { key: "uuid", value: { type: "binary", base64: Buffer.from(UUID).toString("base64") } },
        { key: "w", value: { type: "double", value: 2 } },
        { key: "x-match", value: { type: "longstr", value: "any" } },
      ],
    });
  });

  it("finds a void, and a nested table's keys in the order the client sent them", () => {
    expect(exactArgs({ tbl: { a: "x", z: 7 }, v: "undefined" }, "p3~FGlqSg")).toEqual({
      exact: [
        { key: "tbl", value: { type: "table", fields: [{ key: "z", value: { type: "long", value: 7 } }, { key: "a", value: { type: "longstr", value: "x" } }] } },
        { key: "v", value: { type: "void" } },
      ],
    });
  });

  it("cannot re-create an integer above 2^53, which JSON rounds, nor a decimal", () => {
    expect(exactArgs({ tenant: 9007199254740992, "x-match": "all" }, "~AAAAAA")).toEqual({ inexact: expect.stringContaining("argument tenant is an integer beyond 2^53") });
    const shown = { d: 2.123, f: 2.5, g: 2, t: [1, "a"], tb: { k: true }, u: "Not UTF-8, base64 is: /wE=", v: "undefined" };
    expect(exactArgs(shown, "~1mIfkQ")).toEqual({ inexact: expect.stringContaining("no typing") });
    expect(exactArgs({ a: 1 }, undefined)).toEqual({ inexact: expect.stringContaining("properties_key") });
  });

  it("is read with every binding that has arguments, and written with its types", () => {
    const read = bindingFrom({ source: "hx", destination: "q1", destination_type: "queue", routing_key: "rk", arguments: { "x-a": 1 }, properties_key: "rk~ZKgNZg" });
    expect(read).toMatchObject({ propertiesKey: "rk~ZKgNZg", exact: [{ key: "x-a", value: { type: "long", value: 1 } }] });
    expect(bindingArgs(read)).toEqual({ "x-a": { "!": "long", value: 1 } });
    const plain = bindingFrom({ source: "mplogin", destination: "mplogin.async", destination_type: "queue", routing_key: "mplogin.async.#", arguments: {}, properties_key: "mplogin.async.%23" });
    expect(plain).not.toHaveProperty("propertiesKey");
    expect(bindingArgs(plain)).toEqual({});
  });
});

describe("a replace that would re-create a binding inexactly", () => {
  const audit: Binding = { ...binding({ source: "audit2", destination: "mpa.async", routingKey: "", arguments: { tenant: 9007199254740992, "x-match": "all" } }), propertiesKey: "~AAAAAA", inexact: "argument tenant is an integer beyond 2^53 (shown as 9007199254740992), which the management API's JSON does not carry exactly" };
  const replace: Action = { op: "replace", key: "exchange|mpa", before: exchange({ name: "mpa", type: "direct" }), after: exchange({ name: "mpa" }), because: ["type: direct -> topic"], rebind: [audit] };
  const plan: ClusterPlan = { cluster: "async", endpoint: "amqp://u:***@h/a", vhost: "a", actions: [replace], degraded: [], warnings: [] };

  it("is shown by plan, in text and JSON", () => {
    expect(renderText({ clusters: [plan] })).toContain("! cannot re-create binding audit2 -> mpa.async [] ");
    expect(JSON.stringify(planJson({ clusters: [plan] }))).toContain('"inexact":[{"binding":"audit2 -> mpa.async []');
  });

  it("is refused by apply, even with --allow-destructive, unless --allow-unmanaged-deletes", () => {
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: false })).toThrow(UnsafePlanError);
    try {
      guardPlans([plan], { allowDestructive: true, allowDataLoss: false });
    } catch (e) {
      expect((e as Error).message).toMatch(/refusing to replace 1 object whose 1 binding topo cannot re-create exactly:[^]*integer beyond 2\^53/);
    }
    expect(() => guardPlans([plan], { allowDestructive: true, allowDataLoss: false, allowUnmanagedDeletes: true })).not.toThrow();
  });
});
