// The file's defaults: the settings most queues share, so services need the fewest of their own.

import { describe, expect, it } from "vitest";
import type { Traffic } from "../../src/model.js";
import { chooseDefaults } from "../../src/import/defaults.js";
import { mostCommon } from "../../src/import/tally.js";
import type { Wanted } from "../../src/import/types.js";
import { wanted } from "../helpers/builders.js";

const sync = (o: Partial<Wanted> = {}) => ({ kind: "sync" as Traffic, wanted: wanted({ cluster: "s", durable: false, mirrored: true, ...o }) });
const async = (o: Partial<Wanted> = {}) => ({ kind: "async" as Traffic, wanted: wanted({ cluster: "a", ...o }) });

describe("mostCommon", () => {
  it("is the most frequent value, with its count", () => {
    expect(mostCommon([1, 2, 2, 3])).toEqual({ value: 2, count: 2 });
    expect(mostCommon([{ a: 1, b: 2 }, { b: 2, a: 1 }, { a: 2 }])).toEqual({ value: { a: 1, b: 2 }, count: 2 });
    expect(mostCommon([])).toBeUndefined();
  });

  it("breaks a tie for the first preferred value present, then the first seen", () => {
    expect(mostCommon(["b", "a"], ["x", "a"])).toEqual({ value: "a", count: 1 });
    expect(mostCommon(["b", "a"])).toEqual({ value: "b", count: 1 });
  });
});

describe("chooseDefaults", () => {
  it("gives each kind with queues its cluster and its most common classic settings; a kind without queues none", () => {
    const d = chooseDefaults([sync(), sync(), sync({ durable: true, mirrored: false })], { sync: "s", async: "a" });
    expect(d).toEqual({ sync: { cluster: "s", durable: false, mirrored: true } });
  });

  it("breaks a tie for the built-in settings of the kind", () => {
    const tie = [async({ durable: true, mirrored: true }), async({ durable: false, mirrored: false })];
    expect(chooseDefaults(tie, { async: "a" }).async).toEqual({ cluster: "a", durable: true, mirrored: false });
    const syncTie = [sync({ durable: true, mirrored: false }), sync({ durable: false, mirrored: true })];
    expect(chooseDefaults(syncTie, { sync: "s" }).sync).toEqual({ cluster: "s", durable: false, mirrored: true });
  });

  it("takes the most common type; a quorum or stream default says only its type", () => {
    const d = chooseDefaults([sync({ type: "quorum", durable: true, mirrored: false }), sync({ type: "quorum", durable: true, mirrored: false }), sync()], { sync: "s" });
    expect(d.sync).toEqual({ cluster: "s", type: "quorum" });
  });

  it("breaks a tie of types for classic, and reads durable and mirrored from the classic queues only", () => {
    const d = chooseDefaults([async({ type: "stream", durable: true }), async({ durable: false, mirrored: true })], { async: "a" });
    expect(d.async).toEqual({ cluster: "a", durable: false, mirrored: true });
  });

  it("shares an argument every queue of the kind has, at its most common value, when two or more agree", () => {
    const d = chooseDefaults(
      [
        async({ arguments: { "x-message-ttl": 1, "x-max-length": 5 } }),
        async({ arguments: { "x-message-ttl": 1 } }),
        async({ arguments: { "x-message-ttl": 2, "x-max-length": 5 } }),
      ],
      { async: "a" },
    );
    expect(d.async?.arguments).toEqual({ "x-message-ttl": 1 });
    expect(chooseDefaults([async({ arguments: { "x-max-length": 5 } })], { async: "a" }).async?.arguments).toBeUndefined();
    expect(chooseDefaults([async({ arguments: { "x-max-length": 5 } }), async({ arguments: { "x-max-length": 6 } })], { async: "a" }).async?.arguments).toBeUndefined();
  });
});
