// Pure: which moved messages topo's AMQP client would write back changed (broker/replace.ts).

import { describe, expect, it } from "vitest";
import { unfaithful } from "../../src/broker/replace.js";

const m = (headers?: Record<string, unknown>) => ({ properties: { headers } });

describe("a message topo cannot move unchanged", () => {
  it("holds an integer beyond 2^53 or bytes read as text with U+FFFD, at any depth", () => {
    expect(unfaithful(m({ eventid: 1234567890123456768 }))).toMatch(/its header eventid holds an integer beyond 2\^53/);
    expect(unfaithful(m({ sig: "\u07ad\ufffd\ufffd" }))).toMatch(/its header sig holds bytes that are not UTF-8 text/);
    expect(unfaithful(m({ a: [{ b: -9007199254740993 }] }))).toMatch(/its header a\[0\]\.b holds an integer beyond 2\^53/);
  });

  it("lets everything else through: safe integers, doubles, text, buffers, dates, no headers", () => {
    expect(unfaithful(m())).toBeUndefined();
    expect(unfaithful(m({ n: 9007199254740991, x: -1e300, f: 2.5, s: "caf\u00e9", b: Buffer.from([0xde, 0xad]), d: new Date(0), big: 1e300 }))).toBeUndefined();
  });
});
